"""``python -m tfrecords_builder`` against hostile paths and collisions (issue 12): each case ends
with one line and a distinct exit status, never a traceback, and every file that existed before
is unchanged (checksums). Inception is replaced by a tiny model, so each case takes a moment.
"""

import hashlib
import json
import os
import socket
import subprocess
import sys

import keras
import numpy as np
import pytest
from PIL import Image

from conftest import synthetic_photo
from koalarization import discovery, errors, records, safeio
from koalarization.model import inception as embedding
from tfrecords_builder.builder import main

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(autouse=True)
def tiny_inception(monkeypatch):
    def fake_build_inception(weights):
        return keras.Sequential([keras.Input((299, 299, 3)), keras.layers.AveragePooling2D(150), keras.layers.Flatten()])

    monkeypatch.setattr(embedding, "build_inception", fake_build_inception)


@pytest.fixture
def photos(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    rng = np.random.default_rng(1)
    for i in range(6):
        Image.fromarray((synthetic_photo(rng, 12, 16) * 255).round().astype(np.uint8)).save(folder / f"p{i}.png")
    return str(folder)


def checksums(root):
    """{relative path: sha256} of every file under ``root``."""
    sums = {}
    for folder, _, names in os.walk(root):
        for name in names:
            path = os.path.join(folder, name)
            with open(path, "rb") as f:
                sums[os.path.relpath(path, root)] = hashlib.sha256(f.read()).hexdigest()
    return sums


def run(argv, capsys):
    """(exit status, stderr lines that are not empty)."""
    status = main(["--inception-weights", "random", "--image-size", "16", "--shard-size", "2", *argv])
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert not any("Traceback" in line for line in err), err
    return status, err


def test_out_that_is_a_file_or_under_a_file(photos, tmp_path, capsys):
    target = tmp_path / "notes.txt"
    target.write_text("keep me\n")
    before = checksums(tmp_path)
    for out in (target, target / "records"):
        status, err = run(["--out", str(out), "--images", photos], capsys)
        assert status == errors.EXIT_OUTPUT and len(err) == 1 and str(target) in err[0], err
    assert checksums(tmp_path) == before


def _built(photos, tmp_path, capsys, *extra):
    out = tmp_path / "records"
    status, err = run(["--out", str(out), "--images", photos, *extra], capsys)
    assert status == 0, err
    return out


def _lock(out, lock_holder, name=".lock"):
    """A live builder holding ``out``'s lock (the 'first builder')."""
    return lock_holder(out, "python -m tfrecords_builder", name)


def test_a_second_builder_is_told_who_writes_and_a_stale_lock_is_taken_over(photos, tmp_path, capsys, lock_holder):
    out = _built(photos, tmp_path, capsys)
    other_process = _lock(out, lock_holder)
    before = checksums(out)
    status, err = run(["--out", str(out), "--images", photos], capsys)
    assert status == errors.EXIT_IN_USE and len(err) == 1, err
    assert f"pid {other_process.pid}" in err[0] and "tfrecords_builder" in err[0]
    assert checksums(out) == before

    other_process.kill()
    other_process.wait()
    status, err = run(["--out", str(out), "--images", photos, "--resume"], capsys)
    assert status == 0, err
    assert not (out / ".lock").exists()  # taken over, then released
    assert records.read_manifest(str(out))["splits"]["train"]["examples"] + records.read_manifest(str(out))["splits"]["val"]["examples"] == 6


def test_a_killed_builder_not_yet_reaped_does_not_hold_its_lock(photos, tmp_path, capsys, lock_holder):
    """kill -9 of a builder started from a script leaves a zombie until the script reaps it; the
    rerun right after must take the lock over, not say the records are in use by that pid."""
    import signal
    import time

    out = _built(photos, tmp_path, capsys)
    other_process = _lock(out, lock_holder)
    other_process.send_signal(signal.SIGKILL)  # not waited for: a zombie
    for _ in range(100):
        with open(f"/proc/{other_process.pid}/stat") as f:
            if f.read().rsplit(")", 1)[-1].split()[0] == "Z":
                break
        time.sleep(0.05)
    status, err = run(["--out", str(out), "--images", photos, "--resume"], capsys)
    assert status == 0, err  # not EXIT_LOCKED "in use by pid ..."
    assert not (out / ".lock").exists()  # taken over, then released


def test_damaged_build_state_with_resume_is_one_line(photos, tmp_path, capsys):
    out = _built(photos, tmp_path, capsys)
    state = out / "build-state.json"
    state.write_text(state.read_text()[:40])  # cut short, as a full disk or a kill would
    before = checksums(out)
    status, err = run(["--out", str(out), "--images", photos, "--resume"], capsys)
    assert status == 5 and len(err) == 1, err  # damaged: the table's 5 (was 1)
    assert str(state) in err[0] and "damaged build state" in err[0] and "leave out --resume" in err[0]
    assert checksums(out) == before


def test_leftover_temporaries_are_cleaned_at_the_next_run(photos, tmp_path, capsys):
    out = _built(photos, tmp_path, capsys)
    host = socket.gethostname()
    dead = 2**22 + 12345  # above the default pid_max: no such process
    leftovers = [
        f".train-00000.tfrecord{safeio.TEMP_MARK}{dead}-{host}",
        f".manifest.json{safeio.TEMP_MARK}{dead}-{host}",
        f".build-state.json{safeio.TEMP_MARK}{dead}-{host}",
        "manifest.json.tmp4242",  # names of older versions
        "build-state.json.tmp4242",
        "val-00007.tfrecord.tmp4242",
    ]
    others = [f".train-w01-00000.tfrecord{safeio.TEMP_MARK}{os.getppid()}-{host}"]  # another worker, alive
    for name in leftovers + others:
        (out / name).write_bytes(b"half")
    status, err = run(["--out", str(out), "--images", photos, "--resume"], capsys)
    assert status == 0, err
    names = set(os.listdir(out))
    assert not names & set(leftovers) and set(others) <= names


def test_unreadable_subfolder_is_reported(photos, tmp_path, capsys, monkeypatch):
    locked = os.path.join(photos, "locked")
    os.mkdir(locked)
    Image.new("RGB", (8, 8), (200, 10, 10)).save(os.path.join(locked, "hidden.png"))
    real_scandir = os.scandir

    def scandir(path="."):  # root reads every folder, so deny one as a user without rights would
        if os.path.abspath(path) == os.path.abspath(locked):
            raise PermissionError(13, "Permission denied", path)
        return real_scandir(path)

    monkeypatch.setattr(discovery.os, "scandir", scandir)
    out = tmp_path / "records"
    status, err = run(["--out", str(out), "--images", photos], capsys)
    assert status == 0
    warnings = [line for line in err if "building:" not in line]  # the rest is the progress bar
    assert warnings == [f"warning: {locked}: cannot read the folder (Permission denied); skipped"]
    manifest = records.read_manifest(str(out))
    assert manifest["not_searched"] == [{"path": locked, "reason": "cannot read the folder (Permission denied); skipped"}]
    assert manifest["inputs"] == 6


def test_a_file_name_that_is_not_utf8_is_skipped_and_named(photos, tmp_path, capsys):
    odd = os.path.join(photos, os.fsdecode(b"caf\xe9.png"))  # Latin-1 bytes: no UTF-8 text to store as its key
    Image.new("RGB", (16, 12), (200, 10, 10)).save(odd, format="PNG")
    out = tmp_path / "records"
    status, err = run(["--out", str(out), "--images", photos], capsys)
    assert status == 0
    shown = os.path.join(photos, "caf\\xe9.png")
    reason = "its name is not valid UTF-8, which records store names in (rename it); skipped"
    assert [line for line in err if "building:" not in line] == [f"warning: {shown}: {reason}"]
    manifest = records.read_manifest(str(out))
    assert manifest["not_searched"] == [{"path": shown, "reason": reason}]
    assert sum(split["examples"] for split in manifest["splits"].values()) == 6  # the others are all built


def test_nothing_found_and_missing_input_are_one_line(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    for source, words in ((tmp_path / "empty", "no image files found"), (tmp_path / "missing", "no such file")):
        status, err = run(["--out", str(tmp_path / "r"), "--images", str(source)], capsys)
        assert status == 2 and len(err) == 1 and words in err[0] and str(source) in err[0], err


def test_help_and_usage_errors_answer_before_tensorflow_loads():
    script = (
        "import runpy, sys\n"
        "for argv in (['--help'], ['--out', 'x', '--shard-size', '0'], ['--bogus']):\n"
        "    sys.argv = ['tfrecords_builder', *argv]\n"
        "    try:\n"
        "        runpy.run_module('tfrecords_builder', run_name='__main__')\n"
        "    except SystemExit as e:\n"
        "        print('exit', e.code)\n"
        "print('tensorflow' in sys.modules, 'keras' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, timeout=300)
    lines = result.stdout.splitlines()
    assert lines[-1] == "False False", result.stdout + result.stderr
    assert [line for line in lines if line.startswith("exit")] == ["exit 0", "exit 2", "exit 2"]
    assert "usage:" in result.stderr and "Traceback" not in result.stderr


KILLED_BUILD = """
import sys, time
import numpy as np
from tfrecords_builder.config import BuildConfig
from tfrecords_builder.builder import build
calls = []
def slow(x):  # two shards at 0.3 s each, then one that waits for the kill: no load makes the test miss it
    calls.append(1)
    time.sleep(0.3 if len(calls) <= 2 else 600)
    return np.asarray(x)[:, ::150, ::150, 0].reshape(len(x), -1)
config = BuildConfig(out=sys.argv[2], images=(sys.argv[1],), image_size=16, batch_size=1, shard_size=1, val_fraction=0.0)
build(config, embedder=slow, progress=False, embedder_info={"model": "stand_in"})
"""


def test_a_killed_build_resumes_takes_its_lock_over_and_leaves_no_temporaries(photos, tmp_path, capsys):
    import signal
    import time

    from tfrecords_builder.config import BuildConfig
    from tfrecords_builder.builder import build

    out = tmp_path / "records"
    process = subprocess.Popen([sys.executable, "-c", KILLED_BUILD, photos, str(out)], cwd=REPO)
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and len(list(out.glob("train-*.tfrecord"))) < 2 and process.poll() is None:
            time.sleep(0.05)
        assert process.poll() is None, "the build ended before it was killed"
        process.send_signal(signal.SIGKILL)  # a kill at a moment chosen: two shards done, the third being made
    finally:
        process.kill()
        process.wait()
    assert (out / ".lock").exists() and not (out / records.MANIFEST_NAME).exists()
    done = {p.name: p.stat().st_mtime_ns for p in out.glob("train-*.tfrecord")}
    assert len(done) == 2, sorted(os.listdir(out))

    def stand_in(x):
        return np.asarray(x)[:, ::150, ::150, 0].reshape(len(x), -1)

    config = BuildConfig(out=str(out), images=(photos,), image_size=16, batch_size=1, shard_size=1, val_fraction=0.0, resume=True)
    manifest = build(config, embedder=stand_in, progress=True, embedder_info={"model": "stand_in"})
    assert f"taking over the lock of a stopped process (pid {process.pid})" in capsys.readouterr().out
    assert manifest["splits"]["train"]["examples"] == 6
    assert {n: (out / n).stat().st_mtime_ns for n in done} == done  # finished shards kept as they were
    assert sorted(os.listdir(out)) == sorted(["build-state.json", "manifest.json"] + [f"train-{i:05d}.tfrecord" for i in range(6)])


def test_a_full_disk_is_one_line_and_keeps_the_finished_shards(photos, tmp_path, capsys, monkeypatch):
    import tensorflow as tf

    real_writer, opened = tf.io.TFRecordWriter, []

    class FillsUp(real_writer):  # the third shard meets a full disk, as TensorFlow's writer reports it
        def __init__(self, path, *args, **kwargs):
            super().__init__(path, *args, **kwargs)
            opened.append(path)

        def write(self, record):
            if len(opened) == 3:
                raise tf.errors.ResourceExhaustedError(None, None, f"{opened[-1]}; No space left on device")
            super().write(record)

    monkeypatch.setattr(tf.io, "TFRecordWriter", FillsUp)
    out = tmp_path / "records"
    status, err = run(["--out", str(out), "--images", photos], capsys)
    assert status == errors.EXIT_OUTPUT
    [line] = [line for line in err if "building:" not in line]
    assert "no space left on the device" in line and "make room and run the same command with --resume" in line
    assert sorted(n for n in os.listdir(out) if n.endswith(".tfrecord")) == ["train-00000.tfrecord", "train-00001.tfrecord"]
    assert not [n for n in os.listdir(out) if safeio.TEMP_MARK in n]  # the third shard's part file is gone


def test_out_of_memory_while_embedding_is_not_called_a_full_disk(photos, tmp_path, capsys, monkeypatch):
    """Inception running out of memory raises ResourceExhaustedError, as a full disk does through
    TensorFlow's writer: the line must say memory and --batch-size, not "make room"."""
    import tensorflow as tf

    def fake_build_inception(weights):
        def embed(batch):
            raise tf.errors.ResourceExhaustedError(None, None, "OOM when allocating tensor with shape[32,147,147,64]")

        return embed

    monkeypatch.setattr(embedding, "build_inception", fake_build_inception)
    status, err = run(["--out", str(tmp_path / "records"), "--images", photos], capsys)
    assert status == 2
    [line] = [line for line in err if "building:" not in line]
    assert "out of memory while embedding" in line and "smaller --batch-size" in line and "make room" not in line
