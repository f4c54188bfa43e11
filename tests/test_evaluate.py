"""Metrics against hand-computed cases and scikit-image; the evaluate CLI end to end."""

import json
import os

import numpy as np
import pytest
from PIL import Image
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from conftest import SMALL_DIM, synthetic_photo
from koalarization import colors, metrics
from koalarization.evaluate import scoring as evaluate
from koalarization.evaluate import scoring as evaluation
from koalarization.model import network as model


@pytest.fixture(scope="module")
def rng():
    return np.random.default_rng(7)


def random_ab(rng, h=20, w=24):
    """Integer-valued ab maps, so that differences are exact in floating point."""
    return rng.integers(-60, 60, size=(h, w, 2)).astype(np.float64)


# -- hand-computed cases ---------------------------------------------------------------------------
def test_identical_images_score_perfectly(rng):
    rgb = synthetic_photo(rng, 24, 32)
    lab = colors.rgb_to_lab(rgb).numpy()
    scores, _, curves = evaluation.score_image(lab[..., :1], lab[..., 1:], {"model": lab[..., 1:].copy()})
    assert scores["model"]["ab_mse"] == 0.0
    assert scores["model"]["psnr"] == metrics.PSNR_CAP_DB  # documented cap instead of inf
    assert scores["model"]["ssim"] == pytest.approx(1.0, abs=1e-9)
    assert scores["model"]["auc"] == 1.0
    assert scores["model"]["colorfulness_diff"] == 0.0
    assert scores["colorfulness_original"] > 10  # a colourful picture, so the diff of 0 means something
    np.testing.assert_array_equal(curves["model"], np.ones(151))


def test_constant_ab_shift_gives_known_mse_and_auc(rng):
    ab_true = random_ab(rng)
    ab_pred = ab_true + np.array([30.0, 40.0])  # every pixel off by exactly 50 ab units
    assert metrics.ab_mse(ab_pred, ab_true) == pytest.approx((30**2 + 40**2) / 2 / 127**2)
    curve = metrics.ab_error_curve(ab_pred, ab_true)
    np.testing.assert_array_equal(curve, (np.arange(151) >= 50).astype(float))
    assert metrics.auc(curve) == pytest.approx(101 / 151)  # t = 50..150 of t = 0..150


def test_auc_of_half_right_half_wrong(rng):
    ab_true = random_ab(rng, 10, 10)
    ab_pred = ab_true.copy()
    ab_pred[:5] += np.array([0.0, 100.0])  # half the pixels 100 units off, the rest exact
    assert metrics.auc(metrics.ab_error_curve(ab_pred, ab_true)) == pytest.approx((100 * 0.5 + 51 * 1.0) / 151)


def test_psnr_of_a_constant_shift():
    rgb = np.full((16, 16, 3), 0.5)
    assert metrics.psnr(rgb + 0.1, rgb) == pytest.approx(20.0)  # MSE 0.01 -> 10 log10(1 / 0.01)
    assert metrics.psnr(rgb, rgb) == metrics.PSNR_CAP_DB


def test_colorfulness_by_hand():
    gray = np.repeat(np.linspace(0, 1, 64).reshape(8, 8, 1), 3, axis=-1)
    assert metrics.colorfulness(gray) == pytest.approx(0.0, abs=1e-9)
    red = np.zeros((8, 8, 3))
    red[..., 0] = 1.0  # rg = 255, yb = 127.5 everywhere: only the mean term
    assert metrics.colorfulness(red) == pytest.approx(0.3 * np.hypot(255, 127.5))
    half = red.copy()
    half[:4] = 0.0  # half red, half black: rg and yb have mean = std = 127.5 and 63.75
    assert metrics.colorfulness(half) == pytest.approx(1.3 * np.hypot(127.5, 63.75))


# -- against scikit-image --------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(32, 32, 3), (23, 41, 3), (7, 9, 3)])
def test_psnr_and_ssim_match_skimage(rng, shape):
    true = rng.random(shape)
    for pred in (np.clip(true + rng.normal(0, 0.05, shape), 0, 1), rng.random(shape), true * 0.7 + 0.1):
        assert metrics.psnr(pred, true) == pytest.approx(peak_signal_noise_ratio(true, pred, data_range=1.0))
        expected = structural_similarity(true, pred, channel_axis=-1, data_range=1.0)
        assert metrics.ssim(pred, true) == pytest.approx(expected, abs=1e-8)


def test_ssim_rejects_images_smaller_than_its_window():
    with pytest.raises(ValueError, match="at least 7x7"):
        metrics.ssim(np.zeros((5, 5, 3)), np.zeros((5, 5, 3)))


# -- the CLI ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("tiny_model") / "model.keras")
    model.build_colorizer(embedding_dim=SMALL_DIM).save(path)
    return path


def assert_png(path):
    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n", path
    with Image.open(path) as image:
        image.verify()
    with Image.open(path) as image:
        assert min(image.size) > 100


def test_cli_on_records_writes_metrics_table_and_plots(synthetic_records, tiny_model, tmp_path, capsys):
    out = tmp_path / "eval"
    run_dir = os.path.dirname(tiny_model)  # a run dir holding model.keras works as --model too
    code = evaluate.main(["--model", run_dir, "--records", synthetic_records, "--split", "val", "-o", str(out), "--batch-size", "3"])
    assert code == 0
    assert "| model |" in capsys.readouterr().out
    for name in ("metrics.json", "metrics.md", "ab_error_cdf.png", "best_worst.png"):
        assert (out / name).exists(), name
    assert_png(out / "ab_error_cdf.png")
    assert_png(out / "best_worst.png")

    report = json.loads((out / "metrics.json").read_text())
    assert set(report["mean"]) == {"model", "gray", "mean_ab"}
    assert report["examples"] == 4 and len(report["images"]) == 4
    assert sorted(img["key"] for img in report["images"]) == ["val/0", "val/1", "val/2", "val/3"]
    assert "train split" in report["mean_ab"]["from"]
    for img in report["images"]:
        for method in ("model", "gray", "mean_ab"):
            assert set(img[method]) == set(evaluation.METRICS)
            assert 0 <= img[method]["auc"] <= 1 and img[method]["ssim"] <= 1
        assert img["gray"]["colorfulness"] < 0.5  # ab = 0 really is gray
        assert img["gray"]["colorfulness_diff"] == pytest.approx(img["colorfulness_original"], abs=0.5)
    means = report["mean"]["gray"]["ab_mse"], np.mean([img["gray"]["ab_mse"] for img in report["images"]])
    assert means[0] == pytest.approx(means[1])
    table = (out / "metrics.md").read_text()
    assert table.count("\n|") == 4  # header rule + three methods


def test_cli_on_image_files_with_random_inception(tmp_path, capsys):
    photos = tmp_path / "photos"
    photos.mkdir()
    rng = np.random.default_rng(3)
    for i, (h, w) in enumerate([(40, 56), (48, 30)]):
        Image.fromarray((synthetic_photo(rng, h, w) * 255).astype(np.uint8)).save(photos / f"p{i}.png")
    (photos / "broken.jpg").write_bytes(b"not a jpeg")
    odd_name = os.path.join(str(photos), os.fsdecode(b"caf\xe9.png"))  # Latin-1 bytes: not UTF-8
    Image.fromarray((synthetic_photo(rng, 32, 32) * 255).astype(np.uint8)).save(odd_name, format="PNG")
    model_path = str(tmp_path / "m.keras")
    model.build_colorizer(embedding_dim=1000).save(model_path)
    out = tmp_path / "eval"
    code = evaluate.main(["--model", model_path, "--images", str(photos), "-o", str(out), "--working-size", "32",
                          "--inception-weights", "random"])  # fmt: skip
    assert code == 0
    printed = capsys.readouterr().out
    assert "broken.jpg" in printed and "skipped" in printed
    report = json.loads((out / "metrics.json").read_text())
    assert report["examples"] == 3  # the odd name too, drawn in the grid and written in the report
    # scored at each photo's own size, not the 32x32 working size
    assert sorted((img["height"], img["width"]) for img in report["images"]) == [(32, 32), (40, 56), (48, 30)]
    assert "evaluated images themselves" in report["mean_ab"]["from"]
    assert_png(out / "best_worst.png")


def test_cli_errors_name_the_problem(synthetic_records, tiny_model, tmp_path, capsys):
    def error_of(argv):
        assert evaluate.main(argv + ["-o", str(tmp_path / "o")]) == 2
        return capsys.readouterr().err

    missing = str(tmp_path / "nope.keras")
    assert f"{missing}: model not found" in error_of(["--model", missing, "--records", synthetic_records])
    assert "no manifest.json" in error_of(["--model", tiny_model, "--records", str(tmp_path)])
    assert "no split 'test'" in error_of(["--model", tiny_model, "--records", synthetic_records, "--split", "test"])
    wide = str(tmp_path / "wide.keras")
    model.build_colorizer(embedding_dim=SMALL_DIM + 1).save(wide)
    assert "expects 17-d embeddings but" in error_of(["--model", wide, "--records", synthetic_records])
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "self").symlink_to(".")  # walking it would print a warning about the loop
    said = error_of(["--model", missing, "--images", str(photos)])
    assert f"{missing}: model not found" in said and "loop" not in said + capsys.readouterr().out
    with pytest.raises(SystemExit):  # argparse: --records or --images is required
        evaluate.main(["--model", tiny_model, "-o", str(tmp_path / "o")])


def test_mean_ab_baseline_is_a_uniform_sample_of_the_train_split(tmp_path):
    from conftest import write_synthetic_records

    from koalarization.evaluate import scoring as evaluation
    from koalarization.records.dataset import Records

    records_dir = str(tmp_path / "records")
    write_synthetic_records(records_dir, n_train=12, n_val=0, shards=3)  # shard s holds train/s, train/s+3, ...
    keys = [k.decode() for batch in evaluation.uniform_sample(Records(records_dir), "train", 4, 2) for k in batch["key"]]
    assert len(keys) == 4
    # the heads of all shards (2, 1 and 1 examples), not the first 4 of the first shard
    assert sorted(keys) == ["train/0", "train/1", "train/2", "train/3"]
    everything = [k.decode() for batch in evaluation.uniform_sample(Records(records_dir), "train", 0, 5) for k in batch["key"]]
    assert sorted(everything) == sorted(f"train/{i}" for i in range(12))


def test_seen_in_training_is_told_cheaply_and_never_guessed_after_a_rebuild(tmp_path, monkeypatch):
    from conftest import write_synthetic_records

    from koalarization import records
    from koalarization.evaluate import scoring as evaluation
    from koalarization.records.dataset import Records

    records_dir, run_dir = tmp_path / "records", tmp_path / "run"
    manifest = write_synthetic_records(str(records_dir), n_train=6, n_val=3, shards=2)
    run_dir.mkdir()
    model.build_colorizer(embedding_dim=SMALL_DIM).save(str(run_dir / "model.keras"))
    # what train writes: its config (with the records dir) and the records' facts
    (run_dir / "config.json").write_text(json.dumps({"config": {"records": str(records_dir)}, "records": records.facts(manifest)}))

    def report(split, name):
        out = tmp_path / name
        assert evaluate.main(["--model", str(run_dir), "--records", str(records_dir), "--split", split, "-o", str(out)]) == 0
        return json.loads((out / "metrics.json").read_text()), (out / "metrics.md").read_text()

    # The val split of the records the run trained on: nothing seen, by construction; the train split
    # (every record of it, at ImageNet's size) is not read for that.
    def read_keys(*args):
        raise AssertionError("the train split's keys were read")

    from koalarization.evaluate import seen

    monkeypatch.setattr(seen, "read_keys", read_keys)
    val, _ = report("val", "val")
    assert val["seen_in_training"] == 0 and not any(img["seen_in_training"] for img in val["images"])
    monkeypatch.undo()
    train, _ = report("train", "train")  # its train split: every image was seen (the keys are read)
    assert train["seen_in_training"] == 6

    # Rebuilt in place with more photos (the split moved): what the run saw cannot be told, and the
    # report says so instead of "0 seen".
    write_synthetic_records(str(records_dir), n_train=9, n_val=3, shards=2, seed=1)
    rebuilt, table = report("val", "rebuilt")
    assert rebuilt["seen_in_training"] is None and "rebuilt since (examples changed)" in rebuilt["seen_in_training_unknown"]
    assert "Seen in training: unknown" in table and "seen_in_training" not in rebuilt["images"][0]


def test_training_panel_is_gray_prediction_truth():
    from koalarization import plots

    rng = np.random.default_rng(0)
    l = rng.uniform(-0.5, 0.5, (2, 8, 8, 1)).astype(np.float32)
    truth = np.full((2, 8, 8, 2), 0.2, np.float32)
    panel = plots.sample_panel(l, np.zeros_like(truth), truth).numpy()  # prediction: gray
    assert panel.shape == (16, 24, 3)
    gray, prediction, original = panel[:, :8], panel[:, 8:16], panel[:, 16:]
    np.testing.assert_allclose(gray, prediction, atol=2e-3)  # a gray prediction looks like the gray input
    assert np.ptp(gray, axis=-1).max() < 2e-3 and np.ptp(original, axis=-1).min() > 0.02
