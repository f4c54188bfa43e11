"""Colour hints, the TensorFlow side: simulated clicks for training, user points for inference.

An addition to the paper (Zhang et al. 2017, "Real-Time User-Guided Image Colorization with
Learned Deep Priors"): the variant of :func:`koalarization.model.network.build_colorizer` with
``hints=True`` takes a ``hints`` input (B, S, S, 3) on the letterboxed working grid: hint a, hint
b (the network's ab scale times ``HINT_GAIN``: ab/127 * 4, about ab/32, so that a photo's usual
chroma, |ab| up to ~40, spans what L's [-1, 1] spans) and a mask (1 on a hint, 0 elsewhere; a, b
are 0 there). At ab/127 alone a hint is a faint input beside L: on tests/test_hints.py's photos
the variant took about twice as many steps to follow hints as at 4x.

Training (:func:`simulate`, :func:`with_simulated_hints`): per example a number of points drawn
from a geometric distribution, P(n) = (1 - p)^n p with p = 1/8 (so 1 in 8 examples gets none and
the variant still colorizes without hints), capped at ``MAX_SIMULATED``; each a square patch of 1-9
grid cells placed uniformly at random on the grid, whose value is the ground truth's mean ab over
the patch. Stateless random ops seeded by (the epoch's seed, the batch's position in the epoch):
a resumed run draws the same hints as one never stopped.

Inference (:func:`hint_map`): points in pixels of the photo as displayed (after EXIF orientation),
x first, a point with negative x being padding; each becomes a ``HINT_PATCH`` x ``HINT_PATCH``
patch centred on the grid cell the pixel falls in. A hint's ab is the ab of its sRGB colour in
CIE Lab (as Zhang et al.: the clicked colour's chroma); its lightness is dropped, the photo's own
L is kept, so #FF0000 and #800000 ask for the same hue with more or less chroma. Where patches
overlap, the later point wins (training too).
"""

from koalarization import quiet_tensorflow  # noqa: E402

quiet_tensorflow()
import tensorflow as tf

from koalarization import colors

GEOMETRIC_P = 1.0 / 8.0  # Zhang et al.'s number of points: geometric with p = 1/8 (mean 7)
MAX_SIMULATED = 64  # simulated points per example at most (P(n > 64) = (7/8)^65 < 2e-4)
MAX_PATCH = 9  # simulated patches are 1..9 grid cells square
HINT_GAIN = 4.0  # hint a, b = scaled ab (ab/127) * HINT_GAIN in the hints input (the mask stays 0/1)
HINT_PATCH = 5  # a user's point: a 5x5-cell patch of the working grid (the middle of training's 1..9)


# -- points -> the hints input ---------------------------------------------------------------------
def rasterise(rows, cols, sizes, values, valid, size):
    """Square patches -> the hints input (B, size, size, 3): [a, b, mask], the later point on top.

    ``rows``, ``cols``: (B, K) int32 top-left cells; ``sizes``: (B, K) int32 (1..MAX_PATCH);
    ``values``: (B, K, 2) scaled ab (times ``HINT_GAIN`` here); ``valid``: (B, K) bool (invalid points draw nothing).
    Each cell takes the number (1..K) of the last point covering it by a scatter-max, then that point's value.
    """
    shape = tf.shape(rows)
    batch, points = shape[0], shape[1]
    offsets = tf.range(MAX_PATCH)
    dy, dx = tf.meshgrid(offsets, offsets, indexing="ij")
    dy, dx = tf.reshape(dy, [-1]), tf.reshape(dx, [-1])  # (P,) with P = MAX_PATCH^2
    r = rows[..., None] + dy  # (B, K, P)
    c = cols[..., None] + dx  # (B, K, P)
    inside = (dy < sizes[..., None]) & (dx < sizes[..., None]) & (r >= 0) & (r < size) & (c >= 0) & (c < size) & valid[..., None]
    ids = tf.where(inside, tf.range(1, points + 1)[None, :, None] + tf.zeros_like(r), 0)  # (B, K, P): 0 draws nothing
    b = tf.broadcast_to(tf.range(batch)[:, None, None], tf.shape(r))
    indices = tf.stack([b, tf.clip_by_value(r, 0, size - 1), tf.clip_by_value(c, 0, size - 1)], axis=-1)  # (B, K, P, 3)
    owner = tf.tensor_scatter_nd_max(tf.zeros([batch, size, size], tf.int32), tf.reshape(indices, [-1, 3]), tf.reshape(ids, [-1]))
    table = tf.concat([tf.zeros([batch, 1, 2], tf.float32), HINT_GAIN * tf.cast(values, tf.float32)], axis=1)  # (B, K+1, 2): 0 = no hint
    ab = tf.gather(table, owner, batch_dims=1)  # (B, S, S, 2)
    mask = tf.cast(owner > 0, tf.float32)[..., None]  # (B, S, S, 1)
    return tf.concat([ab, mask], axis=-1)  # (B, S, S, 3)


def no_hints(batch, size):
    """The hints input of photos without hints: all zeros (B, size, size, 3)."""
    return tf.zeros([batch, size, size, 3], tf.float32)


# -- training: simulated clicks ---------------------------------------------------------------------
def patch_means(ab, rows, cols, sizes):
    """Mean of ``ab`` (B, S, S, 2) over each square patch (B, K) -> (B, K, 2), by a summed-area table."""
    table = tf.pad(tf.cumsum(tf.cumsum(ab, axis=1), axis=2), [[0, 0], [1, 0], [1, 0], [0, 0]])  # (B, S+1, S+1, 2)

    def at(r, c):
        return tf.gather_nd(table, tf.stack([r, c], axis=-1), batch_dims=1)  # (B, K, 2)

    total = at(rows + sizes, cols + sizes) - at(rows, cols + sizes) - at(rows + sizes, cols) + at(rows, cols)
    return total / tf.cast(sizes * sizes, tf.float32)[..., None]


def simulate(ab, seed, max_points=MAX_SIMULATED, p=GEOMETRIC_P):
    """Simulated user clicks for a batch: ground-truth ab (B, S, S, 2) scaled -> hints (B, S, S, 3).

    ``seed``: (2,) int64, e.g. ``[epoch seed, batch position]``; the same seed gives the same hints.
    """
    ab = tf.convert_to_tensor(ab, tf.float32)
    size = ab.shape[1] if ab.shape[1] is not None else tf.shape(ab)[1]
    batch = tf.shape(ab)[0]
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), 4)  # (4, 2)
    u = tf.random.stateless_uniform([batch], seeds[0], minval=1e-7, maxval=1.0)
    count = tf.cast(tf.floor(tf.math.log(u) / tf.math.log(1.0 - p)), tf.int32)  # geometric: P(n) = (1-p)^n p
    valid = tf.range(max_points)[None, :] < count[:, None]  # (B, K)
    sizes = tf.random.stateless_uniform([batch, max_points], seeds[1], minval=1, maxval=MAX_PATCH + 1, dtype=tf.int32)
    room = tf.cast(size - sizes + 1, tf.float32)  # top-left positions that keep the patch on the grid
    rows = tf.cast(tf.floor(tf.random.stateless_uniform([batch, max_points], seeds[2]) * room), tf.int32)
    cols = tf.cast(tf.floor(tf.random.stateless_uniform([batch, max_points], seeds[3]) * room), tf.int32)
    values = patch_means(ab, rows, cols, sizes)  # (B, K, 2)
    return rasterise(rows, cols, sizes, values, valid, size)


def simulate_count(ab, seed, count, boxes=None):
    """Exactly ``count`` simulated points per example (evaluation's rows: 0, 1, 5, 10, 50 hints) ->
    (hints (B, S, S, 3), (rows, cols, sizes, values) of the points).

    ``boxes``: (B, 4) int ``(top, left, height, width)`` of each photo inside its letterbox: the
    points fall on the photo, not on the bars (default: anywhere on the grid)."""
    ab = tf.convert_to_tensor(ab, tf.float32)
    size, batch = ab.shape[1], tf.shape(ab)[0]
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), 3)
    count = max(int(count), 0)
    if boxes is None:
        boxes = tf.tile(tf.constant([[0, 0, size, size]], tf.int32), [batch, 1])
    top, left, height, width = (tf.cast(boxes, tf.int32)[:, i : i + 1] for i in range(4))  # (B, 1) each
    largest = tf.minimum(tf.minimum(height, width), MAX_PATCH)  # (B, 1)
    sizes = 1 + tf.cast(tf.floor(tf.random.stateless_uniform([batch, count], seeds[0]) * tf.cast(largest, tf.float32)), tf.int32)
    uniform = lambda seed, extent: tf.cast(tf.floor(tf.random.stateless_uniform([batch, count], seed) * tf.cast(extent - sizes + 1, tf.float32)), tf.int32)  # noqa: E731
    rows, cols = top + uniform(seeds[1], height), left + uniform(seeds[2], width)
    values = patch_means(ab, rows, cols, sizes)
    return rasterise(rows, cols, sizes, values, tf.ones([batch, count], tf.bool), size), (rows, cols, sizes, values)


def with_simulated_hints(dataset, seed, start=0):
    """Batches ``(inputs, ab)`` -> ``(inputs + {"hints"}, ab)``, the hints of the batch at position i
    (counted from ``start``: the batches a resumed run skipped) seeded by ``[seed, i]``."""

    def add(position, batch):
        inputs, ab = batch
        return {**inputs, "hints": simulate(ab, tf.stack([tf.constant(seed, tf.int64), position]))}, ab

    return dataset.enumerate(start).map(add, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


# -- inference: a user's points ------------------------------------------------------------------------
def rgb_to_hint_ab(rgb):
    """uint8 sRGB colours (..., 3) -> their CIE Lab ab, scaled as the network's (..., 2)."""
    lab = colors.rgb_to_lab(tf.cast(rgb, tf.float32) / 255.0)  # (..., 3)
    return colors.scale_ab(lab[..., 1:])


def point_tensors(points):
    """Checked points ``[(x, y, (r, g, b)), ...]`` -> (xy (N, 2) float32, rgb (N, 3) uint8)."""
    xy = tf.constant([[x, y] for x, y, _ in points], tf.float32, shape=[len(points), 2])
    return xy, tf.constant([colour for _, _, colour in points], tf.uint8, shape=[len(points), 3])


def grid_cells(xy, height, width, size):
    """Points (N, 2) in photo pixels, x first -> (row, col) (N,) int32 of the letterboxed grid cell each falls in."""
    top, left, new_height, new_width = colors.letterbox_box(height, width, size)
    x, y = xy[:, 0], xy[:, 1]
    col = tf.cast(tf.floor((x + 0.5) * tf.cast(new_width, tf.float32) / tf.cast(width, tf.float32)), tf.int32)
    row = tf.cast(tf.floor((y + 0.5) * tf.cast(new_height, tf.float32) / tf.cast(height, tf.float32)), tf.int32)
    return top + tf.clip_by_value(row, 0, new_height - 1), left + tf.clip_by_value(col, 0, new_width - 1)


def check_inside(xy, height, width, name="image"):
    """An op raising ``InvalidArgumentError`` (one line) when a point (x >= 0) is outside the photo."""
    xy = tf.convert_to_tensor(xy, tf.float32)
    used = xy[:, 0] >= 0
    inside = (xy[:, 0] < tf.cast(width, tf.float32)) & (xy[:, 1] >= 0) & (xy[:, 1] < tf.cast(height, tf.float32))
    message = tf.strings.join([name, ": a hint lies outside the ", tf.strings.as_string(width), "x",
                               tf.strings.as_string(height), " photo (x, y in displayed-photo pixels; negative x is padding)"])  # fmt: skip
    return tf.debugging.Assert(tf.reduce_all(inside | ~used), [message])


def hint_map(height, width, xy, rgb, size, patch=HINT_PATCH):
    """One photo's points -> its hints input (S, S, 3).

    ``xy`` (N, 2) float32 in displayed-photo pixels, x first, negative x = padding; ``rgb`` (N, 3)
    uint8. Points are not checked here (:func:`check_inside` is); one outside lands on the edge.
    """
    xy = tf.reshape(tf.convert_to_tensor(xy, tf.float32), [-1, 2])
    rgb = tf.reshape(tf.convert_to_tensor(rgb, tf.uint8), [-1, 3])
    row, col = grid_cells(xy, height, width, size)  # (N,) each
    corner = lambda centre: tf.clip_by_value(centre - patch // 2, 0, size - patch)  # noqa: E731  (the patch stays on the grid)
    sizes = tf.fill(tf.shape(row), patch)
    hints = rasterise(corner(row)[None], corner(col)[None], sizes[None], rgb_to_hint_ab(rgb)[None], (xy[:, 0] >= 0)[None], size)
    return hints[0]  # (S, S, 3)
