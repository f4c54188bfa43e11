"""Quality against the number of colour hints, for a hints model (an addition to the paper): the
row ``python -m koalarization.evaluate --records`` adds for it, as Zhang et al. (2017) plot it.

For each count in ``COUNTS`` every evaluated record gets that many simulated clicks (patches of
1-9 cells of the truth's mean ab, placed on the photo, not on the letterbox bars; seeded, so every
model is scored with the same clicks), and the model's output is scored on the photo part:
PSNR of the RGB (L kept, chroma fitted to sRGB, as ``colorize`` makes it) and the mean Euclidean
ab error in Lab units. Writes ``hints.json``, ``hints.md`` and ``hints.png`` beside the report.
"""

import json
import os

import numpy as np

from koalarization import colors, metrics, plots, safeio
from koalarization.model import hints as hint_ops
from koalarization.model import method as inference

COUNTS = (0, 1, 5, 10, 50)
SEED = 2017  # the clicks of the sweep: the same for every model and every run


def sweep(config, recs, colorizer, log=print):
    """``{"counts", "psnr", "ab_error", "ab_mse", "examples"}``: means over the evaluated records (``recs``,
    the opened ``config.records``) per number of hints."""
    from koalarization.evaluate import scoring

    totals = {count: {"psnr": 0.0, "ab_error": 0.0, "ab_mse": 0.0} for count in COUNTS}
    seen = 0
    for index, batch in enumerate(scoring.record_batches(recs, config.split, config.batch_size, config.max_examples)):
        size = batch["l"].shape[1]
        shown = np.stack([colors.repeat_edges(l, h, w) for l, h, w in zip(batch["l"], batch["height"], batch["width"])])
        boxes = np.array([scoring.content_box(h, w, size) for h, w in zip(batch["height"], batch["width"])], np.int32)
        for count in COUNTS:
            hints, _ = hint_ops.simulate_count(batch["ab"], [SEED + count, index], count, boxes)
            ab = np.asarray(colorizer.predict_embedded(shown, batch["embedding"], hints))  # (B, S, S, 2)
            for i, (top, left, h, w) in enumerate(boxes):
                crop = (slice(top, top + h), slice(left, left + w))
                l = colors.unscale_l(batch["l"][i][crop])
                truth, predicted = colors.unscale_ab(batch["ab"][i][crop]), colors.unscale_ab(ab[i][crop])
                rgb_true = inference.lab_to_rgb_keeping_luminance(l, truth).numpy()
                rgb = inference.lab_to_rgb_keeping_luminance(l, predicted).numpy()
                totals[count]["psnr"] += metrics.psnr(rgb, rgb_true)
                totals[count]["ab_error"] += float(np.mean(np.linalg.norm(np.asarray(predicted) - np.asarray(truth), axis=-1)))
                totals[count]["ab_mse"] += metrics.ab_mse(predicted, truth)
        seen += len(batch["key"])
    if not seen:
        raise ValueError(f"{config.records}: no {config.split} examples to score the hints on")
    rows = {name: [totals[count][name] / seen for count in COUNTS] for name in ("psnr", "ab_error", "ab_mse")}
    log("hints: " + ", ".join(f"{c}: PSNR {p:.2f} dB, ab error {e:.2f}" for c, p, e in zip(COUNTS, rows["psnr"], rows["ab_error"])))
    return {"counts": list(COUNTS), **rows, "examples": seen, "seed": SEED}


def markdown(result):
    lines = ["| hints | PSNR (dB) | ab error (Lab units) | ab MSE (scaled) |", "|---:|---:|---:|---:|"]
    for count, psnr, error, mse in zip(result["counts"], result["psnr"], result["ab_error"], result["ab_mse"]):
        lines.append(f"| {count} | {psnr:.2f} | {error:.2f} | {mse:.5f} |")
    return "\n".join(lines) + f"\n\nSimulated clicks on {result['examples']} records (seed {result['seed']}).\n"


def write(result, out_dir):
    """``hints.json``, ``hints.md`` and ``hints.png`` into ``out_dir``, each written whole."""
    safeio.write_text(os.path.join(out_dir, "hints.json"), json.dumps(result, indent=2) + "\n")
    safeio.write_text(os.path.join(out_dir, "hints.md"), markdown(result))
    with safeio.atomic_path(os.path.join(out_dir, "hints.png")) as tmp:
        plots.quality_by_hints(result["counts"], result["psnr"], result["ab_error"]).savefig(tmp, format="png")
