"""CIE L*a*b* conversion, letterboxing and the paper's scaling constants.

Everything here is a small TensorFlow function, so the same code runs eagerly, inside
``tf.data.Dataset.map`` and inside the exported SavedModel. The constants match
``skimage.color`` (sRGB, D65 white, 2° observer), which the tests use as the reference.

The network sees ``L / 50 - 1`` and predicts ``ab / 127`` (Baldassarre et al. 2017); these two
scalings live here and nowhere else.
"""

import numpy as np
from koalarization import quiet_tensorflow  # noqa: E402

quiet_tensorflow()
import tensorflow as tf

# -- the paper's scaling -----------------------------------------------------------------------

# The paper's working sizes.
from koalarization.constants import AB_SCALE, IMAGE_SIZE, INCEPTION_SIZE, L_HALF_RANGE  # noqa: F401  (used here and by the callers of colors)


def scale_l(l):
    """L in [0, 100] -> network input in [-1, 1]."""
    return l / L_HALF_RANGE - 1.0


def unscale_l(l_scaled):
    """Network input in [-1, 1] -> L in [0, 100]."""
    return (l_scaled + 1.0) * L_HALF_RANGE


def scale_ab(ab):
    """a*, b* in Lab units -> network target in [-1, 1]."""
    return ab / AB_SCALE


def unscale_ab(ab_scaled):
    """Network output in [-1, 1] -> a*, b* in Lab units."""
    return ab_scaled * AB_SCALE


# -- sRGB <-> XYZ <-> Lab (same constants as skimage.color) --------------------------------------
_XYZ_FROM_RGB = np.array(
    [
        [0.412453, 0.357580, 0.180423],
        [0.212671, 0.715160, 0.072169],
        [0.019334, 0.119193, 0.950227],
    ]
)
_RGB_FROM_XYZ = np.linalg.inv(_XYZ_FROM_RGB)
_WHITE_D65 = np.array([0.95047, 1.0, 1.08883])
_EPSILON = 0.008856  # (6/29)^3
_KAPPA = 7.787  # (29/6)^2 / 3


def _srgb_to_linear(rgb):
    rgb = tf.convert_to_tensor(rgb, dtype=tf.float32)
    return tf.where(rgb > 0.04045, power((tf.maximum(rgb, 0.04045) + 0.055) / 1.055, 2.4), rgb / 12.92)


# The Lab companding and its inverse, and Lab -> linear RGB on separate planes: the one copy, used
# here on (..., 3) images and by koalarization.model.method at full resolution (planes cost less
# memory than stacked (..., 3) tensors on a big photo).
def power(x, exponent):
    """``x ** exponent`` for x > 0, as exp(log(x) * exponent): ~3x faster than tf.pow on a CPU, the same to a float32 ulp."""
    return tf.exp(tf.math.log(x) * exponent)


def lab_f(ratio):
    """The Lab companding function: X/Xn (or Y, Z/Zn) -> f; L = 116 f(Y) - 16."""
    return tf.where(ratio > _EPSILON, power(tf.maximum(ratio, _EPSILON), 1.0 / 3.0), _KAPPA * ratio + 16.0 / 116.0)


def lab_f_inverse(f):
    """The inverse of :func:`lab_f`: f -> X/Xn (or Y, Z/Zn)."""
    return tf.where(f > 0.2068966, f * f * f, (f - 16.0 / 116.0) / _KAPPA)


_LINEAR_FROM_XYZ_RATIOS = (_RGB_FROM_XYZ * _WHITE_D65).astype("float32")  # (3, 3): RGB from X/Xn, Y, Z/Zn
Y_FROM_LINEAR = _XYZ_FROM_RGB[1].astype("float32")  # (3,): Y from linear RGB (white Y = 1)


def linear_planes_from_lab(fy, y, da, db):
    """Planes of f(Y), Y, a/500, b/200 (all the same shape) -> [r, g, b] linear RGB planes, NOT clipped."""
    x_ratio = lab_f_inverse(fy + da)
    z_ratio = lab_f_inverse(tf.maximum(fy - db, 0.0))
    return [m[0] * x_ratio + m[1] * y + m[2] * z_ratio for m in _LINEAR_FROM_XYZ_RATIOS]


def rgb_to_lab(rgb):
    """sRGB in [0, 1], shape (..., 3) -> Lab, shape (..., 3), L in [0, 100]."""
    linear = _srgb_to_linear(rgb)
    xyz = tf.tensordot(linear, tf.constant(_XYZ_FROM_RGB.T, tf.float32), 1)  # one matmul: fast on big images
    f = lab_f(xyz / tf.constant(_WHITE_D65, tf.float32))
    fx, fy, fz = f[..., 0], f[..., 1], f[..., 2]
    return tf.stack([116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)], axis=-1)


def lab_to_linear_rgb(lab):
    """Lab, shape (..., 3) -> linear RGB, shape (..., 3), NOT clipped: outside [0, 1] means out of the sRGB gamut."""
    lab = tf.convert_to_tensor(lab, dtype=tf.float32)
    fy = (lab[..., 0] + 16.0) / 116.0
    return tf.stack(linear_planes_from_lab(fy, lab_f_inverse(fy), lab[..., 1] / 500.0, lab[..., 2] / 200.0), axis=-1)


def lab_to_rgb(lab):
    """Lab, shape (..., 3) -> sRGB in [0, 1], shape (..., 3), clipped to the gamut."""
    return linear_to_srgb(lab_to_linear_rgb(lab))


def linear_to_srgb(linear):
    """Linear RGB, shape (..., 3) -> sRGB in [0, 1] (gamma encoded), clipped to the gamut."""
    linear = tf.maximum(linear, 0.0)
    rgb = tf.where(
        linear > 0.0031308, 1.055 * tf.pow(tf.maximum(linear, 0.0031308), 1.0 / 2.4) - 0.055, 12.92 * linear
    )
    return tf.clip_by_value(rgb, 0.0, 1.0)


def rgb_to_luminance(rgb):
    """sRGB in [0, 1], shape (..., 3) -> L in [0, 100], shape (..., 1) (the L of :func:`rgb_to_lab`)."""
    linear = _srgb_to_linear(rgb)
    y = tf.tensordot(linear, tf.constant(_XYZ_FROM_RGB[1:2].T, tf.float32), 1)  # Y (white Y = 1)
    return 116.0 * lab_f(y) - 16.0


def luminance_to_rgb(l):
    """L in [0, 100], shape (..., 1) -> the gray sRGB image it describes, shape (..., 3)."""
    return lab_to_rgb(tf.concat([l, tf.zeros_like(l), tf.zeros_like(l)], axis=-1))


# -- decoding and letterboxing -----------------------------------------------------------------
def to_float_rgb(image):
    """A decoded image tensor (H, W, 1|2|3|4), uint8 or uint16 -> float32 sRGB in [0, 1], (H, W, 3).

    Gray is repeated to three channels; an alpha channel is composited over white, as a viewer
    shows a transparent image on a white page.
    """
    image = tf.convert_to_tensor(image)
    if image.dtype == tf.float32:
        rgb = image
    else:
        rgb = tf.image.convert_image_dtype(image, tf.float32)
    channels = tf.shape(rgb)[-1]
    rgb = tf.cond(
        channels >= 3,
        lambda: rgb,
        lambda: tf.concat([rgb[..., :1]] * 3 + [rgb[..., 1:]], axis=-1),  # gray (+ alpha) -> RGB (+ alpha)
    )
    rgb = tf.cond(
        tf.shape(rgb)[-1] == 4,
        lambda: rgb[..., :3] * rgb[..., 3:] + (1.0 - rgb[..., 3:]),
        lambda: rgb[..., :3],
    )
    return tf.ensure_shape(rgb, [None, None, 3])


def letterbox_box(height, width, size):
    """Where an image of ``height x width`` lands inside a ``size x size`` letterbox.

    Returns ``(top, left, new_height, new_width)`` as int32 scalars: the image is scaled so that
    its longer side is ``size`` (aspect ratio kept, each side at least one pixel) and centred.
    """
    height = tf.cast(height, tf.float32)
    width = tf.cast(width, tf.float32)
    scale = float(size) / tf.maximum(height, width)
    new_height = tf.clip_by_value(tf.cast(tf.round(height * scale), tf.int32), 1, size)
    new_width = tf.clip_by_value(tf.cast(tf.round(width * scale), tf.int32), 1, size)
    top = (size - new_height) // 2
    left = (size - new_width) // 2
    return top, left, new_height, new_width


def letterbox(image, size, pad_value=1.0):
    """Fit ``image`` (H, W, C) float into ``size x size``, aspect ratio kept, padding ``pad_value``.

    The paper pads with **white**, so for sRGB in [0, 1] the default ``pad_value=1.0`` is white
    (``tf.image.resize_with_pad`` pads black, which is why this function exists). ``pad_value=None``
    repeats the photo's outer rows and columns into the bars instead: what the colorizer is shown
    at inference, so that it never sees a white bar beside the photo (a trained network pulls the
    chroma next to white bars towards gray: the bluish-gray border band of issue 11).
    """
    image = tf.convert_to_tensor(image, tf.float32)
    shape = tf.shape(image)
    top, left, new_height, new_width = letterbox_box(shape[0], shape[1], size)
    resized = tf.image.resize(image, tf.stack([new_height, new_width]), method="bilinear", antialias=True)
    if pad_value is None:
        rows, columns = _photo_index(size, top, new_height), _photo_index(size, left, new_width)  # (size,) each
        return tf.ensure_shape(tf.gather(tf.gather(resized, rows), columns, axis=1), [size, size, image.shape[-1]])
    return _pad(resized, size, top, left, pad_value)


def _pad(resized, size, top, left, pad_value):
    """An image already resized into its letterbox box, at (top, left) -> (size, size, C) with bars of ``pad_value``."""
    shape = tf.shape(resized)
    padded = tf.pad(resized - pad_value, [[top, size - shape[0] - top], [left, size - shape[1] - left], [0, 0]])
    return tf.ensure_shape(padded + pad_value, [size, size, resized.shape[-1]])


def _photo_index(size, offset, length):
    """(size,) the photo row (or column) each row of a letterbox shows when its bars repeat the photo's edges."""
    return tf.clip_by_value(tf.range(size) - offset, 0, length - 1)


def repeat_edges(letterboxed, height, width):
    """A letterboxed image (S, S, C) of a ``height x width`` photo with its bars (white, as in the
    records) replaced by the photo's outer rows and columns: what :func:`letterbox` with
    ``pad_value=None`` gives, the input every inference path shows the colorizer."""
    size = letterboxed.shape[0]
    top, left, new_height, new_width = letterbox_box(height, width, size)
    rows, columns = top + _photo_index(size, top, new_height), left + _photo_index(size, left, new_width)
    return tf.gather(tf.gather(letterboxed, rows), columns, axis=1)


def unletterbox(image, height, width, size, start=0, stop=None):
    """Undo :func:`letterbox`: crop the padding of a ``size x size`` map, resize (bilinear, half-pixel
    centres) to ``height x width``; only rows ``start:stop`` of the result.

    Computed one axis at a time (the columns with ``tf.image.resize``, then the rows by hand), so
    that a strip of rows of a huge output costs only its own memory.
    """
    top, left, new_height, new_width = letterbox_box(height, width, size)
    content = tf.convert_to_tensor(image, tf.float32)[top : top + new_height, left : left + new_width]  # (h, w, C)
    if stop is None and isinstance(start, int) and start == 0:  # the whole map: one resize, one pass over the output
        return tf.image.resize(content, tf.stack([tf.cast(height, tf.int32), tf.cast(width, tf.int32)]), method="bilinear")
    wide = tf.image.resize(content, tf.stack([new_height, tf.cast(width, tf.int32)]), method="bilinear")  # (h, W, C)
    stop = height if stop is None else stop
    scale = tf.cast(new_height, tf.float32) / tf.cast(height, tf.float32)
    rows = (tf.cast(tf.range(start, stop), tf.float32) + 0.5) * scale - 0.5  # (rows,) source row of each output row
    floor = tf.floor(rows)
    upper = tf.gather(wide, tf.minimum(tf.cast(tf.math.ceil(rows), tf.int32), new_height - 1))  # (rows, W, C)
    lower = tf.gather(wide, tf.maximum(tf.cast(floor, tf.int32), 0))  # (rows, W, C)
    return lower + (upper - lower) * (rows - floor)[:, None, None]  # (rows, W, C)


def prepare_lab(rgb, size=IMAGE_SIZE):
    """sRGB (H, W, 3) in [0, 1] -> letterboxed Lab (size, size, 3)."""
    return rgb_to_lab(letterbox(rgb, size))


def inception_input(rgb, size=INCEPTION_SIZE):
    """sRGB (H, W, 3) in [0, 1] -> the Inception-ResNet-v2 input (size, size, 3) in [-1, 1], as the authors fed it.

    Their code takes the luma of the gamma-encoded RGB image (``tf.image.rgb_to_grayscale``:
    0.2989 R + 0.5870 G + 0.1140 B), maps it to ``2 v - 1`` and repeats it on three channels. The
    gray is letterboxed (white bars -> +1) to ``size x size``. This is not ``L / 50 - 1``: the two
    agree on neutral grays to within 0.07, but pure green gives 0.17 here and 0.76 from L.
    TensorFlow ops only: runs eagerly, in ``tf.data`` and inside a SavedModel.
    """
    rgb = tf.convert_to_tensor(rgb, tf.float32)
    shape = tf.shape(rgb)
    # Shrunk to its size inside the letterbox first (resizing and graying commute): no full-resolution
    # gray is made.
    top, left, height, width = letterbox_box(shape[0], shape[1], size)
    small = tf.image.resize(rgb, tf.stack([height, width]), method="bilinear", antialias=True)  # (h, w, 3)
    gray = _pad(tf.image.rgb_to_grayscale(small), size, top, left, pad_value=1.0)  # (size, size, 1), luma in [0, 1]
    return tf.tile(2.0 * gray - 1.0, [1, 1, 3])  # (size, size, 3)


# -- gray photos -------------------------------------------------------------------------------
# A photo is gray when 99% of its pixels have chroma sqrt(a*^2 + b*^2) below this many Lab units.
# A gray photo stored as RGB has chroma ~0 (JPEG keeps R = G = B); scanner or sensor noise of
# +-2 levels per channel gives ~3 at the 99th percentile. Colour photos are far above (the bundled
# samples 44-73; a sepia print ~20; a scene desaturated to 10% of its colour ~6). The percentile,
# not the maximum, so that a few noisy or coloured pixels (a stamp, a JPEG edge) do not count.
GRAY_CHROMA = 5.0
GRAY_PERCENTILE = 99.0


def chroma_level(lab, percentile=GRAY_PERCENTILE):
    """Lab (..., 3) -> scalar: the ``percentile``-th percentile of chroma sqrt(a^2 + b^2), in Lab units.

    TensorFlow ops (numpy arrays accepted): eager, in ``tf.data`` and in graphs.
    """
    lab = tf.convert_to_tensor(lab, tf.float32)
    chroma = tf.reshape(tf.norm(lab[..., 1:], axis=-1), [-1])  # (N,)
    n = tf.size(chroma)
    above = tf.maximum(1, tf.cast(tf.math.ceil(tf.cast(n, tf.float32) * (1.0 - percentile / 100.0)), tf.int32))
    return tf.reduce_min(tf.math.top_k(chroma, tf.minimum(above, n)).values)  # the smallest of the top 1%


def is_grayscale(lab, threshold=GRAY_CHROMA):
    """True (a bool tensor; ``bool()`` it eagerly) when the image ``lab`` (..., 3) has no colour to learn:
    its :func:`chroma_level` is below ``threshold`` Lab units. Pass the photo itself, not a
    letterbox (white bars have no chroma and would dilute the percentile)."""
    return chroma_level(lab) < threshold


def is_grayscale_rgb(rgb, threshold=GRAY_CHROMA):
    """:func:`is_grayscale` of an sRGB image (..., 3) in [0, 1]."""
    return is_grayscale(rgb_to_lab(rgb), threshold)
