"""Lab conversion and letterboxing (koalarization.colors) against skimage, eagerly and in tf.data."""

import itertools

import numpy as np
import pytest
import tensorflow as tf
from skimage import color as skcolor

from koalarization import colors

GAMUT_CORNERS = np.array(list(itertools.product([0.0, 1.0], repeat=3)), dtype=np.float32)  # (8, 3)


def _random_colours(n=2000, seed=0):
    rgb = np.random.default_rng(seed).random((n, 3)).astype(np.float32)
    return np.concatenate([rgb, GAMUT_CORNERS])  # (n + 8, 3)


def _in_dataset(fn, x):
    """Run ``fn`` on ``x`` inside ``tf.data.Dataset.map`` (graph mode), one element."""
    return next(iter(tf.data.Dataset.from_tensors(x).map(fn))).numpy()


@pytest.fixture(params=["eager", "tf.data"])
def run(request):
    return (lambda fn, x: fn(x).numpy()) if request.param == "eager" else _in_dataset


def test_rgb_to_lab_matches_skimage(run):
    rgb = _random_colours()
    ours = run(colors.rgb_to_lab, rgb)
    reference = skcolor.rgb2lab(rgb.astype(np.float64))
    assert ours.shape == rgb.shape
    np.testing.assert_allclose(ours, reference, atol=0.05)


def test_lab_to_rgb_matches_skimage(run):
    lab = skcolor.rgb2lab(_random_colours(seed=1).astype(np.float64)).astype(np.float32)
    ours = run(colors.lab_to_rgb, lab)
    reference = skcolor.lab2rgb(lab.astype(np.float64))
    # compare in Lab units, the unit the tolerance is stated in
    np.testing.assert_allclose(skcolor.rgb2lab(ours.astype(np.float64)), skcolor.rgb2lab(reference), atol=0.05)


def test_round_trip_rgb_lab_rgb_within_one_level(run):
    rgb = _random_colours(seed=2)
    back = run(lambda x: colors.lab_to_rgb(colors.rgb_to_lab(x)), rgb)
    assert np.max(np.abs(back - rgb)) <= 1.0 / 255


def test_gamut_corners_land_where_lab_says():
    lab = colors.rgb_to_lab(GAMUT_CORNERS).numpy()
    np.testing.assert_allclose(lab[0], [0, 0, 0], atol=0.05)  # black
    np.testing.assert_allclose(lab[-1], [100, 0, 0], atol=0.05)  # white


def test_scaling_constants_round_trip():
    l = np.array([0.0, 50.0, 100.0], np.float32)
    np.testing.assert_allclose(colors.scale_l(l), [-1, 0, 1])
    np.testing.assert_allclose(colors.unscale_l(colors.scale_l(l)), l)
    np.testing.assert_allclose(colors.scale_ab(np.float32(127.0)), 1.0)


@pytest.mark.parametrize("height,width", [(200, 300), (300, 200), (50, 50), (1, 1), (7, 120)])
def test_letterbox_white_bands_aspect_and_position(run, height, width):
    size = 64
    image = np.full((height, width, 3), [0.2, 0.5, 0.8], np.float32)
    boxed = run(lambda x: colors.letterbox(x, size), image)
    assert boxed.shape == (size, size, 3)
    top, left, new_h, new_w = (int(v) for v in colors.letterbox_box(height, width, size))
    assert max(new_h, new_w) == size  # the longer side fills the square
    assert abs(new_h / new_w - height / width) <= 1.0 / min(new_h, new_w) + 1e-6 or min(new_h, new_w) == 1
    assert abs(top - (size - new_h - top)) <= 1 and abs(left - (size - new_w - left)) <= 1  # centred
    content = boxed[top : top + new_h, left : left + new_w]
    np.testing.assert_allclose(content, np.broadcast_to([0.2, 0.5, 0.8], content.shape), atol=1e-5)
    band = np.ones((size, size), bool)
    band[top : top + new_h, left : left + new_w] = False
    assert np.all(boxed[band] == 1.0)  # white padding, exactly


def test_letterbox_keeps_orientation():
    """Top half red, bottom half blue in a wide image: stays so after letterboxing."""
    image = np.zeros((40, 80, 3), np.float32)
    image[:20, :, 0] = 1.0
    image[20:, :, 2] = 1.0
    boxed = colors.letterbox(image, 32).numpy()
    top, _, new_h, _ = (int(v) for v in colors.letterbox_box(40, 80, 32))
    assert boxed[top + 1, 16, 0] > 0.9 and boxed[top + 1, 16, 2] < 0.1
    assert boxed[top + new_h - 2, 16, 2] > 0.9 and boxed[top + new_h - 2, 16, 0] < 0.1


def test_unletterbox_inverts_letterbox():
    y, x = np.mgrid[0:30, 0:60] / 60.0
    image = np.stack([x, y, 1 - x], axis=-1).astype(np.float32)  # a smooth (30, 60, 3) gradient
    back = colors.unletterbox(colors.letterbox(image, 120), 30, 60, 120).numpy()
    assert back.shape == (30, 60, 3)
    assert np.max(np.abs(back - image)) < 0.03


def test_inception_input_is_gray_in_minus_one_one(run):
    rgb = np.random.default_rng(4).random((20, 30, 3)).astype(np.float32)
    x = run(colors.inception_input, rgb)
    assert x.shape == (colors.INCEPTION_SIZE, colors.INCEPTION_SIZE, 3)
    assert -1.0 <= x.min() and x.max() <= 1.0
    np.testing.assert_array_equal(x[..., 0], x[..., 1])
    np.testing.assert_array_equal(x[..., 0], x[..., 2])
    assert np.allclose(x[0, 0], 1.0, atol=1e-4)  # white padding band -> +1


def test_inception_input_is_the_authors_luma_of_gamma_encoded_rgb(run):
    """2 * tf.image.rgb_to_grayscale(rgb) - 1 on random colours (a square image: no resampling)."""
    side = 48
    rgb = _random_colours(side * side - 8, seed=7).reshape(side, side, 3)  # every corner of the gamut too
    x = run(lambda image: colors.inception_input(image, side), rgb)
    reference = 2.0 * tf.image.rgb_to_grayscale(rgb).numpy() - 1.0  # (side, side, 1)
    np.testing.assert_allclose(x, np.repeat(reference, 3, axis=-1), atol=1e-5)
    # not L/50 - 1: pure green is 0.17 for the authors' luma, 0.76 from L*
    green = np.zeros((side, side, 3), np.float32)
    green[..., 1] = 1.0
    np.testing.assert_allclose(run(lambda image: colors.inception_input(image, side), green)[0, 0], 0.174, atol=1e-3)


def test_gray_photos_are_told_from_colour_ones():
    rng = np.random.default_rng(8)
    gray = np.repeat(rng.random((40, 50, 1)), 3, axis=-1).astype(np.float32)
    noisy = np.clip(np.round(gray * 255) + rng.integers(-2, 3, gray.shape), 0, 255).astype(np.float32) / 255
    assert bool(colors.is_grayscale_rgb(gray)) and bool(colors.is_grayscale_rgb(noisy))  # sensor noise is not colour
    mean = noisy.mean(axis=-1, keepdims=True)
    sepia = np.clip(mean * np.array([1.0, 0.9, 0.75], np.float32), 0, 1)
    assert not bool(colors.is_grayscale_rgb(sepia))  # a toned print has colour to learn
    assert not bool(colors.is_grayscale_rgb(_random_colours()[:, None]))
    mostly_gray = gray.copy()
    mostly_gray[:2, :2] = [1.0, 0.0, 0.0]  # 4 red pixels of 2000: below the 99th percentile
    assert bool(colors.is_grayscale_rgb(mostly_gray))
    assert 0 < float(colors.chroma_level(colors.rgb_to_lab(noisy))) < colors.GRAY_CHROMA


def test_prepare_lab_shape_and_white_padding(run):
    rgb = np.full((10, 40, 3), [0.9, 0.1, 0.1], np.float32)
    lab = run(lambda x: colors.prepare_lab(x, 32), rgb)
    assert lab.shape == (32, 32, 3)
    np.testing.assert_allclose(lab[0, 0], [100, 0, 0], atol=0.05)
    np.testing.assert_allclose(lab[16, 16], skcolor.rgb2lab(np.array([[0.9, 0.1, 0.1]]))[0], atol=0.05)


def test_to_float_rgb_gray_and_alpha():
    gray = np.full((2, 2, 1), 128, np.uint8)
    np.testing.assert_allclose(colors.to_float_rgb(gray).numpy(), np.full((2, 2, 3), 128 / 255), atol=1e-6)
    rgba = np.zeros((2, 2, 4), np.uint8)  # transparent black -> white
    np.testing.assert_allclose(colors.to_float_rgb(rgba).numpy(), 1.0)
    sixteen = np.full((1, 1, 3), 65535, np.uint16)
    np.testing.assert_allclose(colors.to_float_rgb(sixteen).numpy(), 1.0)
