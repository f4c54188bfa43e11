"""Colorizing a photo of any size: the method shared by ``colorize`` and the exported SavedModel.

    rgb (H, W, 3) --luminance--> L (H, W, 1)  ----------------------------------------+
        --letterbox 224, L/50-1--> l (224, 224, 1) --colorizer--> ab (224, 224, 2)      |
        --letterbox 299, gray----> (299, 299, 3) --Inception----> embedding (1000,)     |
    ab --remove padding, upsample to H x W, x127--> ab (H, W, 2) --+ L (full res) ---> Lab -> rgb (uint8)

The network runs at its working size, but the output keeps the input's size, aspect ratio and
full-resolution luminance; only the chroma is upsampled (Zhang et al. 2016, DDColor, DeOldify),
and shrunk where a colour would fall outside sRGB, so that the luminance survives exactly.
Only a colour input's luminance is ever used. Every step is a TensorFlow op, so the same code runs
eagerly here and inside the SavedModel graph. The full-resolution part (the last line above) is
the costly one on a big photo: it works on float32 planes with table look-ups at both ends and
writes the gamut-fitted pixels into the uint8 output, goes a strip of rows at a time (a photo of up
to 2 MP is one strip), and never makes the full-size L, ab or Lab images (see :func:`recombine`).
The object that runs this method with a model is :class:`koalarization.model.colorizer.Colorizer`.
"""

import numpy as np

from koalarization import quiet_tensorflow  # noqa: E402

quiet_tensorflow()
import tensorflow as tf

from koalarization import colors

# -- the method ----------------------------------------------------------------------------------
def network_inputs(rgb, working_size=colors.IMAGE_SIZE):
    """sRGB (H, W, 3) in [0, 1] -> (l (S, S, 1) scaled, Inception input (299, 299, 3)).

    The colorizer's letterbox repeats the photo's edges into the bars instead of the training's
    white: the bars are cropped from its prediction anyway, and a network trained with white bars
    (target ab = 0 there) greys the photo's chroma next to them, a band 5-15% of the short side wide.
    The Inception input is the builder's own function (white bars, as in training).
    """
    l = colors.scale_l(colors.rgb_to_luminance(colors.letterbox(rgb, working_size, pad_value=None)))  # (S, S, 1)
    return l, colors.inception_input(rgb)  # (299, 299, 3) in [-1, 1], the builder's function


# The full-resolution part is written for speed and memory: separate float32 planes (no stacking
# and slicing of (..., 3) tensors; the plane math is colors.linear_planes_from_lab), table look-ups
# instead of powers at both ends (sRGB -> linear on the input, linear -> sRGB uint8 on the output),
# the gamut search only on the pixels that need it (written into the uint8 output), a strip of rows
# at a time, or the whole photo at once when it fits in one strip (most do: no loop, no copies); the ab
# scaling done on the small map and each chroma plane upsampled on its own (see benchmarks: serving_default).
GAMUT_STEPS = 8  # bisection steps of the gamut fit: chroma within 1/256 of the largest that fits
GAMUT_TOLERANCE = 1e-4  # linear RGB this far outside [0, 1] still counts as inside
STRIP_PIXELS = 1 << 21  # recombine_in_strips works on about this many pixels at a time
INPUT_LEVELS = 65535  # sRGB -> linear table: one entry per 16-bit level (8-bit k/255 = 257 k/65535 exactly)
OUTPUT_LEVELS = 1 << 18  # linear -> sRGB uint8 table: steps of 4e-6 in linear, 0.013 of a level at its steepest (black)


def _srgb_to_linear_table():
    srgb = np.arange(INPUT_LEVELS + 1, dtype=np.float64) / INPUT_LEVELS
    return np.where(srgb > 0.04045, ((srgb + 0.055) / 1.055) ** 2.4, srgb / 12.92).astype(np.float32)


def _linear_to_uint8_table():
    linear = np.arange(OUTPUT_LEVELS + 1, dtype=np.float64) / OUTPUT_LEVELS
    srgb = np.where(linear > 0.0031308, 1.055 * np.maximum(linear, 0.0031308) ** (1 / 2.4) - 0.055, 12.92 * linear)
    return np.floor(srgb * 255.0 + 0.5).astype(np.uint8)


SRGB_TO_LINEAR = _srgb_to_linear_table()  # (65536,) float32
LINEAR_TO_UINT8 = _linear_to_uint8_table()  # (262145,) uint8


def srgb_to_linear_by_table(rgb):
    """sRGB in [0, 1] (...) -> linear (...), by table: exact for 8- and 16-bit pixels, 1/65535 steps otherwise."""
    index = tf.cast(tf.clip_by_value(rgb, 0.0, 1.0) * float(INPUT_LEVELS) + 0.5, tf.int32)
    return tf.gather(tf.constant(SRGB_TO_LINEAR), index)


def linear_to_uint8_by_table(linear):
    """Linear RGB (...) -> sRGB uint8 (...), rounded, clipped to [0, 1] first; by table (within one level of the formula, equal almost always)."""
    index = tf.cast(tf.clip_by_value(linear, 0.0, 1.0) * float(OUTPUT_LEVELS) + 0.5, tf.int32)
    return tf.gather(tf.constant(LINEAR_TO_UINT8), index)


def _outside(planes):
    """[r, g, b] linear planes -> bool plane: outside sRGB (by more than a hair)."""
    low = tf.minimum(tf.minimum(planes[0], planes[1]), planes[2])
    high = tf.maximum(tf.maximum(planes[0], planes[1]), planes[2])
    return (low < -GAMUT_TOLERANCE) | (high > 1.0 + GAMUT_TOLERANCE)


def _fit_chroma_indices(fy, y, da, db, planes, steps=GAMUT_STEPS):
    """Flat planes f(Y), Y, a/500, b/200 (P,) and their linear RGB ``planes`` -> (indices (N, 1) of the
    pixels outside sRGB, their [r, g, b] linear planes (N,) desaturated just enough to fit).

    Clipping an out-of-gamut colour in RGB instead would change its luminance (a bright orange
    comes out darker), and the output's luminance must be the input's: here Y is kept exactly and
    only the chroma of the pixels outside the gamut shrinks (bisection on its scale).
    """
    outside = tf.where(_outside(planes))  # (N, 1) pixel indices
    fy_out, y_out, da_out, db_out = (tf.gather_nd(plane, outside) for plane in (fy, y, da, db))  # (N,) each
    low, high = tf.zeros_like(fy_out), tf.ones_like(fy_out)  # chroma scales known to fit / not to fit
    for _ in range(steps):
        middle = (low + high) * 0.5
        misses = _outside(colors.linear_planes_from_lab(fy_out, y_out, da_out * middle, db_out * middle))  # (N,)
        low, high = tf.where(misses, low, middle), tf.where(misses, middle, high)
    return outside, colors.linear_planes_from_lab(fy_out, y_out, da_out * low, db_out * low)  # (N, 1), 3 x (N,)


def _fit_chroma(fy, y, a, b, steps=GAMUT_STEPS):
    """Planes f(Y), Y, a, b (...) -> [r, g, b] linear planes (...), each colour outside sRGB desaturated just enough to fit."""
    shape = tf.shape(fy)
    fy, y, da, db = (tf.reshape(plane, [-1]) for plane in (fy, y, a / 500.0, b / 200.0))  # (P,) each
    planes = colors.linear_planes_from_lab(fy, y, da, db)  # 3 x (P,)
    outside, fitted = _fit_chroma_indices(fy, y, da, db, planes, steps)
    return [tf.reshape(tf.tensor_scatter_nd_update(plane, outside, part), shape) for plane, part in zip(planes, fitted)]


def lab_to_rgb_keeping_luminance(luminance, ab, steps=GAMUT_STEPS):
    """L (..., 1) + ab (..., 2) -> sRGB (..., 3), each colour outside sRGB desaturated just enough to fit (L kept)."""
    fy = (tf.convert_to_tensor(luminance, tf.float32)[..., 0] + 16.0) / 116.0  # (...)
    ab = tf.convert_to_tensor(ab, tf.float32)
    planes = _fit_chroma(fy, colors.lab_f_inverse(fy), ab[..., 0], ab[..., 1], steps)  # 3 x (...)
    return colors.linear_to_srgb(tf.stack(planes, axis=-1))  # (..., 3)


def upsample_ab(ab_scaled, height, width, working_size=colors.IMAGE_SIZE, start=0, stop=None):
    """Predicted ab (S, S, 2) scaled -> rows ``start:stop`` of ab (H, W, 2) in Lab units, the letterbox removed."""
    return colors.unletterbox(colors.unscale_ab(ab_scaled), height, width, working_size, start, stop)  # (rows, W, 2)


def _chroma_planes(ab_scaled, height, width, working_size, start, stop):
    """Predicted ab (S, S, 2) scaled -> flat planes a/500, b/200 (P,) of rows ``start:stop`` at full resolution.

    The Lab scaling is applied to the small map (it commutes with the bilinear upsampling) and each
    plane is upsampled on its own, so that the full-resolution ab is made once, already as planes."""
    ratios = ab_scaled * (1.0 / tf.constant([500.0, 200.0]))  # (S, S, 2): upsample_ab scales by 127 on the small map
    return [tf.reshape(upsample_ab(ratios[..., i : i + 1], height, width, working_size, start, stop), [-1]) for i in (0, 1)]


def recombine(ab_scaled, rgb, working_size=colors.IMAGE_SIZE, start=0, stop=None):
    """Predicted ab (S, S, 2) scaled + the input sRGB (H, W, 3) -> rows ``start:stop`` of the output sRGB (uint8).

    The output's luminance is the input's, at full resolution; its chroma is the prediction's.
    """
    shape = tf.shape(rgb)
    rows = rgb if stop is None and isinstance(start, int) and start == 0 else rgb[start:stop]
    linear = srgb_to_linear_by_table(tf.convert_to_tensor(rows, tf.float32))  # (rows, W, 3)
    y = tf.reshape(tf.tensordot(linear, colors.Y_FROM_LINEAR, 1), [-1])  # (P,)
    del linear
    da, db = _chroma_planes(ab_scaled, shape[0], shape[1], working_size, start, stop)  # (P,) each
    fy = colors.lab_f(y)  # (P,)
    planes = colors.linear_planes_from_lab(fy, y, da, db)  # 3 x (P,)
    outside, fitted = _fit_chroma_indices(fy, y, da, db, planes)  # (N, 1), 3 x (N,)
    out = tf.stack([linear_to_uint8_by_table(plane) for plane in planes], axis=-1)  # (P, 3): uint8 planes stacked
    out = tf.tensor_scatter_nd_update(out, outside, linear_to_uint8_by_table(tf.stack(fitted, axis=-1)))  # (P, 3)
    return tf.reshape(out, [-1, shape[1], 3])  # (rows, W, 3)


def recombine_in_strips(ab_scaled, rgb, working_size=colors.IMAGE_SIZE, strip_pixels=None):
    """:func:`recombine` of the whole image, a strip of about ``strip_pixels`` pixels at a time -> uint8 (H, W, 3).

    One function for eager code and graphs (a ``tf.while_loop`` that runs one strip at a time), so
    the full-resolution float planes of only one strip exist at once: peak memory per pixel is the
    input's float32 (12 bytes) plus the uint8 output (3 bytes), whatever the photo's size. A photo
    of one strip or less (most of them) is recombined whole, without the loop and its copies.
    """
    shape = tf.shape(rgb)
    height, width = shape[0], shape[1]
    step = tf.maximum(1, (strip_pixels or STRIP_PIXELS) // tf.maximum(width, 1))  # rows per strip
    count = (height + step - 1) // step

    def strips():
        parts = tf.TensorArray(tf.uint8, size=count, infer_shape=False, element_shape=tf.TensorShape([None, None, 3]))

        def body(i, parts):
            start = i * step
            return i + 1, parts.write(i, recombine(ab_scaled, rgb, working_size, start, tf.minimum(start + step, height)))

        _, parts = tf.while_loop(lambda i, _: i < count, body, [0, parts], parallel_iterations=1)
        return parts.concat()

    whole = tf.cond(count <= 1, lambda: recombine(ab_scaled, rgb, working_size), strips)
    return tf.ensure_shape(whole, [None, None, 3])  # (H, W, 3)


def check_lab_shape(l):
    """An op raising ``InvalidArgumentError`` (one line, in graphs too) unless ``l`` is (B, H, W, 1) with H, W multiples of 8."""
    shape = tf.shape(l)
    message = tf.strings.join(
        ["colorize_lab: l is ", tf.strings.reduce_join(tf.strings.as_string(shape), separator="x"),
         "; H and W must be multiples of 8 (the encoder downsamples by 8)"]
    )  # fmt: skip
    return tf.debugging.Assert(tf.equal(shape[1] % 8 + shape[2] % 8, 0), [message])


def to_uint8(rgb):
    """sRGB float in [0, 1] -> uint8, rounded (not truncated)."""
    return tf.cast(tf.round(tf.clip_by_value(rgb, 0.0, 1.0) * 255.0), tf.uint8)


def check_working_size(size):
    if size < 8 or size % 8:
        raise ValueError(f"working size {size}: must be a multiple of 8 (the encoder downsamples by 8)")
    return size


