"""Reading image files robustly, and finding them in folders and globs.

Pillow does the decoding because it handles what real photo collections contain and TensorFlow's
decoders do not: EXIF orientation, CMYK JPEGs, 16-bit PNGs, palette and transparent images,
truncated files (reported, not half-read). Every problem becomes an :class:`ImageError` that
names the file and the reason.
"""

import io
import os

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from koalarization import discovery

IMAGE_EXTENSIONS = discovery.IMAGE_EXTENSIONS


class ImageError(ValueError):
    """An input that is not a readable image; ``str()`` is ``"PATH: reason"``."""

    def __init__(self, path, reason):
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason


def _to_rgb_array(image):
    """A loaded PIL image in any mode -> float32 sRGB (H, W, 3) in [0, 1], alpha over white."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        array = np.asarray(image, dtype=np.float32)
        peak = 65535.0 if image.mode.startswith("I;16") or array.max() > 255 else 255.0
        gray = np.clip(array / peak, 0.0, 1.0)
        return np.repeat(gray[..., None], 3, axis=-1)
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode in ("RGBA", "LA", "PA"):
        rgba = np.asarray(image.convert("RGBA"), dtype=np.float32) / 255.0
        return rgba[..., :3] * rgba[..., 3:] + (1.0 - rgba[..., 3:])
    return np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0


def read_image(path):
    """Decode ``path`` (file path or bytes) to float32 sRGB (H, W, 3) in [0, 1], EXIF rotation applied.

    Raises :class:`ImageError` for a missing, empty, truncated or non-image file.
    """
    name = "<bytes>" if isinstance(path, (bytes, bytearray)) else str(path)
    if not isinstance(path, (bytes, bytearray)):
        if not os.path.exists(path):
            raise ImageError(name, "file not found")
        if os.path.getsize(path) == 0:
            raise ImageError(name, "empty file (0 bytes)")
    try:
        source = io.BytesIO(path) if isinstance(path, (bytes, bytearray)) else path
        with Image.open(source) as image:
            image.load()
            image = ImageOps.exif_transpose(image)
            rgb = _to_rgb_array(image)
    except UnidentifiedImageError:
        raise ImageError(name, "not an image (unknown format)") from None
    except Image.DecompressionBombError as error:
        raise ImageError(name, f"image too large to decode safely ({error})") from None
    except (OSError, SyntaxError, ValueError) as error:
        raise ImageError(name, f"cannot decode: {error}") from None
    if rgb.ndim != 3 or rgb.shape[0] < 1 or rgb.shape[1] < 1:
        raise ImageError(name, f"unexpected image shape {rgb.shape}")
    return rgb


def find_images(inputs, extensions=IMAGE_EXTENSIONS, warn=None):
    """Expand files, folders (recursively) and glob patterns into a list of image paths, each real
    file once (links and loops followed safely); see :mod:`koalarization.discovery`.

    Files named explicitly are kept whatever their extension (so a broken one gets reported);
    inside folders and globs only ``extensions`` count. Raises ``FileNotFoundError`` for an input
    that matches nothing. Unreadable folders and refused loops go to ``warn`` (default: stderr),
    one line each; ``discovery.discover_images(...).why_empty()`` says why a result is empty.
    """
    return discovery.find_images(inputs, extensions, warn)
