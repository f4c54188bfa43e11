"""The records builder (``python -m tfrecords_builder``), run with a tiny stand-in for Inception.

Covers: every image mode converted correctly and broken files skipped with a reason; the
solid-colour letterbox check; the bundled samples; hash splits; resume
after a crash; determinism; the TFDS source with mock data; the command line and its errors.
"""

import dataclasses
import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
from PIL import Image
from skimage import color as skcolor

from conftest import synthetic_photo
from koalarization import colors, images, records
from koalarization.records.dataset import Records
from koalarization.model import inception as embedding
from tfrecords_builder.config import BuildConfig
from tfrecords_builder.builder import BuildError, build, split_of
from tfrecords_builder.sources import sample_photo_paths
from tfrecords_builder import builder as build_module
from tfrecords_builder.builder import main
from tfrecords_builder.config import make_parser

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def stand_in(x):
    """(B, 299, 299, 3) -> (B, 25): a deterministic 5x5 sample of the gray input."""
    return np.asarray(x)[:, ::60, ::60, 0].reshape(len(x), -1)


def read_records(out):
    """{key: parsed example} over every shard of every split listed in the manifest."""
    manifest = records.read_manifest(out)
    found = {}
    for split in records.SPLITS:
        for path in Records(out).shards(split):
            for batch in tf.data.TFRecordDataset(path).batch(64):
                parsed = records.parse_examples(batch, manifest["image_size"], records.embedding_dim(manifest))
                for i, key in enumerate(parsed["key"].numpy()):
                    example = {name: value[i].numpy() for name, value in parsed.items()}
                    example["split"] = split
                    example["lab"] = np.concatenate(
                        [colors.unscale_l(example["l"]), colors.unscale_ab(example["ab"])], axis=-1
                    )  # (S, S, 3) in Lab units
                    assert key.decode() not in found, "duplicate example"
                    found[key.decode()] = example
    return found


def keys_in(shard_path):
    parse = lambda x: tf.io.parse_single_example(x, {"key": tf.io.FixedLenFeature([], tf.string)})["key"]  # noqa: E731
    return [k.decode() for k in tf.data.TFRecordDataset(str(shard_path)).map(parse).as_numpy_iterator()]


def lab_of(rgb255):
    return skcolor.rgb2lab(np.array([[rgb255]], np.float64) / 255.0)[0, 0]


def save_photos(folder, n, size=(20, 28), seed=0):
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        pixels = (synthetic_photo(rng, *size) * 255).round().astype(np.uint8)
        Image.fromarray(pixels).save(os.path.join(folder, f"photo{i:02d}.png"))
    return folder


# -- every kind of input ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """Photos in every mode Pillow writes, plus broken files; returns (folder, expected, bad)."""
    root = str(tmp_path_factory.mktemp("corpus"))
    save_photos(os.path.join(root, "photos"), 3)
    Image.fromarray((synthetic_photo(np.random.default_rng(5), 24, 30) * 255).astype(np.uint8)).save(
        os.path.join(root, "photos", "photo.jpg"), quality=95
    )
    Image.fromarray((synthetic_photo(np.random.default_rng(6), 24, 30) * 255).astype(np.uint8)).save(
        os.path.join(root, "photos", "photo.bmp")
    )
    p = lambda name: os.path.join(root, name)  # noqa: E731
    expected = {}  # path -> (height, width, rgb255 expected in the middle)
    Image.new("L", (30, 20), 128).save(p("gray.png"))
    expected[p("gray.png")] = (20, 30, (128, 128, 128))
    Image.new("RGB", (30, 20), (200, 30, 40)).convert("P", palette=Image.Palette.ADAPTIVE).save(p("palette.gif"))
    expected[p("palette.gif")] = (20, 30, (200, 30, 40))
    Image.new("RGBA", (30, 20), (0, 0, 255, 128)).save(p("rgba.png"))
    alpha = 128 / 255
    expected[p("rgba.png")] = (20, 30, tuple(255 * (np.array([0, 0, 1]) * alpha + 1 - alpha)))
    Image.fromarray(np.full((20, 30), 40000, np.uint16)).save(p("sixteen.png"))
    expected[p("sixteen.png")] = (20, 30, (255 * 40000 / 65535,) * 3)
    Image.new("CMYK", (30, 20), (0, 200, 200, 30)).save(p("cmyk.jpg"), quality=100)
    with Image.open(p("cmyk.jpg")) as im:
        assert im.mode == "CMYK"
        expected[p("cmyk.jpg")] = (20, 30, tuple(np.asarray(im.convert("RGB"))[10, 15]))
    Image.new("RGB", (1, 1), (10, 200, 30)).save(p("tiny.png"))
    expected[p("tiny.png")] = (1, 1, (10, 200, 30))
    # stored 40 wide x 20 high, red left / blue right; EXIF orientation 6 = shown turned 90° clockwise
    sideways = np.zeros((20, 40, 3), np.uint8)
    sideways[:, :20] = (255, 0, 0)
    sideways[:, 20:] = (0, 0, 255)
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(sideways).save(p("rotated.jpg"), exif=exif, quality=100)

    bad = {}
    open(p("empty.jpg"), "wb").close()
    bad[p("empty.jpg")] = "empty"
    Image.new("RGB", (64, 64), (1, 2, 3)).save(p("whole.png"))
    with open(p("whole.png"), "rb") as f:
        payload = f.read()
    os.remove(p("whole.png"))
    with open(p("truncated.png"), "wb") as f:
        f.write(payload[: len(payload) // 2])
    bad[p("truncated.png")] = "decode"
    with open(p("notes.jpg"), "w") as f:
        f.write("these are not pixels\n")
    bad[p("notes.jpg")] = "not an image"
    if os.geteuid() != 0:  # root reads anything, so the unreadable case exists only for other users
        Image.new("RGB", (8, 8)).save(p("locked.png"))
        os.chmod(p("locked.png"), 0)
        bad[p("locked.png")] = "decode"
    return root, expected, bad


def key_of(root, path):
    return os.path.relpath(path, root).replace(os.sep, "/")


def test_corpus_every_mode_converted_and_bad_files_skipped(corpus, tmp_path):
    root, expected, bad = corpus
    out = str(tmp_path / "records")
    config = BuildConfig(
        out=out, images=(root,), image_size=32, batch_size=3, shard_size=4, val_fraction=0.0, keep_gray=True
    )
    manifest = build(config, embedder=stand_in, progress=False)

    skipped = {s["path"]: s["reason"] for s in manifest["skipped"]}
    assert set(skipped) == {key_of(root, p) for p in bad}
    for path, word in bad.items():
        assert word in skipped[key_of(root, path)]
    found = {os.path.join(root, key): example for key, example in read_records(out).items()}
    all_inputs = images.find_images([root])
    assert set(found) == set(all_inputs) - set(bad)
    assert manifest["splits"]["train"]["examples"] == len(found)

    for path, (height, width, rgb) in expected.items():
        example = found[path]
        assert (example["height"], example["width"]) == (height, width), path
        np.testing.assert_allclose(example["lab"][16, 16], lab_of(rgb), atol=0.6, err_msg=path)
        if (height, width) == (20, 30):  # wide: white bands above and below
            np.testing.assert_allclose(example["lab"][0, 16], [100, 0, 0], atol=0.6, err_msg=path)
    np.testing.assert_allclose(found[os.path.join(root, "tiny.png")]["lab"][0, 0], lab_of((10, 200, 30)), atol=0.6)
    rotated = found[os.path.join(root, "rotated.jpg")]
    assert (rotated["height"], rotated["width"]) == (40, 20)  # EXIF rotation applied
    assert rotated["lab"][6, 16, 1] > 40 and rotated["lab"][6, 16, 2] > 20  # red on top
    assert rotated["lab"][26, 16, 2] < -60  # blue below
    np.testing.assert_allclose(rotated["lab"][16, 2], [100, 0, 0], atol=0.6)  # white side bands

    # the stored embedding is the embedder's output for the photo's Inception input
    photo = os.path.join(root, "photos", "photo00.png")
    want = stand_in(colors.inception_input(images.read_image(photo))[None].numpy())[0]
    np.testing.assert_allclose(found[photo]["embedding"], want, atol=1e-6)


def test_skipped_files_are_reported_as_they_happen(corpus, tmp_path, capsys):
    root, _, bad = corpus
    build(BuildConfig(out=str(tmp_path), images=(root,), image_size=16, batch_size=8), embedder=stand_in, progress=False)
    printed = capsys.readouterr().out
    for path in bad:
        assert printed.count(f"skipped {key_of(root, path)}: ") == 1


def test_solid_colour_300x200_comes_back_letterboxed(tmp_path):
    colour = (40, 160, 90)
    Image.new("RGB", (300, 200), colour).save(tmp_path / "solid.png")
    tiny = keras.Sequential(
        [keras.Input((299, 299, 3)), keras.layers.AveragePooling2D(60), keras.layers.Flatten(), keras.layers.Dense(8)],
        name="tiny_embedder",
    )
    out = str(tmp_path / "records")
    manifest = build(BuildConfig(out=out, images=(str(tmp_path / "solid.png"),), val_fraction=0.0), embedder=tiny, progress=False)
    assert manifest["embedding"]["dim"] == 8 and manifest["embedding"]["model"] == "tiny_embedder"

    inputs, ab = next(iter(Records(out).dataset("train", batch_size=1, shuffle=False)))
    assert inputs["l"].shape == (1, 224, 224, 1) and ab.shape == (1, 224, 224, 2) and inputs["embedding"].shape == (1, 8)
    lab = np.concatenate([colors.unscale_l(inputs["l"][0].numpy()), colors.unscale_ab(ab[0].numpy())], axis=-1)
    top, left, new_h, new_w = (int(v) for v in colors.letterbox_box(200, 300, 224))
    assert (left, new_w) == (0, 224) and new_h == 149 and top == 37
    middle = lab[top + 1 : top + new_h - 1]  # the photo, away from its edge rows
    np.testing.assert_allclose(middle, np.broadcast_to(lab_of(colour), middle.shape), atol=0.6)
    for band in (lab[:top], lab[top + new_h :]):  # padding above and below: white
        assert band.shape[0] >= 37
        np.testing.assert_allclose(band, np.broadcast_to([100, 0, 0], band.shape), atol=0.6)


def test_bundled_samples_are_colour_photos_and_build(tmp_path):
    paths = sample_photo_paths()
    assert len(paths) >= 5 and all(os.path.isfile(p) for p in paths)
    for name in ("camera.png", "moon.png", "page.png"):
        assert not any(p.endswith(name) for p in paths)
    for path in paths:
        rgb = images.read_image(path)
        assert np.abs(rgb - rgb.mean(axis=-1, keepdims=True)).max() > 0.1, f"{path} is not a colour photo"

    out = str(tmp_path / "records")
    manifest = build(BuildConfig(out=out, val_fraction=0.3), embedder=stand_in, progress=False)
    assert manifest["splits"]["train"]["examples"] + manifest["splits"]["val"]["examples"] == len(paths)
    assert manifest["skipped"] == [] and manifest["embedding"]["dim"] == 25
    inputs, ab = next(iter(Records(out).dataset("train", batch_size=16, shuffle=False, with_keys=True)))
    assert inputs["l"].shape[1:] == (224, 224, 1) and ab.shape[1:] == (224, 224, 2)
    assert -1 <= np.min(inputs["l"]) and np.max(inputs["l"]) <= 1 and -1 <= np.min(ab) and np.max(ab) <= 1
    assert all(k.decode().startswith(("skimage/", "matplotlib/")) for k in inputs["key"].numpy())


# -- splits, determinism, resume ------------------------------------------------------------
@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    return save_photos(str(tmp_path_factory.mktemp("photos")), 12, size=(12, 16))


def _config(out, photos, **overrides):
    base = dict(out=str(out), images=(photos,), image_size=16, batch_size=2, shard_size=2, val_fraction=0.4)
    return BuildConfig(**{**base, **overrides})


def test_splits_follow_the_key_hash(photos, tmp_path):
    build(_config(tmp_path / "one", photos), stand_in, False)
    single = read_records(tmp_path / "one")
    assert len(single) == 12
    for key, example in single.items():
        assert example["split"] == split_of(key, 0.4)
    assert {e["split"] for e in single.values()} == {"train", "val"}

    subset = build(_config(tmp_path / "subset", photos, limit=5), stand_in, False)
    assert subset["inputs"] == 5
    for key, example in read_records(tmp_path / "subset").items():
        assert example["split"] == single[key]["split"]  # same photo, same split, whatever else is built


def test_a_folder_of_an_older_build_over_workers_is_refused_before_any_work(photos, tmp_path):
    """--num-workers is gone (scale out on Beam): a new build beside an old worker build's files would leave two builds."""
    many = tmp_path / "many"
    many.mkdir()
    (many / "manifest-w00.json").write_text("{}")
    with pytest.raises(BuildError, match="manifest-w00.json of an older build split over --num-workers"):
        build(_config(many, photos), stand_in, False)
    assert sorted(os.listdir(many)) == ["manifest-w00.json"]


def _shard_bytes(out):
    return {n: open(os.path.join(out, n), "rb").read() for n in sorted(os.listdir(out)) if n.endswith(".tfrecord")}


def test_resume_after_a_crash_finishes_without_redoing_or_losing(photos, tmp_path):
    clean = build(_config(tmp_path / "clean", photos), stand_in, False)
    again = build(_config(tmp_path / "again", photos), stand_in, False)
    assert _shard_bytes(tmp_path / "again") == _shard_bytes(tmp_path / "clean")  # same inputs, same records
    assert again["splits"] == clean["splits"]

    calls = []

    def crashes_on_third_batch(x):
        calls.append(len(x))
        if len(calls) == 3:
            raise RuntimeError("simulated crash")
        return stand_in(x)

    out = tmp_path / "crashed"
    info = {"model": "stand_in"}  # the same embedder identity on both runs
    with pytest.raises(RuntimeError, match="simulated crash"):
        build(_config(out, photos), crashes_on_third_batch, False, embedder_info=info)
    done = {n: os.stat(out / n).st_mtime_ns for n in os.listdir(out) if n.endswith(".tfrecord")}
    assert len(done) == 2  # two whole shards (one batch each) before the crash, nothing partial
    assert not [n for n in os.listdir(out) if ".tmp" in n or n.startswith("manifest")]  # nothing half-done looks done

    with pytest.raises(BuildError, match="--resume"):  # resuming with other settings is refused
        build(_config(out, photos, val_fraction=0.5, resume=True), stand_in, False, embedder_info=info)

    resumed_calls = []

    def counting(x):
        resumed_calls.append(len(x))
        return stand_in(x)

    manifest = build(_config(out, photos, resume=True), counting, False, embedder_info=info)
    assert sum(resumed_calls) == 12 - 4  # only the unfinished shards were embedded
    assert {n: os.stat(out / n).st_mtime_ns for n in done} == done  # finished shards not rewritten
    assert manifest["splits"] == clean["splits"]
    assert _shard_bytes(out) == _shard_bytes(tmp_path / "clean")  # no example lost, duplicated or changed
    assert set(read_records(out)) == set(read_records(tmp_path / "clean"))


# -- TFDS ------------------------------------------------------------------------------------------
def test_tfds_source_with_mock_data(tmp_path):
    out = str(tmp_path / "records")
    with tfds.testing.mock_data(num_examples=5):
        manifest = build(BuildConfig(out=out, tfds="cifar10:test", image_size=16, val_fraction=0.0), stand_in, False)
    found = read_records(out)
    assert sorted(found) == [f"tfds:cifar10:test:{i}" for i in range(5)]
    assert manifest["splits"]["train"]["examples"] == 5 and manifest["source"] == "tensorflow-datasets cifar10:test"
    assert all((e["height"], e["width"]) == (32, 32) for e in found.values())


def test_tfds_gets_as_far_as_downloading_in_this_install(tmp_path, monkeypatch, capsys):
    """Preparing a TFDS dataset runs tensorflow-datasets' own code up to the download (finding the
    dataset's checksums needs importlib_resources, which nothing else pulls in): offline, the one
    line must be about the download, not a module missing from the install."""

    def offline(self, *args, **kwargs):
        raise ConnectionError("Failed to establish a new connection: [Errno -3] Temporary failure in name resolution")

    for method in ("download", "download_and_extract"):
        monkeypatch.setattr(tfds.download.DownloadManager, method, offline)
    argv = ["--out", str(tmp_path / "r"), "--tfds", "tf_flowers", "--tfds-data-dir", str(tmp_path / "tfds"), "--inception-weights", "random"]
    assert main(argv) == 2  # an input that cannot be had: the table's 2 (was 1)
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "cannot be downloaded (ConnectionError" in err, err


def test_tfds_offline_and_unknown_name_are_one_line_errors(tmp_path, monkeypatch, capsys):
    def offline(self, *args, **kwargs):
        raise ConnectionError("Failed to establish a new connection: [Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(tfds.core.DatasetBuilder, "download_and_prepare", offline)
    data_dir = str(tmp_path / "tfds")
    assert main(["--out", str(tmp_path / "r"), "--tfds", "cifar10", "--tfds-data-dir", data_dir]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith("error: --tfds cifar10:") and "cannot be downloaded" in err

    assert main(["--out", str(tmp_path / "r"), "--tfds", "no_such_dataset_xyz"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "no_such_dataset_xyz" in err


# -- the command line --------------------------------------------------------------------------------
def test_help_explains_every_option(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    for field in dataclasses.fields(BuildConfig):
        assert "--" + field.name.replace("_", "-") in text
    assert all(action.help for action in make_parser()._actions)


@pytest.mark.parametrize(
    "argv", [["--out", "x", "--bogus"], ["--out", "x", "--samples", "--tfds", "mnist"], ["--out", "x", "--shard-size", "0"]]
)
def test_bad_flags_are_usage_errors(argv, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2 and "error:" in capsys.readouterr().err


def test_missing_input_is_named_without_traceback(tmp_path, capsys):
    missing = str(tmp_path / "no_such_folder")
    assert main(["--out", str(tmp_path / "r"), "--images", missing, "--inception-weights", "random"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"error: {missing}: no such file, folder or matching glob"
    assert not (tmp_path / "r").exists()  # the --out it would have made is not left behind, empty


def test_inception_weights_reach_the_manifest(photos, tmp_path, monkeypatch):
    """Without an embedder, build() loads Inception with the requested weights (a stand-in here)."""
    asked = []

    def fake_build_inception(weights):
        asked.append(weights)
        return keras.Sequential([keras.Input((299, 299, 3)), keras.layers.AveragePooling2D(100), keras.layers.Flatten()])

    monkeypatch.setattr(embedding, "build_inception", fake_build_inception)
    manifest = build(_config(tmp_path, photos, inception_weights="random", limit=2), progress=False)
    assert asked == ["random"]
    assert manifest["embedding"]["weights"]["source"] == "random" and manifest["embedding"]["dim"] == (299 // 100) ** 2 * 3
    assert manifest["embedding"]["model"] == build_module.INCEPTION_MODEL and manifest["embedding"]["input_size"] == 299


def test_offline_imagenet_cli_stops_with_one_line(photos, tmp_path):
    """The real command, offline (proxies to a closed port, empty Keras cache): one line, no traceback."""
    env = {
        **os.environ,
        "KERAS_HOME": str(tmp_path / "keras"),
        "HTTPS_PROXY": "http://127.0.0.1:9",
        "HTTP_PROXY": "http://127.0.0.1:9",
        "https_proxy": "http://127.0.0.1:9",
        "http_proxy": "http://127.0.0.1:9",
    }
    result = subprocess.run(
        [sys.executable, "-m", "tfrecords_builder", "--out", str(tmp_path / "r"), "--images", photos, "--limit", "1"],
        capture_output=True, text=True, env=env, cwd=REPO, timeout=600,
    )
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ImageNet weights"), result.stderr
    assert "--inception-weights PATH" in lines[0] and "--inception-weights random" in lines[0]
    assert not os.path.exists(tmp_path / "r" / records.MANIFEST_NAME)
