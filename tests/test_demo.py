"""`python -m koalarization.demo` resumes every stage (issue 12): a second run redoes nothing, and its
evaluation says which photos the model was trained on. A stand-in replaces Inception-ResNet-v2."""

import json
import os

from test_colorize import stand_in_embedder

from koalarization import demo
from koalarization.model import inception as embedding


def test_a_second_run_keeps_every_stage_and_precision_is_recorded_in_each(tmp_path, monkeypatch, capsys):
    """One demo in bfloat16 (one run for both checks: the suite's time is bounded): the records, the
    training run, the export and the evaluation all say bfloat16; run again, it redoes nothing."""
    monkeypatch.setattr(embedding, "build_inception", lambda weights="imagenet": stand_in_embedder(1000, name="inception_resnet_v2"))
    out = tmp_path / "demo"
    argv = ["--out", str(out), "--inception-weights", "random", "--precision", "bfloat16"]
    assert demo.main(argv) == 0
    first = capsys.readouterr().out
    manifest = json.loads((out / "records" / "manifest.json").read_text())
    config = json.loads((out / "run" / "config.json").read_text())
    export = json.loads((out / "models" / "koalarization" / "1" / "export.json").read_text())
    metrics = json.loads((out / "evaluation" / "metrics.json").read_text())
    assert manifest["embedding"]["precision"] == "bfloat16"
    assert config["precision"] == "mixed_bfloat16"
    assert export["precision"] == "bfloat16"
    assert metrics["precision"] == "bfloat16"
    assert (out / "comparison.png").exists()

    outputs = [out / "run" / "model.keras", out / "models" / "koalarization" / "1" / "saved_model.pb", out / "evaluation" / "metrics.json"]
    outputs += sorted((out / "colorized").glob("*.png"))
    stamps = {path: os.stat(path).st_mtime_ns for path in outputs}
    assert len(stamps) > 6 and "were in the training split" in first

    assert demo.main(argv) == 0
    second = capsys.readouterr().out
    assert {path: os.stat(path).st_mtime_ns for path in outputs} == stamps  # nothing redone
    assert "training already done" in second and "newer than the model: kept" in second
    assert "colorized 0, kept" in second
    assert "scores measure fit, not generalisation" in second
