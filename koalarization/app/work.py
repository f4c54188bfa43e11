"""What the web page does, without the page: read uploads as the CLI reads files, colorize them with
the one :class:`~koalarization.model.colorizer.Colorizer`, write full-size PNGs and a zip, colorize
films with :mod:`koalarization.video.films`, and say what the model is. No gradio here.

Every upload and result lives in one temporary :class:`Workspace`, removed at exit.
"""

import dataclasses
import os
import shutil
import tempfile
import time
import uuid
import zipfile

import numpy as np

from koalarization import images

WORKSPACE_PREFIX = "koalarization-app-"


class Refused(ValueError):
    """An upload the page will not colorize; ``str()`` is the one line the page shows."""


class Workspace:
    """``ROOT/uploads`` (Gradio's upload and cache folder) and ``ROOT/results/<request>/``; ``remove()`` at exit."""

    def __init__(self, keep_seconds=3600):
        self.root = tempfile.mkdtemp(prefix=WORKSPACE_PREFIX)
        self.uploads = os.path.join(self.root, "uploads")
        self.results = os.path.join(self.root, "results")
        os.makedirs(self.uploads)
        os.makedirs(self.results)
        self.keep_seconds = keep_seconds

    def fresh(self):
        """A new folder for one request's results; folders older than ``keep_seconds`` go first."""
        now = time.time()
        for name in os.listdir(self.results):
            path = os.path.join(self.results, name)
            try:
                if now - os.path.getmtime(path) > self.keep_seconds:
                    shutil.rmtree(path, ignore_errors=True)
            except OSError:
                pass
        folder = os.path.join(self.results, uuid.uuid4().hex[:12])
        os.makedirs(folder)
        return folder

    def remove(self):
        shutil.rmtree(self.root, ignore_errors=True)


@dataclasses.dataclass
class Result:
    name: str  # the uploaded file's name
    source: str  # the uploaded file
    gray: str  # PNG: the luminance the colorizer keeps
    colorized: str  # PNG: full size, the CLI's pixels
    hints: list = dataclasses.field(default_factory=list)  # [(x, y, (r, g, b)), ...]


def read_photo(path, max_pixels):
    """An uploaded file -> float32 sRGB (H, W, 3), read as ``colorize`` reads files (size checked from
    the header before decoding). Raises :class:`Refused` naming the upload."""
    try:
        return images.read_image(path, max_pixels)
    except images.ImageError as error:
        raise Refused(f"{os.path.basename(path)}: {error.reason.replace(str(path), os.path.basename(path))}") from None
    except MemoryError:
        raise Refused(f"{os.path.basename(path)}: too big to decode in this server's memory") from None


def gray_of(rgb):
    """float sRGB (H, W, 3) -> uint8 (H, W, 3): the photo's luminance alone, what the network sees."""
    from koalarization import colors

    gray = colors.luminance_to_rgb(colors.rgb_to_luminance(rgb))  # (H, W, 3)
    return np.round(np.clip(gray.numpy(), 0.0, 1.0) * 255.0).astype(np.uint8)


def colorize_rgb(colorizer, rgb, hints=None):
    """One photo through the colorizer (with colour hints where it takes them) -> uint8 (H, W, 3)."""
    if hints:
        [colorized] = colorizer.colorize([rgb], hints=[list(hints)])
    else:
        [colorized] = colorizer.colorize([rgb])
    return np.asarray(colorized)


def write_png(image, path):
    """uint8 (H, W, 3) -> a PNG file, written by the CLI's encoder (lossless: the same pixels)."""
    from koalarization.colorize import files

    with open(path, "wb") as f:
        f.write(files.encode(image, "png"))
    return path


def stem_of(path):
    return os.path.splitext(os.path.basename(path))[0] or "photo"


def colorize_upload(colorizer, path, folder, max_pixels, hints=None, version=0):
    """One uploaded photo -> a :class:`Result` (its PNGs in ``folder``); raises :class:`Refused`."""
    rgb = read_photo(path, max_pixels)
    stem = stem_of(path)
    suffix = f"-{version}" if version else ""  # a new name per hinted version: browsers cache by URL
    gray = os.path.join(folder, f"{stem}_gray.png")
    if not os.path.exists(gray):
        write_png(gray_of(rgb), gray)
    try:
        colorized = colorize_rgb(colorizer, rgb, hints)
    except MemoryError:
        raise Refused(f"{os.path.basename(path)}: too big to colorize in this server's memory") from None
    out = write_png(colorized, os.path.join(folder, f"{stem}_colorized{suffix}.png"))
    return Result(os.path.basename(path), path, gray, out, list(hints or []))


def unique_folder(folder, name, taken):
    """A sub-folder of ``folder`` for the upload ``name`` when another upload had its stem already."""
    stem = stem_of(name).lower()
    n = taken.get(stem, 0)
    taken[stem] = n + 1
    if not n:
        return folder
    sub = os.path.join(folder, str(n))
    os.makedirs(sub, exist_ok=True)
    return sub


def colorize_uploads(colorizer, paths, folder, max_pixels, progress=None):
    """Uploaded photos -> ``(results, refusals)``: :class:`Result`\\ s and one line per photo refused."""
    results, refusals, taken = [], [], {}
    for i, path in enumerate(paths):
        if progress is not None:
            progress(i / len(paths), desc=f"colorizing {os.path.basename(path)}")
        try:
            results.append(colorize_upload(colorizer, path, unique_folder(folder, path, taken), max_pixels))
        except Refused as refusal:
            refusals.append(str(refusal))
    return results, refusals


def zip_results(results, folder):
    """Every colorized PNG in one zip (stored: PNGs are compressed already) -> its path."""
    out = os.path.join(folder, "colorized.zip")
    names = set()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as archive:
        for result in results:
            name, n = f"{stem_of(result.name)}.png", 2
            while name.lower() in names:
                name, n = f"{stem_of(result.name)}-{n}.png", n + 1
            names.add(name.lower())
            archive.write(result.colorized, name)
    return out


def downloads(results, folder):
    """What the download list offers: each colorized PNG, and the zip of them all when there are several."""
    files = [result.colorized for result in results]
    return files + [zip_results(results, folder)] if len(results) > 1 else files


# -- films -----------------------------------------------------------------------------------------
def colorize_film(colorizer, config, path, folder, log=print):
    """One uploaded video -> the colorized video's path (``koalarization.video``'s work: steady colour,
    the input's frames, timestamps and audio). Raises :class:`Refused` naming the upload."""
    from koalarization.video import films

    name = os.path.basename(path)
    try:
        info = films.probe(path)
        if config.max_pixels and info.width * info.height > config.max_pixels:
            raise Refused(f"{name}: {info.width}x{info.height} frames, over the limit of {config.max_pixels} pixels")
        video = films.VideoConfig(inputs=(path,), out_dir=folder, model=config.model, working_size=colorizer.working_size, precision=config.precision)
        return films.colorize_video(video, path, colorizer, log=log, progress=True, info=info)
    except films.VideoError as error:
        raise Refused(str(error).replace(path, name)) from None


# -- what the model is -----------------------------------------------------------------------------
WEIGHTS_WORDS = {
    "imagenet": "ImageNet (trained: the embedding knows what is in the photo)",
    "random": "random (untrained: a smoke-test model, its colours mean little)",
}


def describe_model(colorizer, config, stand_in=False):
    """Markdown lines: the Inception weights (ImageNet or random, said plainly), the training run, the precision."""
    from koalarization.model import colorizer as colorizers

    kind, _, info = colorizers.resolve_model(config.model)
    run = colorizer.config if isinstance(colorizer.config, dict) else {}
    if stand_in:
        weights = "none: a stand-in embedder given by the caller, not Inception-ResNet-v2 (tests)"
    else:
        if kind == "saved_model":
            recorded = ((info or {}).get("inception") or {}).get("weights")
            source = recorded.get("source", recorded.get("path")) if isinstance(recorded, dict) else recorded
        else:
            source = config.inception_weights or colorizers.weights_from_facts(colorizers.embedding_facts(run)) or "imagenet"
        weights = WEIGHTS_WORDS.get(source, f"from the file {source}" if source else "not recorded")
    training = run.get("config") if isinstance(run.get("config"), dict) else {}
    facts = [f"{training['epochs']} epoch(s)" if "epochs" in training else None,
             f"preset {training['preset']}" if "preset" in training else None,
             f"at {colorizers.training_image_size(run)}x{colorizers.training_image_size(run)}" if colorizers.training_image_size(run) else None,
             f"in {training['precision']}" if "precision" in training else None]  # fmt: skip
    trained = ", ".join(fact for fact in facts if fact) or "no training facts recorded"
    what = "an exported SavedModel" if kind == "saved_model" else "a Keras model"
    return "\n".join([
        f"- **Model:** `{config.model}` ({what})",
        f"- **Inception-ResNet-v2 weights:** {weights}",
        f"- **Training run:** {trained}",
        f"- **Precision:** {colorizer.precision}, the network at {colorizer.working_size}x{colorizer.working_size}; "
        "results keep the photo's size and luminance",
    ])  # fmt: skip


def parse_colour(value):
    """A colour picker's value (``#rrggbb``, ``#rgb`` or ``rgb(a)(r, g, b, ...)``) -> (r, g, b) ints 0-255."""
    text = str(value or "").strip().lower()
    if text.startswith("#"):
        digits = text[1:]
        if len(digits) in (3, 4):
            digits = "".join(c * 2 for c in digits[:3])
        return tuple(int(digits[i : i + 2], 16) for i in (0, 2, 4))
    if text.startswith("rgb"):
        parts = text[text.index("(") + 1 : text.rindex(")")].split(",")
        return tuple(int(round(float(p))) for p in parts[:3])
    raise Refused(f"{value}: not a colour")
