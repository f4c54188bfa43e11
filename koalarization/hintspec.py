"""Colour hints as users write them: ``--hint X,Y,#RRGGBB``, a ``--hints FILE.json``, and the check
of a photo's points (an addition to the paper; the model side is :mod:`koalarization.model.hints`).

    parse_hint("120,48,#d03020")          -> (120.0, 48.0, (208, 48, 32))
    read_hints_file("hints.json")         -> {"beach.jpg": [(10.0, 20.0, (40, 90, 200)), ...], ...}
    check_points(points, 640, 480, name)  -> the points, or UsageError naming the photo and the point

A point is ``(x, y, (r, g, b))``: x, y in pixels of the photo as displayed (after its EXIF
orientation), x to the right, y down, ``0 <= x < width``, ``0 <= y < height``; r, g, b integers
0-255. The JSON file maps a photo's name (its file name, or its path relative to the folder
given, or the path as given) to a list of ``[x, y, "#RRGGBB"]`` (or ``[x, y, [r, g, b]]``).
Pure Python: commands parse hints before importing TensorFlow.
"""

import json
import math
import operator
import re

from koalarization.errors import UsageError

_COLOUR = re.compile(r"^#?([0-9a-fA-F]{6})$")


def parse_colour(text, where="hint"):
    """``#RRGGBB`` (the # optional) -> (r, g, b) ints, or UsageError."""
    match = _COLOUR.match(str(text).strip())
    if not match:
        raise UsageError(f"{where}: colour {text!r} is not #RRGGBB (six hex digits, e.g. #d03020)")
    value = match.group(1)
    return tuple(int(value[i : i + 2], 16) for i in (0, 2, 4))


def parse_hint(text):
    """``X,Y,#RRGGBB`` (``--hint``) -> ``(x, y, (r, g, b))``, or UsageError."""
    parts = str(text).split(",")
    if len(parts) != 3:
        raise UsageError(f"--hint {text!r}: expected X,Y,#RRGGBB (pixels of the photo as displayed, e.g. 120,48,#d03020)")
    return point((parts[0], parts[1], parse_colour(parts[2], f"--hint {text!r}")), f"--hint {text!r}")


def point(value, where="hint"):
    """``(x, y, colour)`` with colour ``#RRGGBB`` or three ints 0-255 -> ``(x, y, (r, g, b))``, or UsageError."""
    if not isinstance(value, (list, tuple)) or len(value) != 3:
        raise UsageError(f"{where}: a hint is (x, y, colour), got {value!r}")
    x, y, colour = value
    try:
        x, y = float(x), float(y)
    except (TypeError, ValueError):
        raise UsageError(f"{where}: x and y must be numbers, got {value[0]!r}, {value[1]!r}") from None
    if not (math.isfinite(x) and math.isfinite(y)):
        raise UsageError(f"{where}: x and y must be finite numbers, got {x}, {y}")
    if isinstance(colour, str):
        colour = parse_colour(colour, where)
    try:
        rgb = tuple(operator.index(c) for c in colour)  # integers (numpy's too), not floats
    except TypeError:
        rgb = ()
    if len(rgb) != 3 or not all(0 <= c <= 255 for c in rgb):
        raise UsageError(f"{where}: colour {colour!r} is not three integers 0-255 (r, g, b) or #RRGGBB")
    return x, y, rgb


def check_points(points, width, height, name="photo"):
    """A photo's points, each checked (:func:`point`) and inside the ``width x height`` photo; or UsageError."""
    checked = []
    for value in points or ():
        x, y, colour = point(value, f"{name}: hint {value!r}")
        if not (0 <= x < width and 0 <= y < height):
            raise UsageError(
                f"{name}: hint at ({x:g}, {y:g}) lies outside the {width}x{height} photo "
                "(x, y in pixels of the photo as displayed: 0 <= x < width, 0 <= y < height)"
            )
        checked.append((x, y, colour))
    return checked


def check_photos(hints, sizes, names=None):
    """One list of points per photo (or None) and the photos' ``(width, height)`` -> the checked lists (or None)."""
    if hints is None:
        return None
    hints = list(hints)
    if len(hints) != len(sizes):
        raise UsageError(f"hints: {len(hints)} lists for {len(sizes)} photos (one list per photo, [] for none)")
    names = names or [f"photo {i + 1}" for i in range(len(sizes))]
    return [check_points(points, width, height, name) for points, (width, height), name in zip(hints, sizes, names)]


def read_hints_file(path):
    """``--hints FILE.json`` -> ``{photo name: [points]}``, each point checked for form (not yet against its photo)."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except FileNotFoundError:
        raise UsageError(f"{path}: hints file not found") from None
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise UsageError(f"{path}: not a readable JSON hints file ({str(error).splitlines()[0]})") from None
    if not isinstance(data, dict) or not all(isinstance(v, list) for v in data.values()):
        raise UsageError(f'{path}: expected {{"photo name": [[x, y, "#RRGGBB"], ...], ...}}')
    return {str(name): [point(p, f"{path}: {name}") for p in points] for name, points in data.items()}
