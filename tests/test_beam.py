"""The builder and colorize on Apache Beam's DirectRunner (``--beam-pipeline-options``), offline.

Covers: 2 worker processes build the same records as the one-machine builder (every key in the
same shard and position, the same bytes, the same manifest); the TFDS source on Beam; a
``kill -9`` of the whole Beam build (driver and workers) then ``--resume`` loses, duplicates and
redoes nothing, and a second build of the same ``--out`` is refused meanwhile; colorize on Beam
gives the local command's pixels; bad options are one line and status 2. A stand-in replaces
Inception (``tests/beam_stand_in.py``, which the workers import: tests/ is put on their
PYTHONPATH). Kept fast: photos of 12x16 at --image-size 16, and one 2-process build shared by
the asserts that read it (the worker processes' start is most of each build's time).
"""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

import beam_stand_in
from conftest import synthetic_photo
from koalarization import errors, safeio
from tfrecords_builder.__main__ import main as build_main
from tfrecords_builder.builder import build
from tfrecords_builder.config import BuildConfig

TESTS = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(TESTS)
TWO_PROCESSES = "runner=DirectRunner,direct_num_workers=2,direct_running_mode=multi_processing"
IN_THIS_PROCESS = "runner=DirectRunner,direct_running_mode=in_memory"  # the same pipeline, no worker processes


@pytest.fixture(scope="module", autouse=True)
def workers_import_the_stand_in():
    paths = [REPO, TESTS] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PYTHONPATH", os.pathsep.join(paths))
        yield


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """8 small photos, a gray one, a broken file and a byte-identical copy."""
    root = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(0)
    for i in range(8):
        Image.fromarray((synthetic_photo(rng, 12 + i, 16) * 255).round().astype(np.uint8)).save(root / f"p{i}.png")
    Image.fromarray(np.full((10, 10, 3), 128, np.uint8)).save(root / "gray.png")
    (root / "broken.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    (root / "copy.png").write_bytes((root / "p0.png").read_bytes())
    return str(root)


def _config(out, photos, **overrides):
    base = dict(out=str(out), images=(photos,), image_size=16, batch_size=2, shard_size=2, val_fraction=0.3)
    return BuildConfig(**{**base, **overrides})


def _files(out):
    return {n: open(os.path.join(out, n), "rb").read() for n in sorted(os.listdir(out)) if n.endswith(".tfrecord")}


def _manifest(out):
    with open(os.path.join(out, "manifest.json")) as f:
        manifest = json.load(f)
    manifest["config"] = {k: v for k, v in manifest["config"].items() if k not in ("out", "beam_pipeline_options", "resume")}
    return manifest


def _left_over(out):
    """Names a finished build must not leave: temporaries, the Beam work folder, the lock."""
    return [n for n in os.listdir(out) if safeio.TEMP_MARK in n or n in (".beam-build", ".lock") or ".tmp" in n]


@pytest.fixture(scope="module")
def local(photos, tmp_path_factory):
    out = tmp_path_factory.mktemp("local") / "records"
    build(_config(out, photos), beam_stand_in.stand_in, False)
    return str(out)


@pytest.fixture(scope="module")
def on_two_processes(photos, tmp_path_factory):
    """One build on the DirectRunner with 2 worker processes: (out, manifest)."""
    out = tmp_path_factory.mktemp("beam") / "records"
    return str(out), build(_config(out, photos, beam_pipeline_options=TWO_PROCESSES), beam_stand_in.stand_in, False)


def test_two_beam_processes_build_the_same_records_as_the_local_builder(local, on_two_processes):
    out, _ = on_two_processes
    assert _files(out) == _files(local)  # every key in the same shard and position; the same bytes
    assert _manifest(out) == _manifest(local)  # counts, skipped with reasons, duplicates, weights, precision
    assert len(_files(out)) >= 4 and not _left_over(out)


def test_a_broken_photo_on_beam_is_skipped_with_a_reason_not_a_failed_pipeline(on_two_processes):
    _, manifest = on_two_processes
    reasons = {s["path"]: s["reason"] for s in manifest["skipped"]}
    assert reasons["gray.png"] == "grayscale" and "broken.jpg" in reasons
    assert [d["path"] for d in manifest["duplicates"]] in (["copy.png"], ["p0.png"])


@pytest.fixture(scope="module")
def tfds_dir(tmp_path_factory):
    """A 7-photo TFDS dataset prepared on disk."""
    import tensorflow as tf
    import tensorflow_datasets as tfds

    data_dir = str(tmp_path_factory.mktemp("tfds"))
    rng = np.random.default_rng(1)
    photos = np.stack([(synthetic_photo(rng, 12, 16) * 255).round().astype(np.uint8) for _ in range(7)])
    features = tfds.features.FeaturesDict({"image": tfds.features.Image(shape=(12, 16, 3))})
    tfds.dataset_builders.TfDataBuilder(
        name="tiny_photos", version="1.0.0", split_datasets={"train": tf.data.Dataset.from_tensor_slices({"image": photos})},
        features=features, data_dir=data_dir,
    ).download_and_prepare()  # fmt: skip
    return data_dir


def test_tfds_source_on_beam_reads_each_shard_from_its_slice(tfds_dir, tmp_path):
    config = dict(tfds="tiny_photos:train", tfds_data_dir=tfds_dir, image_size=16, val_fraction=0.3, shard_size=2)
    build(BuildConfig(out=str(tmp_path / "local"), **config), beam_stand_in.stand_in, False)
    build(BuildConfig(out=str(tmp_path / "beam"), beam_pipeline_options=IN_THIS_PROCESS, **config), beam_stand_in.stand_in, False)
    assert _files(tmp_path / "beam") == _files(tmp_path / "local") and len(_files(tmp_path / "local")) >= 3
    assert _manifest(tmp_path / "beam") == _manifest(tmp_path / "local")


def test_kill_9_of_the_whole_beam_build_then_resume_loses_and_redoes_nothing(photos, local, tmp_path, capsys):
    out = tmp_path / "records"
    hold = tmp_path / "hold"
    hold.write_text("")
    argv = ["--out", str(out), "--images", photos, "--image-size", "16", "--batch-size", "2", "--shard-size", "2",
            "--val-fraction", "0.3", "--beam-pipeline-options", TWO_PROCESSES]  # fmt: skip
    # the builder command with the stand-in embedder, in its own process group; each worker holds after its first shard
    first = subprocess.Popen(
        [sys.executable, os.path.join(TESTS, "beam_stand_in.py"), *argv], env={**os.environ, "BEAM_STAND_IN_HOLD": str(hold)},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.time() + 120
        while time.time() < deadline and first.poll() is None:
            if out.is_dir() and any(n.endswith(".tfrecord") for n in os.listdir(out)):
                break
            time.sleep(0.1)
        assert first.poll() is None, first.communicate()
        capsys.readouterr()
        assert build_main(argv) == errors.EXIT_IN_USE  # a second build of the same --out, refused while one writes
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "in use" in err, err
    finally:
        os.killpg(first.pid, signal.SIGKILL)  # the driver and its worker processes
        first.communicate()
    finished = {n: os.stat(out / n).st_ino for n in os.listdir(out) if n.endswith(".tfrecord")}
    assert finished and len(finished) < len(_files(local)), "the kill came after the build had finished"
    assert not (out / "manifest.json").exists()  # nothing half-done looks finished

    build(_config(out, photos, beam_pipeline_options=TWO_PROCESSES, resume=True), beam_stand_in.stand_in)
    assert f"{len(finished)} already done" in capsys.readouterr().out
    assert _files(out) == _files(local) and _manifest(out) == _manifest(local)  # nothing lost or duplicated
    assert {n: os.stat(out / n).st_ino for n in finished} == finished  # no finished shard redone
    assert not _left_over(out)


def test_colorize_on_beam_gives_the_local_command_pixels(photos, tmp_path, capsys):
    from koalarization import images
    from koalarization.colorize import beam as colorize_beam
    from koalarization.colorize import config as colorize_config
    from koalarization.colorize.files import main
    from test_colorize import tinted_colorizer, write_run_dir

    run_dir = write_run_dir(tmp_path / "run", tinted_colorizer(16), embedding_model="synthetic")
    local, on_beam = tmp_path / "local", tmp_path / "beam"
    assert main([photos, "-o", str(local), "--model", run_dir, "--working-size", "32"], inception=beam_stand_in.tiny_inception()) == 0
    on_beam.mkdir()
    (on_beam / "p1.png").write_bytes(b"mine")  # an existing output: kept without --overwrite
    argv = [photos, "-o", str(on_beam), "--model", run_dir, "--working-size", "32", "--beam-pipeline-options", TWO_PROCESSES]
    capsys.readouterr()
    summary = colorize_beam.colorize(colorize_config.parse(argv), inception_factory=beam_stand_in.tiny_inception)
    log = capsys.readouterr()
    assert (on_beam / "p1.png").read_bytes() == b"mine" and str(on_beam / "p1.png") in summary.existing
    written = sorted(n for n in os.listdir(on_beam) if n.endswith(".png") and n != "p1.png")
    assert written == sorted(n for n in os.listdir(local) if n != "p1.png") and len(written) >= 8
    for name in written:
        ours, theirs = (images.read_image(str(folder / name)) for folder in (on_beam, local))
        assert ours.shape == theirs.shape and np.abs(ours - theirs).max() <= 2 / 255, name
    with open(on_beam / colorize_beam.SUMMARY_FILE) as f:
        said = json.load(f)
    assert [(os.path.basename(f["path"]), bool(f["reason"])) for f in said["failed"]] == [("broken.jpg", True)]
    assert "broken.jpg" in log.out + log.err and len(said["colorized"]) == len(written)
    assert not [n for n in os.listdir(on_beam) if n.startswith(".")]  # no temporaries, no work folder


@pytest.mark.parametrize(
    "options, said",
    [
        ("runner=DirectRunner,direct_num_workers", "'direct_num_workers' is not key=value"),
        ("runner=NoSuchRunner", "unknown runner 'NoSuchRunner'"),
        ("runner=PrismRunner", "Prism runner downloads its binary"),
    ],
)
def test_bad_pipeline_options_are_one_line_and_status_2(options, said, tmp_path, capsys):
    from koalarization.colorize.files import main as colorize_main

    build_argv = ["--out", str(tmp_path / "o"), "--images", str(tmp_path), "--beam-pipeline-options", options]
    colorize_argv = [str(tmp_path), "-o", str(tmp_path / "o"), "--model", str(tmp_path), "--beam-pipeline-options", options]
    for command, argv in ((build_main, build_argv), (colorize_main, colorize_argv)):
        status = command(argv)
        err = capsys.readouterr().err.strip()
        assert status == errors.EXIT_USAGE and "\n" not in err and said in err and "Traceback" not in err, err
    assert not (tmp_path / "o").exists()  # refused before any work
