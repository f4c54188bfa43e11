"""What a build holds and how it mixes (issue 9): keys that name a photo whatever its spelling,
each real file once, a uniform --limit sample, shards and batches that mix a class-sorted tree,
gray photos left out, and records of an older schema refused with one line.

The class-sorted tree is 40 "class" folders of 15 tiny photos each, one hue per class, built with
a stand-in embedder at image size 8: the real ImageNet layout, cheaply.
"""

import colorsys
import json
import os
import shutil
import signal

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from conftest import synthetic_photo, write_synthetic_records
from koalarization import colors, discovery, images, records
from koalarization.records.dataset import Records
from tfrecords_builder.config import BuildConfig
from tfrecords_builder.builder import build, split_of

CLASSES, PER_CLASS = 40, 15


def stand_in(x):
    """(B, 299, 299, 3) -> (B, 4): a deterministic sample of the gray input."""
    return np.asarray(x)[:, ::150, ::150, 0].reshape(len(x), -1)


def keys_of(out, split=None):
    """{key: split} over every shard listed in the manifest, in shard order."""
    recs = Records(str(out))
    parse = lambda x: tf.io.parse_single_example(x, {"key": tf.io.FixedLenFeature([], tf.string)})["key"]  # noqa: E731
    found = {}
    for name in records.SPLITS if split is None else (split,):
        for path in recs.shards(name):
            for key in tf.data.TFRecordDataset(path).map(parse).as_numpy_iterator():
                assert key.decode() not in found, "duplicate example"
                found[key.decode()] = name
    return found


def shard_keys(path):
    parse = lambda x: tf.io.parse_single_example(x, {"key": tf.io.FixedLenFeature([], tf.string)})["key"]  # noqa: E731
    return [k.decode() for k in tf.data.TFRecordDataset(str(path)).map(parse).as_numpy_iterator()]


@pytest.fixture(scope="module")
def class_tree(tmp_path_factory):
    """``n000/`` .. ``n039/``, 15 byte-distinct 8x10 photos each, every class its own hue."""
    root = tmp_path_factory.mktemp("imagenet") / "train"
    rng = np.random.default_rng(0)
    for c in range(CLASSES):
        folder = root / f"n{c:03d}"
        folder.mkdir(parents=True)
        rgb = np.array(colorsys.hsv_to_rgb(c / CLASSES, 0.8, 0.9))
        for i in range(PER_CLASS):
            pixels = np.clip(rgb * 255 + rng.integers(-12, 13, (8, 10, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(folder / f"img{i:02d}.png")
    return str(root)


def _classes(keys):
    return {key.split("/")[0] for key in keys}


def _config(out, source, **overrides):
    base = dict(out=str(out), images=(source,), image_size=8, batch_size=16, shard_size=50, val_fraction=0.1)
    return BuildConfig(**{**base, **overrides})


def test_limit_is_a_uniform_sample_the_same_on_every_run(class_tree, tmp_path):
    manifest = build(_config(tmp_path / "a", class_tree, limit=120), stand_in, progress=False)
    picked = keys_of(tmp_path / "a")
    assert manifest["inputs"] == 120 and len(picked) == 120
    assert len(_classes(picked)) >= 30  # the first 120 sorted paths would be 8 classes
    build(_config(tmp_path / "b", class_tree, limit=120), stand_in, progress=False)
    assert keys_of(tmp_path / "b") == picked  # same photos, same splits


def test_shards_and_the_first_shuffled_batch_mix_a_class_sorted_tree(class_tree, tmp_path):
    out = tmp_path / "records"
    manifest = build(_config(out, class_tree), stand_in, progress=False)
    total = sum(manifest["splits"][s]["examples"] for s in records.SPLITS)
    assert total == CLASSES * PER_CLASS and manifest["skipped"] == []
    for name in manifest["splits"]["train"]["shards"][:3]:  # each shard a uniform mix of the split
        keys = shard_keys(out / name)
        assert len(keys) == 50 and len(_classes(keys)) >= 20  # 50 sorted keys would span 4 classes

    inputs, _ = next(iter(Records(str(out)).dataset("train", batch_size=32, seed=0, with_keys=True)))
    batch_classes = _classes(k.decode() for k in inputs["key"].numpy())
    assert len(batch_classes) >= 16, sorted(batch_classes)
    # the reader's own mixing: the same build with small buffers still mixes (shards are mixed)
    inputs, _ = next(iter(Records(str(out)).dataset("train", 32, seed=1, with_keys=True, shuffle_buffer=32, cycle_length=2)))
    assert len(_classes(k.decode() for k in inputs["key"].numpy())) >= 16


def test_shuffle_buffer_and_cycle_length_are_checked(synthetic_records):
    with pytest.raises(ValueError, match="shuffle_buffer"):
        Records(synthetic_records).dataset("train", 4, shuffle_buffer=0)


# -- keys that identify a photo -------------------------------------------------------------------
@pytest.fixture
def photos(tmp_path):
    folder = tmp_path / "photos"
    (folder / "sub").mkdir(parents=True)
    rng = np.random.default_rng(3)
    for i in range(8):
        pixels = (synthetic_photo(rng, 12, 16) * 255).round().astype(np.uint8)
        Image.fromarray(pixels).save(folder / ("sub" if i % 2 else "") / f"photo{i}.png")
    return folder


def test_keys_and_splits_are_the_same_for_every_spelling_and_working_folder(photos, tmp_path, monkeypatch):
    results = []
    monkeypatch.chdir(tmp_path)
    for n, spelling in enumerate(["photos", "./photos/", str(photos), "photos/**/*.png"]):
        build(_config(tmp_path / f"r{n}", spelling, val_fraction=0.5), stand_in, False)
        results.append(keys_of(tmp_path / f"r{n}"))
    monkeypatch.chdir(photos / "sub")
    build(_config(tmp_path / "far", "..", val_fraction=0.5), stand_in, False)
    results.append(keys_of(tmp_path / "far"))
    expected = {f"{'sub/' if i % 2 else ''}photo{i}.png" for i in range(8)}
    assert set(results[0]) == expected
    assert all(r == results[0] for r in results)
    assert all(split == split_of(key, 0.5) for key, split in results[0].items())
    assert set(results[0].values()) == {"train", "val"}


def test_several_inputs_keep_their_folder_in_the_key(photos, tmp_path):
    other = tmp_path / "more"
    other.mkdir()
    Image.fromarray((synthetic_photo(np.random.default_rng(9), 12, 16) * 255).astype(np.uint8)).save(other / "photo0.png")
    found = discovery.discover_images([str(photos), str(other / "*.png")])
    assert "photos/photo0.png" in found.keys and "more/photo0.png" in found.keys  # no collision
    assert len(set(found.keys)) == len(found.keys) == 9


def _alarm(seconds):
    def stop(*_):
        raise TimeoutError("discovery did not return: a loop was followed")

    signal.signal(signal.SIGALRM, stop)
    signal.alarm(seconds)


def test_links_loops_and_copies_add_no_examples(photos, tmp_path, capsys):
    os.symlink(".", photos / "self")
    os.symlink("..", photos / "sub" / "up")
    os.symlink(photos / "sub", photos / "again")  # a second way into sub/
    shutil.copyfile(photos / "photo0.png", photos / "copy-of-0.png")  # byte-identical, another name
    os.link(photos / "photo2.png", photos / "hardlink-of-2.png")
    os.symlink(photos / "photo4.png", photos / "link-to-4.png")

    warnings = []
    _alarm(60)
    try:
        found = images.find_images([str(photos)], warn=warnings.append)
    finally:
        signal.alarm(0)
    assert len(found) == 9  # 8 photos and the copy: each real file once
    assert len(warnings) == 2 and all("loop" in line for line in warnings)

    manifest = build(_config(tmp_path / "r", str(photos), val_fraction=0.5), stand_in, progress=False)
    assert len(keys_of(tmp_path / "r")) == 8 and manifest["inputs"] == 8
    duplicates = {d["path"]: (d["same_as"], d["reason"]) for d in manifest["duplicates"]}
    kept_of_copy = duplicates.get("copy-of-0.png", duplicates.get("photo0.png"))
    assert kept_of_copy is not None and kept_of_copy[1] == "identical content"
    assert {d["reason"] for d in manifest["duplicates"]} == {"identical content", "same file"}
    assert duplicates["link-to-4.png"] == ("photo4.png", "same file")  # keys, the same on any machine
    assert {"hardlink-of-2.png", "photo2.png"} & set(duplicates)
    assert "loop" in capsys.readouterr().err


def test_nothing_found_says_why(tmp_path):
    (tmp_path / "empty").mkdir()
    assert "the folders are empty" in discovery.discover_images([str(tmp_path / "empty")]).why_empty()
    (tmp_path / "empty" / "notes.txt").write_text("no pixels")
    with pytest.raises(Exception, match=r"no image files found \(looked for .jpg.*found only other files \(notes.txt\)"):
        build(_config(tmp_path / "r", str(tmp_path / "empty")), stand_in, progress=False)


def test_globs_match_as_glob_does_and_keys_start_at_the_fixed_prefix(photos, monkeypatch):
    monkeypatch.chdir(photos.parent)
    assert discovery.discover_images(["photos/*.png"]).keys == [f"photo{i}.png" for i in (0, 2, 4, 6)]
    assert discovery.discover_images(["photos/s?b/*.png"]).keys == [f"sub/photo{i}.png" for i in (1, 3, 5, 7)]
    assert sorted(discovery.discover_images(["photos/**/photo[13].png"]).keys) == ["sub/photo1.png", "sub/photo3.png"]
    with pytest.raises(FileNotFoundError, match="no such file, folder or matching glob"):
        discovery.discover_images(["photos/*.jpg"])


# -- gray photos ----------------------------------------------------------------------------------------
def test_gray_photos_are_skipped_and_listed_unless_kept(photos, tmp_path):
    gray = (synthetic_photo(np.random.default_rng(4), 12, 16).mean(axis=-1) * 255).astype(np.uint8)
    Image.fromarray(gray).save(photos / "gray-L.png")
    Image.fromarray(gray).convert("RGB").save(photos / "gray-rgb.jpg", quality=60)  # a scanned print
    sepia = np.clip(gray[..., None] * np.array([1.0, 0.88, 0.7]), 0, 255).astype(np.uint8)
    Image.fromarray(sepia).save(photos / "sepia.png")  # toned, not gray: kept

    manifest = build(_config(tmp_path / "default", str(photos)), stand_in, progress=False)
    assert {(s["path"], s["reason"]) for s in manifest["skipped"]} == {("gray-L.png", "grayscale"), ("gray-rgb.jpg", "grayscale")}
    assert "sepia.png" in keys_of(tmp_path / "default") and len(keys_of(tmp_path / "default")) == 9

    kept = build(_config(tmp_path / "kept", str(photos), keep_gray=True), stand_in, progress=False)
    assert kept["skipped"] == [] and len(keys_of(tmp_path / "kept")) == 11


def test_records_store_the_authors_inception_input(photos, tmp_path):
    """The stored embedding is the embedder's view of colors.inception_input (the authors' luma)."""
    seen = []

    def recording(x):
        seen.append(np.asarray(x))
        return stand_in(x)

    build(_config(tmp_path / "r", str(photos / "photo0.png"), val_fraction=0.0), recording, progress=False)
    want = colors.inception_input(images.read_image(str(photos / "photo0.png"))).numpy()
    np.testing.assert_allclose(seen[0][0], want, atol=1e-6)
    rgb = images.read_image(str(photos / "photo0.png"))
    luma = 2 * tf.image.rgb_to_grayscale(rgb).numpy() - 1
    assert abs(float(np.median(want[..., 0][want[..., 0] < 0.999])) - float(np.median(luma))) < 0.05


# -- old records ------------------------------------------------------------------------------------------
def test_records_of_an_older_schema_say_to_rebuild(tmp_path):
    out = str(tmp_path / "old")
    write_synthetic_records(out)
    path = os.path.join(out, records.MANIFEST_NAME)
    with open(path) as f:
        manifest = json.load(f)
    manifest["schema_version"] = 1
    with open(path, "w") as f:
        json.dump(manifest, f)
    for read in (lambda: Records(out).dataset("train", 4), lambda: records.read_manifest(out)):
        with pytest.raises(ValueError) as error:
            read()
        message = str(error.value)
        assert "\n" not in message and "schema version 1" in message and "rebuild" in message and "tfrecords_builder" in message

    with open(path, "w") as f:
        f.write('{"schema_version": 2, "image_si')  # a manifest cut short
    with pytest.raises(ValueError, match=r"manifest.json: damaged records manifest .*rebuild"):
        records.read_manifest(out)


def test_files_that_differ_after_their_first_4_kb_are_not_duplicates(tmp_path):
    from tfrecords_builder import sources

    head = bytes(range(256)) * 16  # 4 KB, the same in every file
    contents = {"a": head + b"one", "b": head + b"two", "c": head + b"one", "d": b"short", "e": b"short"}
    for name, content in contents.items():
        (tmp_path / name).write_bytes(content)
    keys = sorted(contents)
    paths = [str(tmp_path / k) for k in keys]
    chosen, twins = sources.select_distinct(keys, [len(contents[k]) for k in keys], paths)
    kept = {keys[i] for i in chosen}
    assert len(kept) == 3 and "b" in kept and len(kept & {"a", "c"}) == 1 and len(kept & {"d", "e"}) == 1
    assert {(keys[i], keys[j]) for i, j in twins} <= {("a", "c"), ("c", "a"), ("d", "e"), ("e", "d")} and len(twins) == 2
