"""The Beam builder, records and Beam colorize with URLs for their folders (``koalarization.storage``).

TensorFlow's in-process ``ram://`` filesystem stands in for gs://, s3:// and hdfs:// (no bucket is
reached here): the photos are copied into it, and Beam's DirectRunner runs in memory (ram:// lives
in one process). Covers: a Beam build (and a local one) from ram:// photos to a ram:// ``--out``
writes the same shard bytes and manifest as the build of the same photos to a local folder,
leaves no temporary object, lock or work folder, and ``Records`` reads it back; a build is refused
while the lock object of a running build is there, and takes over one that a stopped process of
this host left; an ``--out`` that is an object is refused; a glob finds photos in nested ram://
folders; colorize on Beam (and the local command) from ram:// to ram:// writes the local
command's files. The photos, the stand-in embedder and the local build are ``tests/test_beam.py``'s.
"""

import json
import os
import uuid

import numpy as np
import pytest
import tensorflow as tf

import beam_stand_in
from test_beam import IN_THIS_PROCESS, _config, _files, local, photos  # noqa: F401  (fixtures)
from koalarization import safeio, storage
from koalarization.records.dataset import Records
from tfrecords_builder.builder import build

gfile = tf.io.gfile


def _ram(name):
    return f"ram://{name}-{uuid.uuid4().hex[:8]}"


def _copy_to_ram(folder, url):
    gfile.makedirs(url)
    for name in os.listdir(folder):
        gfile.copy(os.path.join(folder, name), f"{url}/{name}")
    return url


def _objects(url):
    """Every object below ``url``, by its path relative to it."""
    return sorted(storage.relpath(f"{top}/{name}", url) for top, _, names in storage.walk(url) for name in names)


def _manifest(payload):
    """A manifest without what names the folders (the source's and the output's paths)."""
    manifest = json.loads(payload)
    manifest["config"] = {k: v for k, v in manifest["config"].items() if k not in ("out", "images", "beam_pipeline_options")}
    return {k: v for k, v in manifest.items() if k != "source"}


@pytest.fixture(scope="module")
def ram_photos(photos):  # noqa: F811
    return _copy_to_ram(photos, _ram("photos"))


@pytest.fixture(scope="module")
def on_ram(ram_photos):
    out = _ram("records")
    build(_config(out, ram_photos, beam_pipeline_options=IN_THIS_PROCESS), beam_stand_in.stand_in, False)
    return out


def _assert_same_build(on_ram, local):
    shards = {n: gfile.GFile(f"{on_ram}/{n}", "rb").read() for n in gfile.listdir(on_ram) if n.endswith(".tfrecord")}
    assert shards == _files(local) and len(shards) >= 4  # every key in the same shard and position
    with open(os.path.join(local, "manifest.json")) as f:
        assert _manifest(gfile.GFile(f"{on_ram}/manifest.json").read()) == _manifest(f.read())
    assert _objects(on_ram) == sorted([*shards, "manifest.json", "build-state.json"])  # no temporary, lock or work folder


def test_a_beam_build_from_and_to_urls_writes_the_local_builds_bytes(on_ram, local):  # noqa: F811
    _assert_same_build(on_ram, local)


def test_the_local_builder_from_and_to_urls_writes_the_same_bytes(ram_photos, local):  # noqa: F811
    out = _ram("records-local")
    build(_config(out, ram_photos), beam_stand_in.stand_in, False)
    _assert_same_build(out, local)


def test_a_url_glob_finds_photos_in_nested_folders_with_keys_below_its_root(photos):  # noqa: F811
    from koalarization import discovery

    root = _ram("nested")
    _copy_to_ram(photos, f"{root}/a/b")
    gfile.GFile(f"{root}/a/.hidden.png", "wb").write(b"x")
    found = discovery.discover_images([f"{root}/**/p*.png"])
    assert found.keys == [f"a/b/p{i}.png" for i in range(8)] and found.paths[0] == f"{root}/a/b/p0.png"
    assert found.sizes[0] == os.path.getsize(os.path.join(photos, "p0.png"))
    with pytest.raises(FileNotFoundError, match="no such file, folder or matching glob"):
        discovery.discover_images([f"{root}/nothing/*.png"])


def test_records_open_a_url_folder(on_ram, local):  # noqa: F811
    ours, theirs = Records(on_ram), Records(local)
    assert ours.shards("train")[0].startswith("ram://") and ours.num_examples("train") == theirs.num_examples("train")
    keys = lambda recs: sorted(k for batch, _ in recs.dataset("train", 4, shuffle=False, with_keys=True) for k in batch["key"].numpy())  # noqa: E731
    assert keys(ours) == keys(theirs) and keys(ours)


def test_a_build_is_refused_while_the_lock_object_of_a_running_build_is_there(ram_photos):
    out = _ram("locked")
    owner = {"pid": 1, "host": "another-host", "started": "2026-01-01T00:00:00+0000", "command": "python -m tfrecords_builder"}
    safeio.write_json(f"{out}/.lock", owner)
    with pytest.raises(safeio.LockedError) as refused:
        build(_config(out, ram_photos, beam_pipeline_options=IN_THIS_PROCESS), beam_stand_in.stand_in, False)
    said = str(refused.value)
    assert "in use by python -m tfrecords_builder (pid 1 on another-host" in said and "\n" not in said
    assert _objects(out) == [".lock"] and json.loads(gfile.GFile(f"{out}/.lock").read()) == owner  # untouched


def test_the_lock_object_of_a_stopped_process_of_this_host_is_taken_over(ram_photos, capsys):
    import socket

    from koalarization import locks

    out = _ram("stale")
    safeio.write_json(f"{out}/.lock", {"pid": 2**22 + 12345, "host": socket.gethostname(), "command": "x"})  # no such pid
    with locks.DirLock(out, "test", warn=print):
        assert json.loads(gfile.GFile(f"{out}/.lock").read())["pid"] == os.getpid()
    assert "taking over the lock of a stopped process" in capsys.readouterr().out and not gfile.exists(f"{out}/.lock")


def test_an_out_url_that_is_an_object_is_refused():
    out = _ram("file")
    gfile.GFile(out, "wb").write(b"x")
    with pytest.raises(safeio.OutputPathError, match="is an existing file, not a folder"):
        safeio.check_output_dir(out)


def test_colorize_on_beam_from_and_to_urls_writes_the_local_commands_files(photos, ram_photos, tmp_path):  # noqa: F811
    from koalarization import images
    from koalarization.colorize import beam as colorize_beam
    from koalarization.colorize import config as colorize_config
    from koalarization.colorize.files import main
    from test_colorize import tinted_colorizer, write_run_dir

    run_dir = write_run_dir(tmp_path / "run", tinted_colorizer(16), embedding_model="synthetic")
    local_out, on_ram = tmp_path / "local", _ram("colorized")
    assert main([photos, "-o", str(local_out), "--model", run_dir, "--working-size", "32"], inception=beam_stand_in.tiny_inception()) == 0
    argv = [ram_photos, "-o", on_ram, "--model", run_dir, "--working-size", "32", "--beam-pipeline-options", IN_THIS_PROCESS]
    summary = colorize_beam.colorize(colorize_config.parse(argv), inception_factory=beam_stand_in.tiny_inception)
    plain = _ram("colorized-plain")  # the local command, from and to URLs
    assert main([ram_photos, "-o", plain, "--model", run_dir, "--working-size", "32"], inception=beam_stand_in.tiny_inception()) == 0
    written = sorted(n for n in _objects(on_ram) if n.endswith(".png"))
    assert written == sorted(os.listdir(local_out)) and len(written) >= 8 and len(summary.colorized) == len(written)
    assert _objects(plain) == written
    for name in written:
        ours, plain_ours = (images.read_image(f"{url}/{name}") for url in (on_ram, plain))
        theirs = images.read_image(str(local_out / name))
        assert ours.shape == theirs.shape and np.abs(ours - theirs).max() <= 2 / 255, name
        assert np.abs(plain_ours - theirs).max() <= 2 / 255, name
    said = json.loads(gfile.GFile(f"{on_ram}/{colorize_beam.SUMMARY_FILE}").read())
    assert [os.path.basename(f["path"]) for f in said["failed"]] == ["broken.jpg"]
    assert _objects(on_ram) == sorted([*written, colorize_beam.SUMMARY_FILE])  # no temporaries, no work folder
