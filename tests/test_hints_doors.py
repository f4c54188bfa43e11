"""Colour hints (issue 26, an addition to the paper) at every door: the variant network, the
simulated clicks of training, the Colorizer, ``colorize --hint/--hints``, the SavedModel's
``with_hints`` (same pixels as the CLI) and the one-line refusals. Whether the variant learns
to use hints: tests/test_hints.py."""

import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image
from skimage import color
from test_colorize import DIM, embedder, photos, run_dir, save, stand_in_embedder, to_uint8, write_run_dir  # noqa: F401
from test_parity import corpus, smooth, u8  # noqa: F401

from koalarization.colorize import files as colorize
from koalarization import colors, hintspec
from koalarization.errors import UsageError
from koalarization.export import savedmodel
from koalarization.model import hints, network
from koalarization.model.colorizer import Colorizer

SIZE = 32


def test_the_variant_adds_only_the_first_convolutions_hint_weights(tmp_path):
    paper, variant = network.build_colorizer(1000), network.build_colorizer(1000, hints=True)
    assert paper.count_params() == 6_573_794 and variant.count_params() == 6_575_522  # + 3x3x3x64
    assert not network.takes_hints(paper) and network.takes_hints(variant)
    small = network.build_colorizer(DIM, hints=True)
    rng = np.random.default_rng(0)
    inputs = {"l": rng.uniform(-1, 1, (2, 16, 24, 1)).astype("float32"), "embedding": rng.normal(size=(2, DIM)).astype("float32"),
              "hints": rng.uniform(0, 1, (2, 16, 24, 3)).astype("float32")}  # fmt: skip
    small.save(tmp_path / "v.keras")
    loaded = keras.saving.load_model(tmp_path / "v.keras", safe_mode=True)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(small(inputs)), keras.ops.convert_to_numpy(loaded(inputs)))


def test_simulated_clicks_are_patches_of_the_truths_mean_drawn_alike_after_a_resume():
    rng = np.random.default_rng(1)
    ab = np.repeat(rng.uniform(-0.5, 0.5, (400, 1, 1, 2)), 16, 1).repeat(16, 2).astype("float32")  # one colour per example
    drawn = hints.simulate(ab, [7, 3]).numpy()
    mask = drawn[..., 2] > 0
    assert set(np.unique(drawn[..., 2])) <= {0.0, 1.0}
    np.testing.assert_allclose(drawn[..., :2][mask], hints.HINT_GAIN * np.broadcast_to(ab, drawn[..., :2].shape)[mask], atol=1e-5 * hints.HINT_GAIN)  # the patch mean (summed-area float error, x the gain)
    assert np.all(drawn[..., :2][~mask] == 0)
    empty = int((~mask.any(axis=(1, 2))).sum())
    assert 20 <= empty <= 80, empty  # geometric p = 1/8: 1 in 8 gets no hint (50 expected of 400)
    np.testing.assert_array_equal(hints.simulate(ab, [7, 3]), drawn)  # same seed, same clicks
    assert not np.array_equal(hints.simulate(ab, [7, 4]), drawn)
    # a run resumed after batch 2 of an epoch draws the unstopped run's clicks for the batches after it
    batches = tf.data.Dataset.from_tensor_slices(({"l": np.zeros((24, 16, 16, 1), "float32")}, ab[:24])).batch(4)
    whole = [x[0]["hints"].numpy() for x in hints.with_simulated_hints(batches, 11)]
    resumed = [x[0]["hints"].numpy() for x in hints.with_simulated_hints(batches.skip(2), 11, start=2)]
    for a, b in zip(whole[2:], resumed, strict=True):
        np.testing.assert_array_equal(a, b)


def test_a_users_point_lands_on_its_letterboxed_cell_with_its_colours_ab():
    # a 40 x 80 photo in a 32 grid: 16 rows tall, from row 8; pixel (x=79, y=0) is the top right cell
    grid = hints.hint_map(40, 80, [[79.0, 0.0], [-1.0, 0.0]], [[200, 30, 40], [0, 0, 0]], SIZE, patch=1).numpy()
    assert np.argwhere(grid[..., 2] > 0).tolist() == [[8, 31]]  # the padding point draws nothing
    expected = color.rgb2lab(np.array([[[200, 30, 40]]], np.uint8))[0, 0, 1:] / colors.AB_SCALE * hints.HINT_GAIN
    np.testing.assert_allclose(grid[8, 31, :2], expected, atol=1e-2)
    assert hintspec.parse_hint("3,4.5,#C81E28") == (3.0, 4.5, (200, 30, 40))


@pytest.fixture(scope="module")
def hints_run(tmp_path_factory):
    """A randomly initialised hints model with a tinted output, so that a hint visibly changes it."""
    keras.utils.set_random_seed(5)
    net = network.build_colorizer(DIM, hints=True)
    net.get_layer("decoder_conv5").bias.assign(np.array((0.2, 0.3), np.float32))
    kernel = net.get_layer("encoder_conv1").kernel
    kernel.assign(kernel.numpy() * np.array([1, 400, 400, 100], np.float32)[None, None, :, None])  # hints weigh far more than L
    return write_run_dir(tmp_path_factory.mktemp("hints_run"), net, embedding_model="synthetic")


POINTS = [(5.0, 4.0, (220, 40, 30)), (14.0, 25.0, (30, 60, 220))]  # in the displayed (portrait) photo: 20 wide, 30 tall


def test_cli_and_with_hints_give_the_same_pixels(corpus, hints_run, embedder, tmp_path):  # noqa: F811
    source = os.path.join(corpus, "portrait_exif.jpg")  # stored 30 x 20, shown 20 x 30: hints are in the shown pixels
    flags = [f"{int(x)},{int(y)},#{r:02x}{g:02x}{b:02x}" for x, y, (r, g, b) in POINTS]
    argv = [source, "-o", str(tmp_path / "cli"), "--model", hints_run, "--working-size", str(SIZE)]
    assert colorize.main([*argv, *[a for flag in flags for a in ("--hint", flag)]], inception=embedder) == 0
    assert colorize.main([*argv[:2], str(tmp_path / "plain"), *argv[3:]], inception=embedder) == 0
    from_cli = np.asarray(Image.open(tmp_path / "cli" / "portrait_exif.png")).astype(int)
    plain = np.asarray(Image.open(tmp_path / "plain" / "portrait_exif.png")).astype(int)
    assert from_cli.shape == (30, 20, 3) and np.abs(from_cli - plain).max() > 20  # the hints steer it

    loaded = Colorizer.load(hints_run, inception=embedder, working_size=SIZE)
    served = tf.saved_model.load(savedmodel.export_saved_model(loaded, tmp_path / "models" / "1", "random"))
    assert "with_hints" in served.signatures
    data = tf.constant([open(source, "rb").read()] * 2)
    xy = tf.constant([[[x, y] for x, y, _ in POINTS], [[-1.0, 0.0], [-1.0, 0.0]]])  # photo 2: padding only
    rgb = tf.constant([[c for _, _, c in POINTS], [[0, 0, 0]] * 2], tf.uint8)
    pngs = served.signatures["with_hints"](image_bytes=data, hint_xy=xy, hint_rgb=rgb)["colorized_bytes"]
    hinted, unhinted = (tf.io.decode_png(png).numpy().astype(int) for png in pngs)
    assert np.abs(hinted - from_cli).max() <= 2 and np.abs(unhinted - plain).max() <= 2
    default = served.signatures["serving_default"](image_bytes=data[:1])["colorized_bytes"][0]
    assert np.abs(tf.io.decode_png(default).numpy().astype(int) - plain).max() <= 2  # no hints: the automatic path
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"image_bytes\[0\]: a hint lies outside the 20x30 photo"):
        served.signatures["with_hints"](image_bytes=data[:1], hint_xy=tf.constant([[[25.0, 3.0]]]), hint_rgb=tf.constant([[[1, 2, 3]]], tf.uint8))
    assert Colorizer.load(str(tmp_path / "models" / "1")).takes_hints


def test_the_colorizer_takes_hints_per_photo_and_refuses_bad_ones(hints_run, run_dir, embedder):  # noqa: F811
    loaded = Colorizer.load(hints_run, inception=embedder, working_size=SIZE)
    photo = smooth(np.random.default_rng(2), 30, 20).astype("float32")
    assert loaded.takes_hints
    plain, also_plain, hinted = (c.numpy() for c in loaded.colorize([photo, photo, photo], hints=[[], None and [], POINTS]))
    np.testing.assert_array_equal(plain, loaded.colorize([photo])[0].numpy())  # no hints: zero hint channels
    np.testing.assert_array_equal(plain, also_plain)
    assert np.abs(hinted.astype(int) - plain).max() > 20
    for bad, message in (([(20.0, 3.0, (1, 2, 3))], "outside the 20x30 photo"), ([(1.0, 1.0, (1, 2, 300))], "not three integers 0-255"),
                         ([(1.0, 1.0, "#12345")], "is not #RRGGBB")):  # fmt: skip
        with pytest.raises(UsageError, match=message):
            loaded.colorize([photo], hints=[bad])
    automatic = Colorizer.load(run_dir, inception=embedder, working_size=SIZE)
    assert not automatic.takes_hints
    with pytest.raises(UsageError, match="takes no colour hints"):
        automatic.colorize([photo], hints=[POINTS])


def run_cli(argv, capsys, **kwargs):
    code = colorize.main(argv, **kwargs)
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip() and "colorizing" not in line]
    return code, err


def test_bad_hints_are_one_line_and_status_2_before_anything_is_written(photos, hints_run, run_dir, embedder, tmp_path, capsys):  # noqa: F811
    one = os.path.join(photos, "colour.jpg")  # 64 x 48
    out = str(tmp_path / "out")
    common = ["-o", out, "--working-size", str(SIZE)]
    (tmp_path / "names.json").write_text(json.dumps({"colour.jpg": [[3, 4, "#ff0000"]], "nothere.png": [[1, 1, "#00ff00"]]}))
    (tmp_path / "far.json").write_text(json.dumps({"sub/deep.png": [[40, 4, "#ff0000"]]}))  # deep.png is 17 wide
    cases = [
        ([one, "--model", hints_run, "--hint", "64,3,#ff0000"], "lies outside the 64x48 photo"),
        ([one, "--model", hints_run, "--hint", "3,3,red"], "is not #RRGGBB"),
        ([one, "--model", hints_run, "--hint", "3,#ff0000"], "expected X,Y,#RRGGBB"),
        ([photos, "--model", hints_run, "--hint", "3,3,#ff0000"], "--hint is for one photo"),
        ([photos, "--model", hints_run, "--hints", str(tmp_path / "names.json")], "no photo among the inputs is named 'nothere.png'"),
        ([photos, "--model", hints_run, "--hints", str(tmp_path / "far.json")], "lies outside the 17x33 photo"),
        ([one, "--model", run_dir, "--hint", "3,3,#ff0000"], "takes no colour hints"),
    ]
    for argv, message in cases:
        code, err = run_cli([*argv, *common], capsys, inception=embedder)
        assert code == 2 and len(err) == 1 and message in err[0], (argv, err)
        assert not os.path.exists(out), argv  # nothing written
    (tmp_path / "good.json").write_text(json.dumps({"sub/deep.png": [[3, 4, "#ff0000"]], "colour.jpg": [[10, 10, [0, 0, 255]]]}))
    code, err = run_cli([photos, "--model", hints_run, "--hints", str(tmp_path / "good.json"), *common], capsys, inception=embedder)
    assert code == 0 and os.path.exists(os.path.join(out, "sub", "deep.png"))


def test_train_hints_records_it_and_resumes_an_older_run_without_it(tmp_path):
    from koalarization import cli
    from koalarization.train import rundir
    from koalarization.train.config import PRESETS, TrainConfig

    def parse_config(argv):
        return cli.parse(TrainConfig, argv, PRESETS)

    config = parse_config(["--records", "r", "--run-dir", "d", "--preset", "smoke", "--hints"])
    assert config.hints and config.epochs == 2  # with any preset
    assert not parse_config(["--records", "r", "--run-dir", "d"]).hints
    import dataclasses

    older = {k: v for k, v in dataclasses.asdict(parse_config(["--records", "r", "--run-dir", str(tmp_path)])).items() if k != "hints"}
    rundir.write_config(str(tmp_path), {"config": older})
    assert rundir.check(str(tmp_path), {**older, "hints": False}) is False  # a run from before hints: the same run
    with pytest.raises(rundir.RunDirError, match=r"different settings \(hints\)"):
        rundir.check(str(tmp_path), {**older, "hints": True})


def test_evaluate_on_a_hints_model_writes_quality_against_the_number_of_hints(hints_run, tmp_path):
    from conftest import write_synthetic_records

    from koalarization.evaluate import scoring

    records_dir = str(tmp_path / "records")
    write_synthetic_records(records_dir, n_train=4, n_val=4, image_size=SIZE, dim=DIM)
    out = tmp_path / "eval"
    assert scoring.main(["--model", hints_run, "--records", records_dir, "-o", str(out), "--batch-size", "4"]) == 0
    result = json.loads((out / "hints.json").read_text())
    assert result["counts"] == [0, 1, 5, 10, 50] and len(result["psnr"]) == len(result["ab_error"]) == 5
    assert result["ab_error"][0] != result["ab_error"][-1]  # this model's output moves with its hints
    assert "| 50 |" in (out / "hints.md").read_text()
    assert Image.open(out / "hints.png").size[0] > 100
