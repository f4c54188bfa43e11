"""The benchmark suite runs end to end and writes every figure (timings are never asserted).

CI checks that ``--quick`` works, as issue 6 asks: the real Inception-ResNet-v2 (random weights)
in the builder and SavedModel figures, a few minutes on 2 cores. Its verdicts are not asserted
(a loaded machine may miss a goal); that every figure is measured and reported is.
"""

import json
import math
import os
import subprocess
import sys

from benchmarks.__main__ import ALL_KEYS

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_quick_run_writes_every_figure(tmp_path):
    run = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--out", str(tmp_path)],
        cwd=REPO, capture_output=True, text=True, timeout=900,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]

    results = json.loads((tmp_path / "quick.json").read_text())
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

    table = (tmp_path / "quick.md").read_text()
    assert f"bf16 goals: {'apply' if native else 'n/a'} here" in table
    for row in results["figures"]:
        assert f"| {row['figure']} |" in table

