"""The benchmark suite runs end to end and writes every figure (timings are never asserted).

CI runs the whole harness at its smallest size (``--smoke``: every figure, a tiny stand-in for
Inception-ResNet-v2 in the builder, SavedModel and colorize figures, their colorizer at 64 px), about
two and a half minutes on 2 cores (141 s measured on an idle Intel Xeon; 194 s beside other jobs). ``--quick``
(the real Inception with random weights) ran here in the test suite until the suite had to fit 20
minutes on the AMD kind, where its bf16 figures run emulated; it takes ~6 minutes on Intel and is run
by hand (``benchmarks/results/``). Verdicts are not asserted (a loaded machine may miss a goal); that
every figure is measured and reported is.
"""

import json
import math
import os
import subprocess
import sys

from benchmarks.__main__ import ALL_KEYS

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_smoke_run_writes_every_figure(tmp_path):
    run = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--smoke", "--out", str(tmp_path)],
        cwd=REPO, capture_output=True, text=True, timeout=900,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]

    results = json.loads((tmp_path / "smoke.json").read_text())
    assert results["machine"]["cpu"] and results["machine"]["tensorflow"]
    assert isinstance(results["machine"]["bf16_supported"], bool)
    rows = {row["key"]: row for row in results["figures"]}
    assert sorted(rows) == sorted(ALL_KEYS)
    for key, row in rows.items():
        assert row["status"] in ("pass", "fail", "report", "n/a"), (key, row["note"])
        for side in ("measured", "against"):
            assert row[side]["value"] > 0 and math.isfinite(row[side]["value"]), (key, side, row)
        assert math.isclose(row["ratio"], row["measured"]["value"] / row["against"]["value"], rel_tol=1e-6)

    # bf16 speed goals are judged only where bf16 is native, and the table says which applies.
    native = results["machine"]["bf16_native"]
    for key in ("mixed_bfloat16", "train_gflops_bf16", "builder_bf16", "colorize_bf16", "savedmodel_bf16"):
        assert (rows[key]["status"] == "n/a") == (not native), (key, rows[key]["status"], native)
    for key in ("mixed_bfloat16", "builder_bf16", "colorize_bf16", "savedmodel_bf16", "savedmodel_batch"):
        assert math.isfinite(rows[key]["spread"]), key  # pairs timed in alternation report their spread
    for key in ("bf16_loss", "embedding_bf16", "colorize_bf16_accuracy"):  # accuracy is judged everywhere
        assert rows[key]["status"] in ("pass", "fail"), key
    assert "n/a" in rows["builder_bf16"]["note"] or native

    table = (tmp_path / "smoke.md").read_text()
    assert f"bf16 goals: {'apply' if native else 'n/a'} here" in table
    assert "Inference figures ran with TF_ONEDNN_ASSUME_FROZEN_WEIGHTS=1" in table  # measured as the commands run
    for row in results["figures"]:
        assert f"| {row['figure']} |" in table



def test_spread_of_whole_runs_marks_a_figure_that_moves(tmp_path):
    from benchmarks import spread

    def run(date, *ratios):
        figures = [{"key": k, "figure": k, "goal": "≥ 1", "ratio": r, "status": "pass"} for k, r in zip(("steady", "moving"), ratios)]
        machine = {"cpu": "Some CPU", "cores": 2, "tensorflow": "2", "load_average_start": [0.1], "bf16_native": False}
        return {"mode": "full", "date": date, "machine": machine, "figures": figures}

    runs = [run("a", 2.0, 1.0), run("b", 2.1, 1.5), run("c", 1.95, 1.2)]
    rows = {row["key"]: row for row in spread.spreads(runs)}
    assert math.isclose(rows["steady"]["spread"], 0.15 / 2.0) and math.isclose(rows["moving"]["spread"], 0.5 / 1.2)
    names = []
    for i, results in enumerate(runs):
        names.append(str(tmp_path / f"run-{i}.json"))
        (tmp_path / f"run-{i}.json").write_text(json.dumps(results))
    assert spread.main([*names, "--out", str(tmp_path / "spread.md")]) == 0
    table = (tmp_path / "spread.md").read_text()
    assert "Over it: moving." in table and "| 41.7% **over** |" in table and "| 7.5% |" in table

    other = run("d", 2.0, 1.0)
    other["machine"]["cpu"] = "Another CPU"
    (tmp_path / "other.json").write_text(json.dumps(other))
    assert spread.main([names[0], str(tmp_path / "other.json")]) == 2  # runs of two machines are not compared
