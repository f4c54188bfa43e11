"""The machinery of ``python -m koalarization.evaluate`` (see :mod:`koalarization.evaluate` for what is
scored and written): loading the model, the two baselines, scoring each image, the report.

The command line lives in :mod:`koalarization.evaluate`, which imports this module only after its
arguments are parsed; its config object is passed in, so nothing here imports a command.
"""


import dataclasses
import heapq
import json
import os
import sys

import numpy as np
from koalarization import quiet_tensorflow  # noqa: E402

quiet_tensorflow()
import tensorflow as tf
from tqdm import tqdm

from koalarization.model import colorizer as colorizer_module
from koalarization import cli, colors, errors, images, metrics, plots, records, safeio
from koalarization.evaluate.config import EvaluateConfig
from koalarization.records.dataset import Records
from koalarization.evaluate.seen import trained_on_records, training_keys
from koalarization.model import method as inference

METHODS = ("model", "gray", "mean_ab")
METRICS = ("ab_mse", "psnr", "ssim", "colorfulness", "colorfulness_diff", "auc")


def record_batches(recs, split, batch_size, max_examples=0):
    """The letterboxed L/ab pairs and stored embeddings of the opened :class:`Records` ``recs``."""
    ds = recs.dataset(split, batch_size, shuffle=False, with_keys=True)
    seen = 0
    for inputs, ab in ds:
        batch = {name: value.numpy() for name, value in inputs.items()}
        batch["ab"] = ab.numpy()
        batch["key"] = [k.decode("utf-8", "replace") for k in batch["key"]]
        if max_examples:
            batch = {name: value[: max_examples - seen] for name, value in batch.items()}
        seen += len(batch["key"])
        yield batch
        if max_examples and seen >= max_examples:
            return


def read_photo(path, max_side=0):
    """sRGB (H, W, 3) of an image file, shrunk (when ``max_side``) so that its longer side is at most ``max_side``."""
    rgb = images.read_image(path)
    scale = max_side / max(rgb.shape[:2]) if max_side else 1
    if scale < 1:
        size = [max(1, round(rgb.shape[0] * scale)), max(1, round(rgb.shape[1] * scale))]
        rgb = tf.clip_by_value(tf.image.resize(rgb, size, antialias=True), 0.0, 1.0).numpy()
    return rgb


def readable_photos(paths, max_side, skipped, log=print):
    """``(path, rgb)`` for each image file that can be scored; the others go to ``skipped`` (path, reason)."""
    for path in paths:
        try:
            rgb = read_photo(path, max_side)
        except images.ImageError as error:
            skipped.append((error.path, error.reason))
            log(f"skipped {error}")
            continue
        if min(rgb.shape[:2]) < metrics.SSIM_WINDOW:
            reason = f"{rgb.shape[0]}x{rgb.shape[1]} pixels: too small to score (SSIM needs {metrics.SSIM_WINDOW}x{metrics.SSIM_WINDOW})"
            skipped.append((path, reason))
            log(f"skipped {path}: {reason}")
            continue
        yield path, rgb


def uniform_sample(recs, split, count, batch_size):
    """Batches of a uniform sample of ``count`` examples of a split (0: all): the first ``count / shards``
    examples of each shard (rounded up for the first ``count % shards`` of them). The builder orders a
    split by a hash of the key before cutting it into shards, so the head of a shard is as random a
    sample as any part of it, and only ``count`` records are read (not the whole split: 160 GB at
    ImageNet's size)."""
    paths = recs.shards(split)
    quotas = [count // len(paths) + (i < count % len(paths)) if count else -1 for i in range(len(paths))]  # -1: all
    ds = tf.data.Dataset.from_tensor_slices((paths, tf.constant(quotas, tf.int64)))
    ds = ds.flat_map(lambda path, quota: tf.data.TFRecordDataset(path).take(quota))
    for batch in ds.batch(batch_size).map(recs.parse):
        yield {name: value.numpy() for name, value in batch.items()}


def mean_ab(recs, batch_size, max_examples):
    """``(mean a*, b* (Lab units), examples read)`` over the photo pixels of a uniform sample of a train
    split (letterbox bars left out)."""
    total, count, examples = np.zeros(2), 0, 0
    for batch in uniform_sample(recs, "train", max_examples, batch_size):
        size = batch["ab"].shape[1]
        for ab, height, width in zip(batch["ab"], batch["height"], batch["width"]):
            top, left, h, w = content_box(height, width, size)
            total += colors.unscale_ab(ab[top : top + h, left : left + w]).sum(axis=(0, 1))
            count += h * w
            examples += 1
    return total / max(count, 1), examples


def photos_mean_ab(photos):
    """The mean a*, b* over all pixels of the photos themselves (the fallback baseline)."""
    total, count = np.zeros(2), 0
    for _, rgb in photos:
        total += colors.rgb_to_lab(rgb)[..., 1:].numpy().sum(axis=(0, 1))
        count += rgb.shape[0] * rgb.shape[1]
    return total / max(count, 1)


def content_box(height, width, size):
    """(top, left, new_height, new_width) of the photo inside its letterbox, as Python ints."""
    return tuple(int(v) for v in colors.letterbox_box(height, width, size))


# -- scoring -----------------------------------------------------------------------------------
def score_image(l, ab_true, predictions, original_rgb=None, rgbs=None):
    """Metrics of each method's ab (Lab units, (H, W, 2)) for one photo with L (H, W, 1).

    Each method's RGB is made as ``colorize`` makes it (L kept, chroma fitted to sRGB), unless
    ``rgbs[method]`` gives it (the model's output as ``colorize`` wrote it); ``original_rgb`` is the
    photo itself, by default rebuilt the same way from L and ``ab_true``.
    Returns ``(scores, rgbs, curves)``: ``scores[method][metric]`` plus ``scores["colorfulness_original"]``,
    the RGB images (original and per method) and the ab-error curves.
    """
    l = np.asarray(l, np.float32)
    given = dict(rgbs or {})
    to_convert = {name: ab for name, ab in predictions.items() if name not in given}
    if original_rgb is None:
        to_convert["original"] = ab_true
    rgbs = {name: inference.lab_to_rgb_keeping_luminance(l, np.asarray(ab, np.float32)).numpy() for name, ab in to_convert.items()}
    rgbs.update(given)
    if original_rgb is not None:
        rgbs["original"] = np.asarray(original_rgb)
    original_colorfulness = metrics.colorfulness(rgbs["original"])
    scores, curves = {"colorfulness_original": original_colorfulness}, {}
    for method, ab in predictions.items():
        curves[method] = metrics.ab_error_curve(ab, ab_true)
        colorfulness = metrics.colorfulness(rgbs[method])
        scores[method] = {
            "ab_mse": metrics.ab_mse(ab, ab_true),
            "psnr": metrics.psnr(rgbs[method], rgbs["original"]),
            "ssim": metrics.ssim(rgbs[method], rgbs["original"]),
            "colorfulness": colorfulness,
            "colorfulness_diff": abs(colorfulness - original_colorfulness),
            "auc": metrics.auc(curves[method]),
        }
    return scores, rgbs, curves


def record_examples(config, recs, predict_ab, model_dim):
    """Per image of ``recs`` (the opened ``config.records``) ``(key, height, width, L (h,w,1), ab_true,
    ab_model (h,w,2), None, None)`` in Lab units, photo part only."""
    data_dim = recs.embedding_dim
    if model_dim != data_dim:
        raise colorizer_module.ModelError(
            f"{config.model}: the colorizer expects {model_dim}-d embeddings but {config.records} holds {data_dim}-d ones"
        )
    for batch in record_batches(recs, config.split, config.batch_size, config.max_examples):
        # The colorizer sees L as colorize, serving and films show it: bars repeating the photo's edges, not white.
        shown = np.stack([colors.repeat_edges(l, h, w) for l, h, w in zip(batch["l"], batch["height"], batch["width"])])
        ab_model = np.asarray(predict_ab(shown, batch["embedding"]))  # (B, S, S, 2)
        size = batch["l"].shape[1]
        for i, key in enumerate(batch["key"]):
            top, left, h, w = content_box(batch["height"][i], batch["width"][i], size)
            crop = (slice(top, top + h), slice(left, left + w))
            l = colors.unscale_l(batch["l"][i][crop])  # (h, w, 1)
            ab_true = colors.unscale_ab(batch["ab"][i][crop])  # (h, w, 2)
            yield key, int(batch["height"][i]), int(batch["width"][i]), l, ab_true, colors.unscale_ab(ab_model[i][crop]), None, None


def photo_examples(colorizer, photos, batch_size):
    """Like :func:`record_examples` for ``(path, rgb)`` photos at their own size: the model's image is
    exactly what ``colorize`` writes (the same :class:`Colorizer` method, uint8), and its ab is read
    back from it; the last two items are the photo's own RGB and the model's RGB."""
    for key, rgb, colorized in colorizer.colorize_stream(photos, batch_size):
        if isinstance(colorized, Exception):
            raise colorized
        height, width = rgb.shape[:2]
        lab = colors.rgb_to_lab(rgb).numpy()  # (H, W, 3)
        model_rgb = colorized.numpy().astype(np.float32) / 255.0  # (H, W, 3): the pixels colorize writes
        ab_model = colors.rgb_to_lab(model_rgb).numpy()[..., 1:]  # (H, W, 2)
        yield key, height, width, lab[..., :1], lab[..., 1:], ab_model, np.asarray(rgb), model_rgb


def evaluate(config, inception=None, log=print, colorizer=None):
    """Score the model and both baselines on the configured images; write and return the report.

    ``inception``: an already built embedder for ``images`` (default: built from the run's weights);
    ``colorizer``: an already loaded :class:`~koalarization.model.colorizer.Colorizer` for ``images``.
    The output folder is checked before any model is loaded (:class:`safeio.OutputPathError`). A
    damaged record in any records read is a :class:`records.RecordsError` (status 5) naming the shard.
    """
    read = []  # the Records read, for naming a damaged shard
    try:
        return _evaluate(config, inception, log, colorizer, read)
    except tf.errors.DataLossError as error:
        from koalarization.train import loop

        raise records.RecordsError(loop.damaged_records_message(read, error, first_split=config.split)) from None


def _evaluate(config, inception, log, colorizer, read):
    safeio.check_output_dir(config.out_dir, [p for p in (config.records, *config.images) if p and os.path.isdir(p)])
    if colorizer is None:
        colorizer_module.resolve_model(config.model)  # a missing --model is said before any input is read
    skipped = []
    if config.records:
        recs = Records(config.records)
        read.append(recs)
        colorizer = colorizer_module.Colorizer.load(config.model, working_size=recs.image_size, embedder=False, precision=config.precision)
        run_config = colorizer.config
        total = recs.num_examples(config.split)
        examples = record_examples(config, recs, colorizer.predict_embedded, colorizer.embedding_dim)
        source = {"records": os.path.abspath(config.records), "split": config.split}
    else:
        paths = images.find_images(config.images)
        paths = paths[: config.max_examples] if config.max_examples else paths
        if not paths:
            raise FileNotFoundError(f"{' '.join(config.images)}: no image files found")
        total = len(paths)
        colorizer = colorizer or colorizer_module.Colorizer.load(
            config.model, inception, config.inception_weights, config.working_size, log, precision=config.precision
        )
        run_config = colorizer.config
        examples = photo_examples(colorizer, readable_photos(paths, config.max_side, skipped, log), config.batch_size)
        source = {"images": [os.path.abspath(p) for p in paths], "working_size": colorizer.working_size, "max_side": config.max_side}
    if config.max_examples:
        total = min(total, config.max_examples)

    # The mean-ab baseline: a training split when there is one, else the evaluated photos themselves.
    mean_source = config.mean_ab_records or config.records or trained_on_records(run_config)
    mean_recs = next((r for r in read if r.path == mean_source), None) or (Records(mean_source) if mean_source else None)
    n_train = mean_recs.num_examples("train") if mean_recs else 0
    if mean_recs and mean_recs not in read:
        read.append(mean_recs)
    if n_train:
        mean, used = mean_ab(mean_recs, config.batch_size, config.mean_ab_examples)
        mean_info = f"train split of {mean_source} ({used} of {n_train} images, a uniform sample)"
    elif config.records:
        raise ValueError(f"{mean_source}: no train split for the mean-ab baseline; pass --mean-ab-records DIR")
    else:
        mean = photos_mean_ab(readable_photos(paths, config.max_side, [], log=lambda _: None))
        mean_info = "the evaluated images themselves (no training records found; pass --mean-ab-records)"
    log(f"mean-ab baseline: a={mean[0]:.2f} b={mean[1]:.2f}, from {mean_info}")
    seen_in_training, unknown_why = training_keys(run_config, config.records and (config.records, config.split))

    per_image, curve_sums = [], {m: np.zeros_like(metrics.AUC_THRESHOLDS) for m in METHODS}
    best, worst = [], []  # heaps of (±ab_mse, index, images) for the grid
    with tqdm(total=total, desc="evaluate", unit="img", file=sys.stderr, disable=None) as progress:
        for key, height, width, l, ab_true, ab_model, original, model_rgb in examples:
            predictions = {"model": ab_model, "gray": np.zeros_like(ab_true), "mean_ab": np.broadcast_to(mean, ab_true.shape)}
            given = {"model": model_rgb} if model_rgb is not None else None
            scores, rgbs, curves = score_image(l, ab_true, predictions, original, given)
            gray = bool(colors.is_grayscale(np.concatenate([l, ab_true], axis=-1)))
            if not gray:
                for method in METHODS:
                    curve_sums[method] += curves[method]
            index = len(per_image)
            entry = {"key": key, "height": height, "width": width, "gray_original": gray, **scores}
            if seen_in_training is not None:
                entry["seen_in_training"] = os.path.basename(str(key)) in seen_in_training
            per_image.append(entry)
            if not gray:
                shown = {"key": key, "ab_mse": scores["model"]["ab_mse"], "model": rgbs["model"], "original": rgbs["original"]}
                _keep(best, (-shown["ab_mse"], index, shown), config.grid_rows)
                _keep(worst, (shown["ab_mse"], index, shown), config.grid_rows)
            progress.update(1)
    if not per_image:
        raise ValueError("no images were evaluated" + (f" ({len(skipped)} skipped: {skipped[0][0]}: {skipped[0][1]})" if skipped else ""))

    colour = [img for img in per_image if not img["gray_original"]]
    gray_ones = [img for img in per_image if img["gray_original"]]
    report = {
        "model": os.path.abspath(config.model),
        "source": source,
        "precision": colorizer.precision,
        "examples": len(per_image),
        "colour_originals": len(colour),
        "gray_originals": len(gray_ones),
        "skipped": [{"key": key, "reason": reason} for key, reason in skipped],
        "mean_ab": {"a": float(mean[0]), "b": float(mean[1]), "from": mean_info},
        "auc_thresholds": [0, 150],
        "psnr_cap_db": metrics.PSNR_CAP_DB,
        "mean": _means(colour),
        "mean_gray_originals": _means(gray_ones),
        "colorfulness_original": float(np.mean([img["colorfulness_original"] for img in colour])) if colour else float("nan"),
        "images": per_image,
        "config": dataclasses.asdict(config),
    }
    if seen_in_training is not None:
        report["seen_in_training"] = sum(img["seen_in_training"] for img in per_image)
    elif unknown_why:
        report["seen_in_training"] = None
        report["seen_in_training_unknown"] = unknown_why
        log(f"warning: {unknown_why}")
    if config.records and colorizer.takes_hints:  # the hints variant: quality against the number of hints
        from koalarization.evaluate import hintsweep

        report["hints"] = hintsweep.sweep(config, recs, colorizer, log)
    write_report(report, {m: s / max(len(colour), 1) for m, s in curve_sums.items()}, best, worst, config.out_dir)
    if "hints" in report:
        hintsweep.write(report["hints"], config.out_dir)
    return report


def _means(images_scored):
    if not images_scored:
        return None
    return {method: {name: float(np.mean([img[method][name] for img in images_scored])) for name in METRICS} for method in METHODS}


def _keep(heap, item, k):
    """Keep the ``k`` largest items of ``heap`` by their first two fields."""
    if len(heap) < k:
        heapq.heappush(heap, item)
    elif item[:2] > heap[0][:2]:
        heapq.heapreplace(heap, item)


# -- outputs -----------------------------------------------------------------------------------
def markdown_table(report):
    """The mean metrics of each method as a markdown table, with what each column means."""
    header = "| method | ab MSE ↓ | PSNR (dB) ↑ | SSIM ↑ | colorfulness | \\|Δ colorfulness\\| ↓ | AuC ↑ |"
    lines = [header, "|---|---:|---:|---:|---:|---:|---:|"]
    for method in METHODS:
        m = (report["mean"] or {}).get(method)
        if m is None:
            lines.append(f"| {plots.METHOD_LABELS[method]} | – | – | – | – | – | – |")
            continue
        lines.append(
            f"| {plots.METHOD_LABELS[method]} | {m['ab_mse']:.5f} | {m['psnr']:.2f} | {m['ssim']:.4f} | "
            f"{m['colorfulness']:.2f} | {m['colorfulness_diff']:.2f} | {m['auc']:.4f} |"
        )
    gray = report.get("gray_originals", 0)
    skipped = report.get("skipped") or []
    notes = [
        f"{report.get('colour_originals', report['examples'])} colour images; original colorfulness "
        f"{report['colorfulness_original']:.2f}. Mean ab baseline a={report['mean_ab']['a']:.2f}, "
        f"b={report['mean_ab']['b']:.2f} (from {report['mean_ab']['from']})."
    ]
    if gray:
        m = report["mean_gray_originals"]["model"]
        notes.append(
            f"{gray} gray original(s) scored apart, not in the table (their PSNR only says how gray the output "
            f"stays): model ab MSE {m['ab_mse']:.5f}, colorfulness {m['colorfulness']:.2f}."
        )
    if skipped:
        shown = "; ".join(f"{os.path.basename(str(s['key']))}: {s['reason']}" for s in skipped[:5])
        notes.append(f"{len(skipped)} image(s) skipped: {shown}{' ...' if len(skipped) > 5 else ''}.")
    if report.get("seen_in_training_unknown"):
        notes.append(f"Seen in training: unknown: {report['seen_in_training_unknown']}.")
    elif "seen_in_training" in report:
        seen = report["seen_in_training"]
        notes.append(
            f"{seen} of {report['examples']} images were in the training split (per image: `seen_in_training` in "
            "metrics.json)" + (": those scores measure fit, not generalisation." if seen else ".")
        )
    lines += [
        "",
        " ".join(notes),
        "ab MSE on ab/127 as the training loss; PSNR/SSIM of RGB in [0, 1] against the original "
        f"(PSNR capped at {metrics.PSNR_CAP_DB:g} dB); colorfulness of Hasler & Süsstrunk (2003); "
        "AuC of the cumulative ab error over 0-150 (Zhang et al. 2016). "
        + (
            "Records at their working size, letterbox bars excluded."
            if "records" in report["source"]
            else "Photos at their own size"
            + (f" (longer side at most {report['source']['max_side']})" if report["source"].get("max_side") else "")
            + ", exactly as `colorize` writes them."
        ),
    ]
    return "\n".join(lines) + "\n"


def write_report(report, curves, best, worst, out_dir):
    os.makedirs(out_dir, exist_ok=True)
    safeio.write_text(os.path.join(out_dir, "metrics.json"), json.dumps(report, indent=2, default=str) + "\n")
    safeio.write_text(os.path.join(out_dir, "metrics.md"), markdown_table(report))
    if report["mean"] is None:  # only gray originals: no curves or grid to draw
        return
    aucs = {m: report["mean"][m]["auc"] for m in METHODS}
    with safeio.atomic_path(os.path.join(out_dir, "ab_error_cdf.png")) as tmp:
        plots.ab_error_cdf(metrics.AUC_THRESHOLDS, curves, aucs).savefig(tmp, format="png")
    best = sorted(best, reverse=True)[: max(1, (report["colour_originals"] + 1) // 2)]  # lowest ab MSE first
    shown = {index for _, index, _ in best}
    worst = [entry for entry in sorted(worst, reverse=True) if entry[1] not in shown]  # highest first
    best_items, worst_items = [item for *_, item in best], [item for *_, item in worst]
    plots.best_worst_grid(best_items, worst_items, os.path.join(out_dir, "best_worst.png"))


def run(config, inception=None):
    """The command ``python -m koalarization.evaluate``: print ``config`` as JSON, evaluate, write the report."""
    print(json.dumps(dataclasses.asdict(config)))
    try:
        with safeio.removed_if_left_empty(config.out_dir):
            safeio.check_output_dir(config.out_dir)  # before any model
            report = evaluate(config, inception=inception)
    except KeyboardInterrupt:
        raise errors.Interrupted("interrupted: no report written (a report is written whole at the end); run the command again") from None
    print(markdown_table(report))
    extra = ", hints.json, hints.md, hints.png" if "hints" in report else ""
    print(f"wrote metrics.json, metrics.md, ab_error_cdf.png, best_worst.png{extra} to {config.out_dir}")
    return 0


main = cli.command(EvaluateConfig, run)  # for callers that have TensorFlow already; the command parses first
