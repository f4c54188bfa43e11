"""Reading image files robustly, and finding them in folders and globs.

Pillow does the decoding because it handles what real photo collections contain and TensorFlow's
decoders do not: EXIF orientation, CMYK JPEGs, 16-bit PNGs, palette and transparent images,
truncated files (reported, not half-read). Every problem becomes an :class:`ImageError` that
names the file and the reason.
"""

import io
import os
import struct
import warnings

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from koalarization import discovery, errors, storage

IMAGE_EXTENSIONS = discovery.IMAGE_EXTENSIONS


class ImageError(errors.UsageError):
    """An input that is not a readable image; ``str()`` is ``"PATH: reason"``."""

    def __init__(self, path, reason):
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason


# Set once for the process (catch_warnings is not thread-safe, and the builder decodes in threads):
# Pillow's warning about big images is printed raw; our --max-pixels (or Pillow's hard limit,
# an ImageError naming the file) says it better.
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)

from koalarization.constants import DEFAULT_MAX_PIXELS  # noqa: E402,F401


def _to_array(image):
    """A loaded PIL image in any mode -> numpy (H, W, C), C in 1-4 (gray, gray + alpha, RGB, RGBA):
    uint8, or uint16 for 16-bit images (scaled by 65535, as TensorFlow's PNG decoder), or float32.
    32-bit integer samples (mode "I", a TIFF's int32) are scaled by their range: see :func:`_wide_integers`."""
    if image.mode.startswith("I;16"):
        return np.asarray(image).astype(np.uint16)[..., None]
    if image.mode == "I":
        return _wide_integers(np.asarray(image))[..., None]
    if image.mode == "F":
        return np.clip(np.asarray(image, dtype=np.float32) / 255.0, 0.0, 1.0)[..., None]
    if image.mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    elif image.mode == "1":
        image = image.convert("L")
    elif image.mode not in ("L", "LA", "RGB", "RGBA"):
        image = image.convert("RGBA" if image.mode in ("PA", "RGBa", "La") else "RGB")
    array = np.asarray(image)
    return array if array.ndim == 3 else array[..., None]


def _wide_integers(array):
    """Integer samples of a type wider than the photo's own depth (int32, uint32, int16, ...): a file
    does not say which depth they hold, so their range decides. Every value within 0..255: 8-bit
    (uint8, as is); within 0..65535: 16-bit (uint16, scaled by 65535); beyond: float32 over the
    type's largest value. Negative values are 0. An 8-bit photo stored as int32 (a common
    scientific export) is then as bright as its 8-bit original, not 1/257 of it."""
    top = int(array.max(initial=0))
    if top <= 255:
        return np.clip(array, 0, 255).astype(np.uint8)
    if top <= 65535:
        return np.clip(array, 0, 65535).astype(np.uint16)
    return np.clip(array.astype(np.float64) / np.iinfo(array.dtype).max, 0.0, 1.0).astype(np.float32)


def read_pixels(path, max_pixels=None):
    """Decode ``path`` (file path or bytes) to numpy (H, W, C), EXIF orientation applied; see :func:`_to_array`.

    The size is checked against ``max_pixels`` from the header, before decoding: 0 is no limit,
    None is Pillow's own bomb check (about 179 million pixels); any number replaces Pillow's check.
    Raises :class:`ImageError` for a missing, empty, truncated, too large or non-image file. A URL
    (``gs://...``: :mod:`koalarization.storage`) is read whole first, and named in the errors.
    """
    name = "<bytes>" if isinstance(path, (bytes, bytearray)) else str(path)
    if storage.is_url(path):
        path = _read_url(path)
    if not isinstance(path, (bytes, bytearray)):
        if not os.path.exists(path):
            raise ImageError(name, "file not found")
        if os.path.getsize(path) == 0:
            raise ImageError(name, "empty file (0 bytes)")
    if max_pixels is not None:
        Image.MAX_IMAGE_PIXELS = None  # ours is the limit now (this process asked for one)
    try:
        source = io.BytesIO(path) if isinstance(path, (bytes, bytearray)) else path
        with Image.open(source) as image:
            width, height = image.size
            _check_size(name, width, height, max_pixels)
            if image.format == "PNG" and _png_colour_16bit(image):  # Pillow would keep 8 of its bits
                return _png_16bit_pixels(image, name)
            image.load()
            ImageOps.exif_transpose(image, in_place=True)  # no second copy of a big photo
            array = _to_array(image)
    except UnidentifiedImageError:
        if _is_tiff(path):  # Pillow reads common TIFFs only: planar, float64 and other scientific ones here
            return _tiff_pixels(path, name, max_pixels)
        raise ImageError(name, "not an image (unknown format)") from None
    except Image.DecompressionBombError as error:
        raise ImageError(name, f"image too large to decode safely ({error})") from None
    except ImageError:  # over max_pixels (a ValueError too): said as it is, not as "cannot decode"
        raise
    except (OSError, SyntaxError, ValueError) as error:
        raise ImageError(name, f"cannot decode: {error}") from None
    if array.ndim != 3 or array.shape[0] < 1 or array.shape[1] < 1:
        raise ImageError(name, f"unexpected image shape {array.shape}")
    return array


def _read_url(url):
    """The bytes of the object ``url``, or an :class:`ImageError` naming it."""
    try:
        data = storage.read_bytes(url)
    except FileNotFoundError:
        raise ImageError(url, "file not found") from None
    except OSError as error:
        raise ImageError(url, f"cannot read: {error.strerror or error}") from None
    if not data:
        raise ImageError(url, "empty file (0 bytes)")
    return data


EXIF_ORIENTATION = 0x0112
# EXIF orientation -> the numpy transform that shows the picture upright (as ImageOps.exif_transpose).
_UPRIGHT = {
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: a.transpose(1, 0, 2),
    6: lambda a: np.rot90(a, -1),
    7: lambda a: a[::-1, ::-1].transpose(1, 0, 2),
    8: lambda a: np.rot90(a, 1),
}


def _oriented(array, orientation):
    return np.ascontiguousarray(_UPRIGHT[orientation](array)) if orientation in _UPRIGHT else array


def _png_colour_16bit(image):
    """True for an opened PNG of 16-bit RGB, RGBA or gray + alpha samples (from the header Pillow read)."""
    return image.mode in ("RGB", "RGBA", "LA") and bool(image.tile) and str(image.tile[0][3]).endswith(";16B")


def _png_16bit_pixels(image, name):
    """The opened PNG's uint16 samples (H, W, C), as TensorFlow's decoder (the SavedModel's) gives
    them, EXIF orientation applied: the file is read once (from Pillow's open file) and decoded
    once (by TensorFlow, not by Pillow as well)."""
    from koalarization import quiet_tensorflow

    quiet_tensorflow()
    import tensorflow as tf

    image.fp.seek(0)
    data = image.fp.read()
    try:
        pixels = tf.io.decode_png(data, channels=0, dtype=tf.uint16).numpy()
    except tf.errors.OpError as error:
        raise ImageError(name, f"cannot decode: {error.message.splitlines()[0]}") from None
    return _oriented(pixels, _png_exif_orientation(data))


def _png_exif_orientation(data):
    """The EXIF orientation (1..8; 1 when none) of the PNG ``data``'s ``eXIf`` chunk, wherever it is
    (before or after the pixels, as Pillow finds it), without decoding the pixels."""
    position = 8
    while position + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[position : position + 8])
        if kind == b"eXIf":
            exif = Image.Exif()
            exif.load(b"Exif\0\0" + data[position + 8 : position + 8 + length])
            return exif.get(EXIF_ORIENTATION, 1)
        if kind == b"IEND":
            break
        position += 12 + length
    return 1


def _check_size(name, width, height, max_pixels):
    """An :class:`ImageError` for a photo over ``max_pixels`` (0 or None: no limit), from its header's size."""
    if max_pixels and width * height > max_pixels:
        raise ImageError(name, f"{width}x{height} = {width * height} pixels, over the limit of {max_pixels} (--max-pixels 0 lifts it)")


# Pillow's decompression-bomb error size (twice its warning size), taken once: read_image with a
# max_pixels of ours lifts Pillow's own limit for the rest of the process.
TIFF_BOMB_PIXELS = 2 * (Image.MAX_IMAGE_PIXELS or 89_478_485)


def _is_tiff(path):
    if isinstance(path, (bytes, bytearray)):
        return bytes(path[:4]) in (b"II*\x00", b"MM\x00*")
    return str(path).lower().endswith((".tif", ".tiff"))


def _tiff_pixels(path, name, max_pixels):
    """The first page of a TIFF that Pillow cannot open (planar RGB, float64, ...) via tifffile
    (scikit-image's reader), as :func:`_to_array` gives it: uint8, uint16 or float32 in [0, 1]
    (other integer types by their range, :func:`_wide_integers`)."""
    import tifffile

    try:
        with tifffile.TiffFile(io.BytesIO(path) if isinstance(path, (bytes, bytearray)) else path) as tif:
            page = tif.pages[0]
            axes, shape = page.axes, page.shape
            height, width = shape[axes.index("Y")], shape[axes.index("X")]
            _check_size(name, width, height, max_pixels)
            if max_pixels is None and width * height > TIFF_BOMB_PIXELS:  # no limit of ours: Pillow's
                raise ImageError(name, f"image too large to decode safely ({width}x{height} = {width * height} pixels, over {TIFF_BOMB_PIXELS})")
            array = page.asarray()
    except ImageError:
        raise
    except Exception as error:  # noqa: BLE001  (tifffile raises many kinds for broken files)
        raise ImageError(name, f"cannot decode the TIFF: {error}") from None
    if "S" in axes and axes.index("S") < axes.index("Y"):  # planar: samples first
        array = np.moveaxis(array, axes.index("S"), -1)
    array = array.reshape(height, width, -1)[..., :4]  # (H, W, C)
    if array.dtype in (np.uint8, np.uint16):
        return array
    if np.issubdtype(array.dtype, np.floating):
        return np.clip(np.nan_to_num(array.astype(np.float32)), 0.0, 1.0)
    if np.issubdtype(array.dtype, np.integer):
        return _wide_integers(array)
    raise ImageError(name, f"unsupported TIFF sample type {array.dtype}")


def read_image(path, max_pixels=None, as_tensor=False):
    """Decode ``path`` (file path or bytes) to float32 sRGB (H, W, 3) in [0, 1], EXIF rotation applied
    (numpy, or a tensor with ``as_tensor``: no second copy of a big photo).

    The one normalisation (gray to RGB, alpha over white, 16 bits) is ``colors.to_float_rgb``, which
    the SavedModel's decoder uses too. Raises :class:`ImageError` as :func:`read_pixels`.
    """
    from koalarization import colors

    rgb = colors.to_float_rgb(read_pixels(path, max_pixels))  # (H, W, 3)
    return rgb if as_tensor else rgb.numpy()


def find_images(inputs, extensions=IMAGE_EXTENSIONS, warn=None, others=None):
    """Expand files, folders (recursively) and glob patterns into a list of image paths, each real
    file once (links and loops followed safely); see :mod:`koalarization.discovery`.

    Files named explicitly are kept whatever their extension (so a broken one gets reported);
    inside folders and globs only ``extensions`` count. Raises ``FileNotFoundError`` for an input
    that matches nothing. Unreadable folders and refused loops go to ``warn`` (default: stderr),
    one line each; ``discovery.discover_images(...).why_empty()`` says why a result is empty.
    ``others``: a list that gets the files passed over for their extension.
    """
    return discovery.find_images(inputs, extensions, warn, others)
