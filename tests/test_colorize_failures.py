"""colorize, evaluate, export and demo fail well (issue 12): hostile output paths, collisions,
symlinks, empty inputs, leftovers, unsafe model files. Each case: the exit status, one line on
stderr, no traceback, and every file that existed before unchanged (checksums).
"""

import hashlib
import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
from PIL import Image
from test_colorize import DIM, embedder, run_dir, stand_in_embedder, tinted_colorizer, write_run_dir  # noqa: F401  (fixtures)

from koalarization import errors, safeio
from koalarization.colorize import files as colorize
from koalarization.model import inception as embedding
from koalarization.evaluate import scoring as evaluate


def picture(path, seed=0, size=(12, 16)):
    rng = np.random.default_rng(seed)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(rng.integers(40, 220, (*size, 3), dtype=np.uint8)).save(path)
    return str(path)


def checksums(*roots):
    sums = {}
    for root in roots:
        for folder, _, names in os.walk(root):
            for name in names:
                path = os.path.join(folder, name)
                if os.path.isfile(path):
                    with open(path, "rb") as f:
                        sums[path] = hashlib.sha256(f.read()).hexdigest()
    return sums


def run_cli(main, argv, capsys, **kwargs):
    """``main(argv)`` -> (exit status, stderr lines); what it printed is kept in ``run_cli.out``."""
    code = main(argv, **kwargs)
    printed = capsys.readouterr()
    err = [line for line in printed.err.splitlines() if line.strip()]
    assert not any("Traceback" in line for line in err)
    run_cli.out = printed.out
    return code, err


@pytest.mark.parametrize(
    "out",
    ["FILE", "/sys/koalarization-test", "/etc/hostname/sub", "INPUT", "LINK_TO_INPUT"],
)
def test_unusable_output_folder_is_one_line_and_exit_3(out, tmp_path, run_dir, embedder, capsys):
    inputs = tmp_path / "in"
    picture(inputs / "x.png")
    (tmp_path / "file.txt").write_text("keep me")
    os.symlink(inputs, tmp_path / "link")
    target = {"FILE": str(tmp_path / "file.txt"), "INPUT": str(inputs), "LINK_TO_INPUT": str(tmp_path / "link")}.get(out, out)
    before = checksums(tmp_path)
    code, err = run_cli(colorize.main, [str(inputs), "-o", target, "--model", run_dir, "--overwrite"], capsys, inception=embedder)
    assert code == errors.EXIT_OUTPUT and len(err) == 1 and err[0].startswith("error: "), err
    assert checksums(tmp_path) == before


def test_evaluate_output_that_is_a_file(tmp_path, run_dir, capsys):
    picture(tmp_path / "in" / "x.png")
    (tmp_path / "report").write_text("keep me")
    before = checksums(tmp_path)
    code, err = run_cli(evaluate.main, ["--model", run_dir, "--images", str(tmp_path / "in"), "-o", str(tmp_path / "report")], capsys)
    assert code == errors.EXIT_OUTPUT and len(err) == 1 and "is an existing file" in err[0]
    assert checksums(tmp_path) == before


def test_an_output_that_links_to_an_input_is_never_written(tmp_path, run_dir, embedder, capsys):
    source = picture(tmp_path / "in" / "x.png")
    out = tmp_path / "out"
    out.mkdir()
    os.symlink(source, out / "x.png")  # out/x.png is the input itself
    before = checksums(tmp_path / "in")
    code, _ = run_cli(colorize.main, [source, "-o", str(out), "--model", run_dir, "--overwrite"], capsys, inception=embedder)
    assert code == 1  # nothing colorized: the only output would have replaced the input
    assert f"skipped {source}: its output" in run_cli.out and "is one of the inputs" in run_cli.out
    assert checksums(tmp_path / "in") == before


def test_a_panel_name_never_collides_with_another_input(tmp_path, run_dir, embedder, capsys):
    x, panel_named = picture(tmp_path / "in" / "x.png", 1), picture(tmp_path / "in" / "x_compare.png", 2)
    argv = [x, panel_named, "-o", str(tmp_path / "out"), "--model", run_dir, "--compare", "--working-size", "32"]
    code, _ = run_cli(colorize.main, argv, capsys, inception=embedder)
    assert code == 0
    written = sorted(os.listdir(tmp_path / "out"))
    assert written == ["x.png", "x_compare-png.png", "x_compare-png_compare.png", "x_compare.png"]
    panel = np.asarray(Image.open(tmp_path / "out" / "x_compare.png"))
    assert panel.shape[1] > 2 * panel.shape[0]  # x's panel (three tiles), not the colorized x_compare.png


def test_output_names_do_not_depend_on_argument_order(tmp_path, run_dir, embedder, capsys):
    jpg = str(tmp_path / "in" / "a.jpg")
    picture(tmp_path / "in" / "a.png", 1)
    Image.fromarray(np.full((10, 10, 3), 120, np.uint8)).save(jpg)
    results = []
    for order in ([jpg, str(tmp_path / "in" / "a.png")], [str(tmp_path / "in" / "a.png"), jpg]):
        out = tmp_path / f"out{len(results)}"
        run_cli(colorize.main, [*order, "-o", str(out), "--model", run_dir, "--working-size", "32"], capsys, inception=embedder)
        results.append({name: np.asarray(Image.open(out / name)).tolist() for name in sorted(os.listdir(out))})
    assert list(results[0]) == ["a-jpg.png", "a-png.png"]
    assert results[0] == results[1]


@pytest.fixture
def no_inception(monkeypatch):
    """Building Inception would fail the test: the reason must come before it."""

    def refuse(*args, **kwargs):
        raise AssertionError("Inception was built")

    monkeypatch.setattr(embedding, "build_inception", refuse)


def test_empty_folder_and_missing_input_say_why_before_building_inception(tmp_path, no_inception, capsys):
    run_dir = write_run_dir(tmp_path / "run", tinted_colorizer(embedding.EMBEDDING_DIM))
    (tmp_path / "empty").mkdir()
    for inputs, reason in (([str(tmp_path / "empty")], "no image files found"), ([str(tmp_path / "nope.png")], "no such file")):
        code = colorize.main([*inputs, "-o", str(tmp_path / "out"), "--model", run_dir])
        err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
        assert code == 2 and len(err) == 1 and reason in err[0] and inputs[0] in err[0], err  # as in every command


def test_leftover_temporary_files_are_cleaned(tmp_path, run_dir, embedder, capsys):
    source = picture(tmp_path / "in" / "x.png")
    out = tmp_path / "out"
    out.mkdir()
    (out / "x.png.tmp").write_bytes(b"half a png")  # what a kill left before safeio
    (out / f".x.png{safeio.TEMP_MARK}99999999-{os.uname().nodename}").write_bytes(b"half")
    run_cli(colorize.main, [source, "-o", str(out), "--model", run_dir, "--working-size", "32"], capsys, inception=embedder)
    assert sorted(os.listdir(out)) == ["x.png"]


def test_a_keras_file_with_a_lambda_layer_is_refused(tmp_path, capsys):
    inputs = keras.Input((4,))
    unsafe = keras.Model(inputs, keras.layers.Lambda(lambda x: x * 2)(inputs))
    unsafe.save(tmp_path / "unsafe.keras")
    source = picture(tmp_path / "in" / "x.png")
    code, err = run_cli(colorize.main, [source, "-o", str(tmp_path / "out"), "--model", str(tmp_path / "unsafe.keras")], capsys)
    assert code == 2 and len(err) == 1 and "cannot load the colorizer" in err[0]


@pytest.mark.parametrize("command", ["colorize", "evaluate", "export", "demo"])
def test_help_and_argument_errors_come_before_tensorflow(command):
    # TensorFlow made unimportable: --help and a bad argument must still answer.
    script = (
        "import runpy, sys; sys.modules['tensorflow'] = None; sys.argv = ['x'] + sys.argv[1:];"
        f"runpy.run_module('koalarization.{command}', run_name='__main__')"
    )
    for argv, code in ((["--help"], 0), (["--no-such-flag"], 2)):
        result = subprocess.run([sys.executable, "-c", script, *argv], capture_output=True, text=True, timeout=60)
        assert result.returncode == code, result.stderr[-2000:]
        assert "Traceback" not in result.stderr


def test_a_full_disk_is_one_line_and_exit_3(tmp_path, run_dir, embedder, capsys, monkeypatch):
    import errno

    def full(path, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    source = picture(tmp_path / "in" / "x.png")
    monkeypatch.setattr(safeio, "write_bytes", full)
    code, err = run_cli(colorize.main, [source, "-o", str(tmp_path / "out"), "--model", run_dir, "--working-size", "32"], capsys, inception=embedder)
    assert code == errors.EXIT_OUTPUT and len(err) == 1 and "no space left on the device" in err[0]
    assert not (tmp_path / "out").exists()  # no half-written file left, nor the empty folder this command made


def test_batches_are_bounded_by_pixels_not_only_by_count():
    import tensorflow as tf

    from koalarization.model.colorizer import Colorizer

    seen = []

    class Counting(Colorizer):
        def predict(self, rgbs):
            seen.append([int(np.prod(rgb.shape[:2])) for rgb in rgbs])
            return tf.zeros((len(rgbs), 32, 32, 2))

    counting = Counting(None, None, 32, DIM)
    shapes = [(10, 10), (10, 10), (10, 10), (100, 100), (10, 10), (10, 10)]
    photos = [(i, np.zeros(shape + (3,), np.float32)) for i, shape in enumerate(shapes)]
    results = list(counting.colorize_stream(photos, batch_size=8, batch_pixels=500))
    assert [key for key, _, _ in results] == list(range(len(shapes)))
    assert [out.shape[:2] for _, _, out in results] == shapes
    assert seen == [[100], [100, 100], [10000], [100, 100]]  # the first photo alone (out early), the big one alone, the others together


def test_a_planar_float_tiff_reads_as_its_first_page():
    """scikit-image's multipage_rgb.tif (planar RGB, float64) is a TIFF Pillow cannot open: read via tifffile."""
    import skimage
    import tifffile

    from koalarization import images

    path = os.path.join(os.path.dirname(skimage.__file__), "data", "multipage_rgb.tif")
    rgb = images.read_image(path)
    first_page = np.moveaxis(tifffile.imread(path, key=0), 0, -1)  # (3, 10, 10) planar -> (10, 10, 3)
    assert rgb.shape == first_page.shape == (10, 10, 3)
    np.testing.assert_allclose(rgb, np.clip(first_page, 0, 1), atol=1e-6)
    with pytest.raises(images.ImageError, match="over the limit of 50"):
        images.read_image(path, max_pixels=50)


def test_a_tiff_bomb_is_refused_even_without_a_pixel_limit(monkeypatch):
    """The builder and evaluate read with no --max-pixels: a TIFF that only tifffile opens is then held to
    Pillow's own decompression-bomb size, rather than allocating whatever its header declares."""
    import skimage

    from koalarization import images

    path = os.path.join(os.path.dirname(skimage.__file__), "data", "multipage_rgb.tif")  # 10x10
    assert images.TIFF_BOMB_PIXELS == 2 * 89_478_485  # Pillow's error size, even after a max_pixels lifted Pillow's own
    images.read_image(path, max_pixels=10**6)  # lifts Image.MAX_IMAGE_PIXELS for the process
    monkeypatch.setattr(images, "TIFF_BOMB_PIXELS", 80)  # the 10x10 TIFF is over it
    with pytest.raises(images.ImageError, match=r"multipage_rgb.tif: image too large to decode safely \(10x10 = 100 pixels, over 80\)"):
        images.read_image(path)
    monkeypatch.setattr(images, "TIFF_BOMB_PIXELS", 100)
    assert images.read_image(path).shape == (10, 10, 3)


def test_pillows_decompression_bomb_warning_is_not_printed_raw(tmp_path):
    """A photo over Pillow's warning size (here lowered to 1000 pixels) decodes without Pillow's raw warning."""
    Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(tmp_path / "big.png")
    code = (
        "from PIL import Image\n"
        "Image.MAX_IMAGE_PIXELS = 1000\n"
        "from koalarization import images\n"
        f"print(images.read_image({str(tmp_path / 'big.png')!r}).shape)\n"
    )
    done = subprocess.run([sys.executable, "-W", "default", "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "(40, 40, 3)" in done.stdout, done.stderr
    assert "DecompressionBombWarning" not in done.stderr


def test_damaged_model_files_are_one_line_each(tmp_path, no_inception, capsys):
    source = picture(tmp_path / "in" / "x.png")
    models = tmp_path / "models"
    listed = write_run_dir(models / "listed", tinted_colorizer(embedding.EMBEDDING_DIM))
    (models / "listed" / "config.json").write_text("[1, 2]")  # JSON, but not the config's shape
    nested = write_run_dir(models / "nested", tinted_colorizer(embedding.EMBEDDING_DIM))
    (models / "nested" / "config.json").write_text(json.dumps({"config": [1], "records": [1]}))  # wrong one level down
    (models / "noise.keras").write_bytes(np.random.default_rng(0).bytes(4096))
    odd_size = write_run_dir(models / "odd", tinted_colorizer(embedding.EMBEDDING_DIM))
    config = json.loads((models / "odd" / "config.json").read_text())
    config["records"]["image_size"] = 7
    (models / "odd" / "config.json").write_text(json.dumps(config))
    truncated = models / "saved" / "1"
    truncated.mkdir(parents=True)
    (truncated / "saved_model.pb").write_bytes(b"\x08\x01\x12\xff\xff\xff")  # a protobuf cut short
    expected = {  # damaged: the table's 5; a config value to override with a flag: 2
        listed: (5, "config.json: damaged model config (JSON list, expected an object)"),
        str(models / "noise.keras"): (5, "noise.keras: not a .keras file (a .keras file is a zip archive"),
        odd_size: (2, "model.keras: the image size in its config.json is unusable (working size 7: must be a multiple of 8"),
        str(truncated): (5, f"{truncated}: cannot load the SavedModel ("),
    }
    capsys.readouterr()
    out = tmp_path / "nested_out"  # read as a run dir that says nothing usable: colorized with the defaults
    assert colorize.main([source, "-o", str(out), "--model", nested, "--inception-weights", "random"], inception=stand_in_embedder(embedding.EMBEDDING_DIM)) == 0
    assert "Traceback" not in capsys.readouterr().err
    from koalarization.train import rundir

    with pytest.raises(rundir.RunDirError, match='damaged run config \\(its "config" is not an object\\)'):
        rundir.check(nested, {"epochs": 1})  # what train says of that run dir, in one line
    for model, (status, reason) in expected.items():
        for main, argv in ((colorize.main, [source, "-o", str(tmp_path / "out" / "new")]), (evaluate.main, ["--images", source, "-o", str(tmp_path / "e")])):
            code, err = run_cli(main, [*argv, "--model", model], capsys)
            assert code == status and len(err) == 1 and reason in err[0], (main.__module__, err)
    assert not (tmp_path / "out").exists() and not (tmp_path / "e").exists()  # a failed command leaves no empty folders behind


@pytest.mark.parametrize("command", ["colorize", "evaluate", "export"])
def test_ctrl_c_is_one_line_and_exit_130(command, tmp_path, run_dir, monkeypatch, capsys):
    from koalarization.colorize import files as colorizing
    from koalarization.evaluate import scoring as evaluation
    from koalarization.export import savedmodel as export
    from koalarization.export import savedmodel as saved_model

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    source = picture(tmp_path / "in" / "x.png")
    target, argv = {
        "colorize": ((colorizing, "colorize_files"), (colorize.main, [source, "-o", str(tmp_path / "out"), "--model", run_dir])),
        "evaluate": ((evaluation, "evaluate"), (evaluate.main, ["--images", source, "-o", str(tmp_path / "e"), "--model", run_dir])),
        "export": ((saved_model, "export_from_path"), (export.main, ["--model", run_dir, "--out", str(tmp_path / "m" / "1")])),
    }[command]
    monkeypatch.setattr(*target, interrupted)
    code, err = run_cli(argv[0], argv[1], capsys)
    assert code == errors.EXIT_INTERRUPTED and len(err) == 1 and err[0].startswith("interrupted: ")


def test_evaluate_names_a_damaged_shard_in_one_line(tmp_path, capsys):
    from conftest import write_synthetic_records

    from koalarization.model import network as model

    records_dir = tmp_path / "records"
    write_synthetic_records(str(records_dir), n_train=6, n_val=4, shards=2)
    shard = records_dir / "val-00001.tfrecord"
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte inside a record: its checksum no longer matches
    shard.write_bytes(bytes(data))
    model.build_colorizer(embedding_dim=16).save(str(tmp_path / "m.keras"))
    code, err = run_cli(evaluate.main, ["--model", str(tmp_path / "m.keras"), "--records", str(records_dir), "--split", "val", "-o", str(tmp_path / "e")], capsys)
    assert code == 5 and len(err) == 1 and err[0].startswith(f"error: {shard}: damaged record (")  # damaged: the table's 5


def test_what_is_not_colorized_is_said_with_its_reason(tmp_path, run_dir, embedder, capsys):
    folder = tmp_path / "holiday"
    source = picture(folder / "x.png")
    (folder / "clip.mp4").write_bytes(b"a film")  # only its name matters here
    code, err = run_cli(colorize.main, [str(folder), "-o", str(tmp_path / "out"), "--model", run_dir, "--working-size", "32"], capsys, inception=embedder)
    assert code == 0 and os.path.exists(tmp_path / "out" / "x.png")
    assert f"left out {folder / 'clip.mp4'}: films in a folder are not colorized with its photos; name each film" in run_cli.out
    # A photo named on the command line but inside the output folder: the reason, not "no image files found".
    code, err = run_cli(colorize.main, [source, "-o", str(folder), "--model", run_dir], capsys)
    assert code == 1
    assert f"skipped {source}: it is inside the output folder {folder}, whose files are never colorized again" in run_cli.out
    assert "no image files found" not in run_cli.out
    os.mkfifo(tmp_path / "pipe.png")  # named, but nothing to read a picture from (and never waited on)
    code, err = run_cli(colorize.main, [str(tmp_path / "pipe.png"), "-o", str(tmp_path / "out2"), "--model", run_dir], capsys)
    assert code == 1 and f"skipped {tmp_path / 'pipe.png'}: not a regular file or folder (a pipe, device or socket)" in run_cli.out
