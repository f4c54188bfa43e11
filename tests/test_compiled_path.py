"""Speed without other pixels: every model source runs the same compiled steps (traced once, reused
for every batch and photo size), the cheaper recombination gives the colours of the straightforward
float64 formula, and the output formats of ``colorize``.

No timings here (they are in ``python -m benchmarks``: ``colorize_throughput``, ``savedmodel_latency``,
``first_photo``); these tests check what the speed work must not change.
"""

import os

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from koalarization.export import savedmodel as saved_model
from koalarization import colors
from koalarization.colorize import files as colorize
from koalarization.export import savedmodel as export
from koalarization.model import method as inference
from koalarization.model.colorizer import Colorizer
from conftest import synthetic_photo
from test_colorize import DIM, embedder, run_dir, save, to_uint8  # noqa: F401  (fixtures)

SIZE = 32  # working size


def previous_path(network, inception, rgb):
    """The method step by step, eagerly, each network a plain Keras call and the recombination by
    the float64 reference below: what ``colorize`` computed before the steps were compiled."""
    l, gray = inference.network_inputs(tf.constant(rgb, tf.float32), SIZE)
    ab = network({"l": l[None], "embedding": inception(gray[None], training=False)}, training=False)[0]  # (S, S, 2)
    return reference_recombine(ab, rgb)


def reference_recombine(ab_scaled, rgb, steps=inference.GAMUT_STEPS):
    """The recombination written plainly in float64 numpy: sRGB -> Y -> Lab with the predicted ab
    (upsampled by the shared ``upsample_ab``) -> linear RGB, chroma bisected into the gamut -> uint8."""
    rgb = np.asarray(rgb, np.float64)
    height, width = rgb.shape[:2]
    ab = inference.upsample_ab(ab_scaled, height, width, SIZE).numpy().astype(np.float64)  # (H, W, 2)
    linear = np.where(rgb > 0.04045, ((rgb + 0.055) / 1.055) ** 2.4, rgb / 12.92)
    y = linear @ np.array([0.212671, 0.715160, 0.072169])
    fy = np.where(y > 0.008856, np.cbrt(y), 7.787 * y + 16 / 116)
    to_rgb = np.linalg.inv(np.array([[0.412453, 0.357580, 0.180423], [0.212671, 0.715160, 0.072169], [0.019334, 0.119193, 0.950227]]))

    def rgb_of(scale):
        f_inv = lambda f: np.where(f > 0.2068966, f**3, (f - 16 / 116) / 7.787)  # noqa: E731
        x, z = f_inv(fy + ab[..., 0] * scale / 500) * 0.95047, f_inv(np.maximum(fy - ab[..., 1] * scale / 200, 0)) * 1.08883
        return np.stack([x, y, z], -1) @ to_rgb.T  # (H, W, 3) linear

    def outside(linear):
        return (linear.min(-1) < -inference.GAMUT_TOLERANCE) | (linear.max(-1) > 1 + inference.GAMUT_TOLERANCE)

    low, high = np.zeros((height, width)), np.ones((height, width))
    for _ in range(steps):
        middle = (low + high) / 2
        misses = outside(rgb_of(middle))
        low, high = np.where(misses, low, middle), np.where(misses, middle, high)
    out = np.clip(rgb_of(np.where(outside(rgb_of(1.0)), low, 1.0)), 0, 1)
    srgb = np.where(out > 0.0031308, 1.055 * np.maximum(out, 0.0031308) ** (1 / 2.4) - 0.055, 12.92 * out)
    return np.floor(srgb * 255 + 0.5).astype(np.uint8)


def photos_of_several_sizes():
    rng = np.random.default_rng(3)
    return [to_uint8(synthetic_photo(rng, h, w)) / 255.0 for h, w in ((40, 56), (64, 24), (33, 33), (20, 70), (48, 48))]


@pytest.fixture(scope="module")
def sources(run_dir, embedder, tmp_path_factory):  # noqa: F811
    """The three model sources of one network: run dir, .keras file, SavedModel."""
    saved = saved_model.export_saved_model(Colorizer.load(run_dir, inception=embedder, working_size=SIZE), tmp_path_factory.mktemp("m") / "1", "random")
    return {"run dir": run_dir, ".keras file": os.path.join(run_dir, "model.keras"), "SavedModel": str(saved)}


def test_every_model_source_runs_compiled_steps_traced_once_with_the_previous_colours(sources, embedder):  # noqa: F811
    photos = photos_of_several_sizes()
    keras_colorizer = Colorizer.load(sources["run dir"], inception=embedder, working_size=SIZE)
    network, inception = keras_colorizer.networks
    expected = [previous_path(network, inception, rgb) for rgb in photos]
    for name, path in sources.items():
        colorizer = Colorizer.load(path, inception=None if name == "SavedModel" else embedder, working_size=SIZE)
        outputs = colorizer.colorize(photos[:1]) + colorizer.colorize(photos[1:4]) + colorizer.colorize(photos[4:])  # batches of 1, 3, 1
        # Each step was traced once, for every batch and photo size, and then reused; the hints' step
        # is never traced for photos given without hints.
        assert {step: fn.experimental_get_tracing_count() for step, fn in colorizer.compiled.items()} == {
            "prepare": 1, "networks": 1, "recombine": 1, "hint_map": 0
        }, name
        for rgb, out, ref in zip(photos, outputs, expected):
            assert out.dtype == tf.uint8 and out.shape == rgb.shape, name
            assert np.abs(out.numpy().astype(int) - ref.astype(int)).max() <= 1, name  # within 1/255 of the previous path


def test_recombination_gives_the_float64_formulas_colours_within_one_level():
    rng = np.random.default_rng(7)
    rgb = to_uint8(synthetic_photo(rng, 150, 200)) / 255.0
    rgb[:20] = rng.integers(0, 256, (20, 200, 3)) / 255.0  # noise, blacks and whites too
    ab = tf.constant(rng.uniform(-0.6, 0.7, (SIZE, SIZE, 2)), tf.float32)  # saturated: many colours leave the gamut
    expected = reference_recombine(ab, rgb).astype(int)
    whole = inference.recombine_in_strips(ab, tf.constant(rgb, tf.float32), SIZE).numpy().astype(int)
    strips = inference.recombine_in_strips(ab, tf.constant(rgb, tf.float32), SIZE, strip_pixels=1000).numpy()
    assert np.abs(whole - expected).max() <= 1
    np.testing.assert_array_equal(strips, whole)  # strips are only a memory bound


def test_first_photo_goes_alone_then_full_batches(run_dir, embedder):  # noqa: F811
    colorizer = Colorizer.load(run_dir, inception=embedder, working_size=SIZE)
    sizes, predict = [], colorizer.predict_prepared
    colorizer.predict_prepared = lambda pairs: sizes.append(len(pairs)) or predict(pairs)
    photos = photos_of_several_sizes()
    alone = [out.numpy() for out in colorizer.colorize(photos)]
    results = list(colorizer.colorize_stream(enumerate(photos), batch_size=2, workers=2))
    assert sizes[1:] == [1, 2, 2]
    assert [key for key, _, _ in results] == list(range(len(photos)))  # in input order, with threads
    for (_, _, out), expected in zip(results, alone):
        np.testing.assert_array_equal(out.numpy(), expected)


def test_output_formats_and_png_compression(run_dir, embedder, tmp_path, capsys):  # noqa: F811
    source = save(str(tmp_path / "in" / "photo.jpg"), to_uint8(synthetic_photo(np.random.default_rng(1), 60, 80)), quality=95)
    common = [source, "--model", run_dir, "--working-size", str(SIZE)]
    pixels = {}
    for fmt, flags in (("png", []), ("png9", ["--png-compression", "9"]), ("jpg", ["--format", "jpg"]), ("webp", ["--format", "webp", "--quality", "95"])):
        out_dir = tmp_path / fmt
        assert colorize.main([*common, "-o", str(out_dir), *flags], inception=embedder) == 0
        assert "model ready in" in capsys.readouterr().out
        [name] = os.listdir(out_dir)
        with Image.open(out_dir / name) as image:
            assert (name, image.format, image.size) == (f"photo.{fmt[:3] if fmt != 'webp' else 'webp'}", {"png9": "PNG", "jpg": "JPEG"}.get(fmt, fmt.upper()), (80, 60))
            pixels[fmt] = np.asarray(image.convert("RGB"), int)
    np.testing.assert_array_equal(pixels["png9"], pixels["png"])  # every level is lossless
    assert os.path.getsize(tmp_path / "png9" / "photo.png") < os.path.getsize(tmp_path / "png" / "photo.png")
    for lossy in ("jpg", "webp"):
        assert np.abs(pixels[lossy] - pixels["png"]).mean() < 4
    for flags, message in ((["--format", "gif"], "invalid choice"), (["--quality", "0"], "--quality 0"), (["--png-compression", "10"], "--png-compression 10")):
        with pytest.raises(SystemExit) as exit_info:
            colorize.main([*common, "-o", str(tmp_path / "x"), *flags])
        assert exit_info.value.code == 2 and message in capsys.readouterr().err
