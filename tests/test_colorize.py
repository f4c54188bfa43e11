"""`python -m koalarization.colorize`: any size in, same size and same luminance out.

A tiny stand-in embedder replaces Inception-ResNet-v2 here (test_export.py runs the real one); the
colorizer is randomly initialised with a strong bias on its ab output, so outputs are visibly
coloured and keeping the luminance is a real test.
"""

import json
import os

import keras
import numpy as np
import pytest
from PIL import Image
from skimage import color

from koalarization.export import savedmodel as saved_model
from koalarization.colorize import files as colorizing
from koalarization import images, plots
from koalarization.colorize import files as colorize
from koalarization.model import inception as embedding
from koalarization.export import savedmodel as export
from koalarization.model import network as model
from conftest import synthetic_photo

DIM = 16
AB_BIAS = (0.25, 0.35)  # scaled ab -> about (32, 44) Lab units: a clear orange cast


def stand_in_embedder(dim, name="stand_in"):
    gray = keras.Input((299, 299, 3))
    pooled = keras.layers.GlobalAveragePooling2D()(keras.layers.AveragePooling2D(8)(gray))  # (B, 3)
    return keras.Model(gray, keras.layers.Dense(dim)(pooled), name=name)


def tinted_colorizer(dim):
    colorizer = model.build_colorizer(embedding_dim=dim)
    colorizer.get_layer("decoder_conv5").bias.assign(np.array(AB_BIAS, np.float32))
    return colorizer


def write_run_dir(path, colorizer, weights_source="random", embedding_model="inception_resnet_v2"):
    os.makedirs(path, exist_ok=True)
    colorizer.save(os.path.join(path, "model.keras"))
    dim = int(colorizer.input["embedding"].shape[-1])
    config = {"epochs": 1, "records": {"image_size": 64, "embedding": {"model": embedding_model, "weights": {"source": weights_source}, "dim": dim}}}
    with open(os.path.join(path, "config.json"), "w") as f:
        json.dump(config, f)
    return str(path)


def save(path, array, **kwargs):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(array).save(path, **kwargs)
    return str(path)


def to_uint8(rgb):
    return np.round(np.clip(rgb, 0, 1) * 255).astype(np.uint8)


def lab_of(path):
    return color.rgb2lab(images.read_image(path))


@pytest.fixture(scope="module")
def embedder():
    return stand_in_embedder(DIM)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return write_run_dir(tmp_path_factory.mktemp("run"), tinted_colorizer(DIM), embedding_model="synthetic")


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """A folder of small inputs in several formats, modes and shapes, one in a sub-folder."""
    root = str(tmp_path_factory.mktemp("photos"))
    rng = np.random.default_rng(0)
    save(f"{root}/colour.jpg", to_uint8(synthetic_photo(rng, 48, 64)), quality=95)
    save(f"{root}/gray.png", to_uint8(synthetic_photo(rng, 40, 30)[..., 0]))
    save(f"{root}/one.png", np.array([[[200, 90, 40]]], np.uint8))
    save(f"{root}/panorama.bmp", to_uint8(synthetic_photo(rng, 12, 400)))
    save(f"{root}/sub/deep.png", to_uint8(synthetic_photo(rng, 33, 17)))
    frames = [Image.fromarray(to_uint8(synthetic_photo(rng, 30, 30))).convert("P") for _ in range(2)]
    frames[0].save(f"{root}/anim.gif", save_all=True, append_images=frames[1:])
    return root


def run(inputs, out_dir, model_path, embedder=None, **options):
    config = colorizing.ColorizeConfig(inputs=tuple(inputs), out_dir=str(out_dir), model=model_path, **options)
    return colorizing.colorize_files(config, inception=embedder, log=lambda message: None)


def test_outputs_keep_size_and_full_resolution_luminance(photos, run_dir, embedder, tmp_path):
    summary = run([photos], tmp_path, run_dir, embedder, working_size=32, batch_size=4)
    expected = ["anim", "colour", "gray", "one", "panorama", os.path.join("sub", "deep")]
    assert sorted(os.path.relpath(p, tmp_path) for p in summary.colorized) == [e + ".png" for e in expected]
    assert not summary.failed
    inputs = sorted(images.find_images([photos]))
    for source, name in zip(inputs, sorted(expected)):
        out = os.path.join(tmp_path, name + ".png")
        with Image.open(out) as image:
            assert image.format == "PNG" and image.mode == "RGB"
        original, colorized = lab_of(source), lab_of(out)
        assert colorized.shape == original.shape, name
        assert np.abs(colorized[..., 0] - original[..., 0]).mean() <= 1.0, name
        assert np.hypot(colorized[..., 1], colorized[..., 2]).mean() > 10, f"{name}: no colour was added"


def test_colour_input_is_reduced_to_its_luminance(run_dir, embedder, tmp_path):
    rgb = synthetic_photo(np.random.default_rng(1), 40, 56)
    gray = color.lab2rgb(np.dstack([color.rgb2lab(rgb)[..., :1], np.zeros((40, 56, 2))]))
    sources = [save(f"{tmp_path}/in/colour.png", to_uint8(rgb)), save(f"{tmp_path}/in/gray.png", to_uint8(gray))]
    run(sources, tmp_path / "out", run_dir, embedder, working_size=32)
    from_colour, from_gray = (lab_of(f"{tmp_path}/out/{n}.png") for n in ("colour", "gray"))
    assert np.abs(from_colour[..., 1:] - from_gray[..., 1:]).mean() < 1.0  # the model never saw the colours


def test_huge_panorama_keeps_its_size(run_dir, embedder, tmp_path):
    y, x = np.mgrid[0:3000, 0:5000]
    image = np.dstack([80 + x * 60 // 5000, 80 + y * 60 // 3000, 80 + (x + y) % 60]).astype(np.uint8)  # mid-tones
    source = save(f"{tmp_path}/in/panorama.jpg", image, quality=90)
    run([source], tmp_path / "out", run_dir, embedder, working_size=32)
    colorized = np.asarray(Image.open(tmp_path / "out" / "panorama.png"))
    assert colorized.shape == (3000, 5000, 3)
    l_in = color.rgb2lab(images.read_image(source)[::7, ::7])[..., 0]  # a subsample keeps the check fast
    l_out = color.rgb2lab(colorized[::7, ::7])[..., 0]
    assert np.abs(l_in - l_out).mean() <= 1.0


def test_compare_panel_shows_gray_colorized_and_original(photos, run_dir, embedder, tmp_path):
    sources = [f"{photos}/colour.jpg", f"{photos}/gray.png", f"{photos}/one.png"]
    run(sources, tmp_path, run_dir, embedder, working_size=32, compare=True)
    gap = plots.PANEL_GAP
    for name, tiles in (("colour", 3), ("gray", 2), ("one", 3)):
        original = images.read_image(f"{photos}/{name}" + (".jpg" if name == "colour" else ".png"))
        panel = np.asarray(Image.open(tmp_path / f"{name}_compare.png"))
        height = int(np.clip(original.shape[0], plots.PANEL_MIN_HEIGHT, plots.PANEL_MAX_HEIGHT))
        width = round(original.shape[1] * height / original.shape[0])
        assert panel.shape == (height, tiles * width + (tiles - 1) * gap, 3), name
        first = panel[:, :width].astype(int)
        assert np.abs(first - first[..., :1]).max() <= 1, f"{name}: first tile is not the gray input"
    panel = np.asarray(Image.open(tmp_path / "colour_compare.png")).astype(float) / 255
    original = images.read_image(f"{photos}/colour.jpg")
    last_tile = panel[:, -round(64 * 64 / 48) :]  # the 48x64 input is shown 64 pixels high
    assert np.abs(last_tile.mean(axis=(0, 1)) - original.mean(axis=(0, 1))).max() < 0.02  # the colour original


def test_unreadable_inputs_are_reported_and_the_rest_goes_on(photos, run_dir, embedder, tmp_path, capsys):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "text.jpg").write_text("not a picture")
    (bad / "empty.png").write_bytes(b"")
    with open(f"{photos}/colour.jpg", "rb") as f:
        (bad / "truncated.jpg").write_bytes(f.read()[:300])
    args = ["-o", str(tmp_path / "out"), "--model", run_dir, "--working-size", "32"]
    assert colorize.main([str(bad), f"{photos}/one.png", str(tmp_path / "missing.png"), *args], inception=embedder) == 0
    printed = capsys.readouterr()
    for name in ("text.jpg", "empty.png", "truncated.jpg", "missing.png"):
        assert name in printed.out, f"{name} not reported"
    assert "not an image" in printed.out and "empty file" in printed.out
    assert "no such file, folder or matching glob" in printed.out
    assert os.listdir(tmp_path / "out") == ["one.png"]
    # Nothing could be done at all: exit status 1.
    assert colorize.main([str(bad), "-o", str(tmp_path / "out2"), "--model", run_dir], inception=embedder) == 1


def test_existing_outputs_are_kept_unless_overwrite(photos, run_dir, embedder, tmp_path):
    source = [f"{photos}/one.png"]
    run(source, tmp_path, run_dir, embedder, working_size=32)
    marker = np.zeros((1, 1, 3), np.uint8)
    Image.fromarray(marker).save(tmp_path / "one.png")
    summary = run(source, tmp_path, run_dir, embedder, working_size=32)
    assert summary.existing == [str(tmp_path / "one.png")] and not summary.colorized
    assert np.array_equal(np.asarray(Image.open(tmp_path / "one.png")), marker)
    summary = run(source, tmp_path, run_dir, embedder, working_size=32, overwrite=True)
    assert summary.colorized == [str(tmp_path / "one.png")]
    assert not np.array_equal(np.asarray(Image.open(tmp_path / "one.png")), marker)


@pytest.fixture(scope="module")
def inception_run_dir(tmp_path_factory):
    """A run dir whose colorizer takes 1000-d Inception embeddings, trained (says its config) with random weights."""
    return write_run_dir(tmp_path_factory.mktemp("inception_run"), tinted_colorizer(embedding.EMBEDDING_DIM))


def test_model_from_run_dir_or_keras_file_uses_the_recorded_inception_weights(
    photos, inception_run_dir, tmp_path, monkeypatch
):
    requested = []

    def fake_build_inception(weights="imagenet"):
        requested.append(weights)
        return stand_in_embedder(embedding.EMBEDDING_DIM)

    monkeypatch.setattr(embedding, "build_inception", fake_build_inception)
    source = f"{photos}/one.png"
    assert colorize.main([source, "-o", str(tmp_path / "a"), "--model", inception_run_dir]) == 0
    keras_file = os.path.join(inception_run_dir, "model.keras")
    weights_file = tmp_path / "my.weights.h5"
    weights_file.write_bytes(b"x")
    argv = [source, "-o", str(tmp_path / "b"), "--model", keras_file, "--inception-weights", str(weights_file)]
    assert colorize.main(argv) == 0
    assert requested == ["random", str(weights_file)]
    assert os.path.exists(tmp_path / "a" / "one.png") and os.path.exists(tmp_path / "b" / "one.png")


def test_offline_imagenet_weights_give_a_clear_error(photos, inception_run_dir, tmp_path, monkeypatch, capsys):
    def offline(*args, **kwargs):
        raise Exception("URL fetch failure on https://storage.googleapis.com/...: Name or service not known")

    monkeypatch.setattr(keras.applications, "InceptionResNetV2", offline)
    argv = [f"{photos}/one.png", "-o", str(tmp_path), "--model", inception_run_dir, "--inception-weights", "imagenet"]
    assert colorize.main(argv) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and "Traceback" not in error
    assert "--inception-weights random" in error and "--inception-weights PATH" in error


def test_colorizer_trained_on_other_embeddings_is_a_clear_error(photos, run_dir, tmp_path, capsys):
    assert colorize.main([f"{photos}/one.png", "-o", str(tmp_path), "--model", run_dir]) == 2
    error = capsys.readouterr().err
    assert "16-d" in error and "1000-d" in error and "synthetic" in error and run_dir in error


def test_saved_model_colorizes_like_the_keras_model(photos, run_dir, embedder, tmp_path):
    import tensorflow as tf

    colorizer = keras.saving.load_model(os.path.join(run_dir, "model.keras"))
    saved = saved_model.export_saved_model(colorizer, tmp_path / "sm" / "1", "random", inception=embedder, working_size=32)
    sources = [f"{photos}/colour.jpg", f"{photos}/gray.png"]
    run(sources, tmp_path / "keras", run_dir, embedder, working_size=32)
    run(sources, tmp_path / "saved", saved)  # working size 32 comes from export.json
    served = tf.saved_model.load(saved).signatures["serving_default"]
    with open(sources[1], "rb") as f:
        png = served(image_bytes=tf.constant([f.read()]))["colorized_bytes"][0]
    for name in ("colour", "gray"):
        reference = np.asarray(Image.open(tmp_path / "keras" / f"{name}.png")).astype(int)
        assert np.abs(np.asarray(Image.open(tmp_path / "saved" / f"{name}.png")).astype(int) - reference).max() <= 1
    reference = np.asarray(Image.open(tmp_path / "keras" / "gray.png")).astype(int)
    assert np.abs(tf.io.decode_png(png).numpy().astype(int) - reference).max() <= 1


def test_command_line_errors(run_dir, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        colorize.main(["x.png", "-o", str(tmp_path), "--model", run_dir, "--no-such-flag"])
    assert exit_info.value.code == 2
    assert colorize.main(["x.png", "-o", str(tmp_path), "--model", str(tmp_path / "nope")]) == 2
    assert "nope: model not found" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        colorize.main(["x.png", "-o", str(tmp_path), "--model", run_dir, "--working-size", "30"])
    assert exit_info.value.code == 2
    assert "--working-size 30: must be a positive multiple of 8" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        colorize.main(["--help"])
    assert "--inception-weights" in capsys.readouterr().out
