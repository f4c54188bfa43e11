"""Evaluate a trained colorizer beside two baselines: metrics, a markdown table and plots.

    python -m koalarization.evaluate --model runs/smoke --records records/ --split val -o out/eval
    python -m koalarization.evaluate --model runs/smoke --images photos/ -o out/eval-photos

Three methods are scored on the same images: the ``model``, ``gray`` (ab = 0, the gray image
itself) and ``mean_ab`` (every pixel gets the training set's mean a*, b*). Per image and on
average: ab MSE (scaled as the loss), PSNR and SSIM of the RGB result against the original,
colorfulness and its absolute difference from the original's, and the AuC of the cumulative
ab-error curve over 0-150 (see :mod:`koalarization.metrics`).

With ``--records`` the photos are the records' letterboxed L/ab pairs (and their stored
embeddings), scored at that resolution on the photo only: the white letterbox bars are cropped
away first, since every method gets them right for free. With ``--images`` each file is colorized
as ``python -m koalarization.colorize`` does it (network at the working size, chroma upsampled
onto the full-resolution luminance) and scored at its own resolution, shrunk to ``--max-side``.

Writes to ``-o``: ``metrics.json`` (per image and mean per method), ``metrics.md`` (the table),
``ab_error_cdf.png`` (the curves of the three methods) and ``best_worst.png`` (gray | model |
original for the best and worst images by model ab MSE).
"""

import argparse
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

from koalarization import colorize, colors, data, embedding, images, inference, metrics, plots, records

METHODS = ("model", "gray", "mean_ab")
METRICS = ("ab_mse", "psnr", "ssim", "colorfulness", "colorfulness_diff", "auc")


@dataclasses.dataclass(frozen=True)
class EvaluateConfig:
    model: str  # run dir, .keras file or SavedModel dir
    out_dir: str
    records: str | None = None  # records dir to evaluate (with split) ...
    split: str = "val"
    images: tuple[str, ...] = ()  # ... or image files / folders / globs
    batch_size: int = 16
    max_examples: int = 0  # 0 = all
    max_side: int = 1024  # --images: larger photos are shrunk to this longer side before scoring
    working_size: int | None = None  # --images: network size; default: the training image size
    inception_weights: str | None = None  # --images: imagenet | random | PATH; default: as in training
    mean_ab_records: str | None = None  # records whose train split gives the mean-ab baseline
    mean_ab_examples: int = 2000  # how many training examples to average for it (0 = all)
    grid_rows: int = 3  # best and worst images shown in best_worst.png (each)
    verbose: bool = False


# -- the model ---------------------------------------------------------------------------------
def load_predictor(model_path):
    """``(predict_ab, embedding_dim, run_config)`` for a run dir, ``.keras`` file or SavedModel.

    ``predict_ab(l (B,S,S,1), embedding (B,D)) -> ab (B,S,S,2)``, both scaled as in training.
    """
    kind, path, run_config = inference.resolve_model(model_path)
    if kind == "saved_model":
        signature = tf.saved_model.load(path).signatures.get("colorize_lab")
        if signature is None:
            raise inference.ModelError(f"{path}: SavedModel lacks the 'colorize_lab' signature; re-export it")
        dim = int(signature.structured_input_signature[1]["embedding"].shape[-1])
        return (lambda l, e: signature(l=tf.constant(l), embedding=tf.constant(e))["ab"]), dim, run_config
    colorizer = inference.load_colorizer(path)
    return (lambda l, e: colorizer.predict_on_batch({"l": l, "embedding": e})), inference.embedding_dim_of(colorizer), run_config


def trained_on_records(run_config):
    """The records dir a run was trained on, when its config says so and it is still there."""
    path = ((run_config or {}).get("config") or {}).get("records")
    return path if isinstance(path, str) and os.path.isfile(os.path.join(path, records.MANIFEST_NAME)) else None


# -- inputs: batches of {"key", "height", "width", "l", "ab" (scaled), "embedding" or "rgb"} ------
def record_batches(records_dir, split, batch_size, max_examples=0):
    """The records' letterboxed L/ab pairs and their stored embeddings."""
    ds = data.load_dataset(records_dir, split, batch_size, shuffle=False, with_keys=True)
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


def read_photo(path, max_side):
    """sRGB (H, W, 3) of an image file, shrunk so that its longer side is at most ``max_side``."""
    rgb = images.read_image(path)
    scale = max_side / max(rgb.shape[:2])
    if scale < 1:
        size = [max(1, round(rgb.shape[0] * scale)), max(1, round(rgb.shape[1] * scale))]
        rgb = tf.clip_by_value(tf.image.resize(rgb, size, antialias=True), 0.0, 1.0).numpy()
    return rgb


def photo_batches(paths, batch_size, max_side, log=print):
    """Image files in batches of ``{"key", "rgb": [(H, W, 3), ...]}``; unreadable files are logged and skipped."""
    for start in range(0, len(paths), batch_size):
        batch = {"key": [], "rgb": []}
        for path in paths[start : start + batch_size]:
            try:
                batch["rgb"].append(read_photo(path, max_side))
                batch["key"].append(path)
            except images.ImageError as error:
                log(f"skipped {error}")
        if batch["key"]:
            yield batch


def mean_ab(records_dir, batch_size, max_examples):
    """The mean a*, b* (Lab units) over the photo pixels of a train split (letterbox bars left out)."""
    total, count = np.zeros(2), 0
    for batch in record_batches(records_dir, "train", batch_size, max_examples):
        size = batch["ab"].shape[1]
        for ab, height, width in zip(batch["ab"], batch["height"], batch["width"]):
            top, left, h, w = content_box(height, width, size)
            total += colors.unscale_ab(ab[top : top + h, left : left + w]).sum(axis=(0, 1))
            count += h * w
    return total / max(count, 1)


def photos_mean_ab(paths, max_side):
    """The mean a*, b* over all pixels of the photos themselves (the fallback baseline)."""
    total, count = np.zeros(2), 0
    for batch in photo_batches(paths, 8, max_side, log=lambda _: None):
        for rgb in batch["rgb"]:
            total += colors.rgb_to_lab(rgb)[..., 1:].numpy().sum(axis=(0, 1))
            count += rgb.shape[0] * rgb.shape[1]
    return total / max(count, 1)


def content_box(height, width, size):
    """(top, left, new_height, new_width) of the photo inside its letterbox, as Python ints."""
    return tuple(int(v) for v in colors.letterbox_box(height, width, size))


# -- scoring -----------------------------------------------------------------------------------
def score_image(l, ab_true, predictions, original_rgb=None):
    """Metrics of each method's ab (Lab units, (H, W, 2)) for one photo with L (H, W, 1).

    Each method's RGB is made as ``colorize`` makes it (L kept, chroma fitted to sRGB);
    ``original_rgb`` is the photo itself, by default rebuilt the same way from L and ``ab_true``.
    Returns ``(scores, rgbs, curves)``: ``scores[method][metric]`` plus ``scores["colorfulness_original"]``,
    the RGB images (original and per method) and the ab-error curves.
    """
    l = np.asarray(l, np.float32)
    to_convert = predictions if original_rgb is not None else {"original": ab_true, **predictions}
    rgbs = {
        name: inference.lab_to_rgb_keeping_luminance(l, np.asarray(ab, np.float32)).numpy()  # (H, W, 3)
        for name, ab in to_convert.items()
    }
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


def record_examples(config, predict_ab, model_dim):
    """Per image ``(key, height, width, L (h,w,1), ab_true, ab_model (h,w,2), None)`` in Lab units, photo part only."""
    data_dim = records.embedding_dim(records.read_manifest(config.records))
    if model_dim != data_dim:
        raise inference.ModelError(
            f"{config.model}: the colorizer expects {model_dim}-d embeddings but {config.records} holds {data_dim}-d ones"
        )
    for batch in record_batches(config.records, config.split, config.batch_size, config.max_examples):
        ab_model = np.asarray(predict_ab(batch["l"], batch["embedding"]))  # (B, S, S, 2)
        size = batch["l"].shape[1]
        for i, key in enumerate(batch["key"]):
            top, left, h, w = content_box(batch["height"][i], batch["width"][i], size)
            crop = (slice(top, top + h), slice(left, left + w))
            l = colors.unscale_l(batch["l"][i][crop])  # (h, w, 1)
            ab_true = colors.unscale_ab(batch["ab"][i][crop])  # (h, w, 2)
            yield key, int(batch["height"][i]), int(batch["width"][i]), l, ab_true, colors.unscale_ab(ab_model[i][crop]), None


def photo_examples(config, paths, predict_ab, embed, working_size, log=print):
    """Like :func:`record_examples` for image files, at their own resolution, by the method of
    ``colorize`` (network at ``working_size``, chroma upsampled onto the full-resolution L); the
    last item is the photo's own RGB, the original to compare with."""
    for batch in photo_batches(paths, config.batch_size, config.max_side, log):
        pairs = [inference.network_inputs(rgb, working_size) for rgb in batch["rgb"]]
        embeddings = embed(tf.stack([p[1] for p in pairs]))  # (B, D)
        ab_model = predict_ab(tf.stack([p[0] for p in pairs]), embeddings)  # (B, S, S, 2)
        for key, rgb, ab in zip(batch["key"], batch["rgb"], ab_model):
            height, width = rgb.shape[:2]
            lab = colors.rgb_to_lab(rgb).numpy()  # (H, W, 3)
            ab_full = colors.unscale_ab(colors.unletterbox(ab, height, width, working_size)).numpy()  # (H, W, 2)
            yield key, height, width, lab[..., :1], lab[..., 1:], ab_full, rgb


def evaluate(config, inception=None, log=print):
    """Score the model and both baselines on the configured images; write and return the report.

    ``inception``: an already built embedder for ``images`` (default: built from the run's weights).
    """
    if config.records:
        predict_ab, model_dim, run_config = load_predictor(config.model)
        total = data.num_examples(config.records, config.split)
        examples = record_examples(config, predict_ab, model_dim)
        source = {"records": os.path.abspath(config.records), "split": config.split}
    else:
        paths = images.find_images(config.images)
        paths = paths[: config.max_examples] if config.max_examples else paths
        if not paths:
            raise FileNotFoundError(f"{' '.join(config.images)}: no image files found")
        total = len(paths)
        run_config = inference.resolve_model(config.model)[2]
        settings = colorize.ColorizeConfig(
            inputs=(), out_dir=config.out_dir, model=config.model,
            working_size=config.working_size, inception_weights=config.inception_weights,
        )  # fmt: skip
        predict_ab, embed, working_size = colorize.load_model(settings, inception, log)
        examples = photo_examples(config, paths, predict_ab, embed, working_size, log)
        source = {"images": [os.path.abspath(p) for p in paths], "working_size": working_size, "max_side": config.max_side}
    if config.max_examples:
        total = min(total, config.max_examples)

    # The mean-ab baseline: a training split when there is one, else the evaluated photos themselves.
    mean_source = config.mean_ab_records or config.records or trained_on_records(run_config)
    n_train = data.num_examples(mean_source, "train") if mean_source else 0
    if n_train:
        mean = mean_ab(mean_source, config.batch_size, config.mean_ab_examples)
        mean_info = f"train split of {mean_source} ({min(n_train, config.mean_ab_examples or n_train)} images)"
    elif config.records:
        raise ValueError(f"{mean_source}: no train split for the mean-ab baseline; pass --mean-ab-records DIR")
    else:
        mean = photos_mean_ab(paths, config.max_side)
        mean_info = "the evaluated images themselves (no training records found; pass --mean-ab-records)"
    log(f"mean-ab baseline: a={mean[0]:.2f} b={mean[1]:.2f}, from {mean_info}")

    per_image, curve_sums = [], {m: np.zeros_like(metrics.AUC_THRESHOLDS) for m in METHODS}
    best, worst = [], []  # heaps of (±ab_mse, index, images) for the grid
    with tqdm(total=total, desc="evaluate", unit="img", file=sys.stderr, disable=None) as progress:
        for key, height, width, l, ab_true, ab_model, original in examples:
            predictions = {"model": ab_model, "gray": np.zeros_like(ab_true), "mean_ab": np.broadcast_to(mean, ab_true.shape)}
            scores, rgbs, curves = score_image(l, ab_true, predictions, original)
            for method in METHODS:
                curve_sums[method] += curves[method]
            index = len(per_image)
            per_image.append({"key": key, "height": height, "width": width, **scores})
            shown = {"key": key, "ab_mse": scores["model"]["ab_mse"], **{k: rgbs[k] for k in ("gray", "model", "original")}}
            _keep(best, (-shown["ab_mse"], index, shown), config.grid_rows)
            _keep(worst, (shown["ab_mse"], index, shown), config.grid_rows)
            progress.update(1)
    if not per_image:
        raise ValueError("no images were evaluated")

    report = {
        "model": os.path.abspath(config.model),
        "source": source,
        "examples": len(per_image),
        "mean_ab": {"a": float(mean[0]), "b": float(mean[1]), "from": mean_info},
        "auc_thresholds": [0, 150],
        "psnr_cap_db": metrics.PSNR_CAP_DB,
        "mean": {
            method: {name: float(np.mean([img[method][name] for img in per_image])) for name in METRICS}
            for method in METHODS
        },
        "colorfulness_original": float(np.mean([img["colorfulness_original"] for img in per_image])),
        "images": per_image,
        "config": dataclasses.asdict(config),
    }
    write_report(report, {m: s / len(per_image) for m, s in curve_sums.items()}, best, worst, config.out_dir)
    return report


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
        m = report["mean"][method]
        lines.append(
            f"| {plots.METHOD_LABELS[method]} | {m['ab_mse']:.5f} | {m['psnr']:.2f} | {m['ssim']:.4f} | "
            f"{m['colorfulness']:.2f} | {m['colorfulness_diff']:.2f} | {m['auc']:.4f} |"
        )
    lines += [
        "",
        f"{report['examples']} images; original colorfulness {report['colorfulness_original']:.2f}. "
        f"Mean ab baseline a={report['mean_ab']['a']:.2f}, b={report['mean_ab']['b']:.2f} "
        f"(from {report['mean_ab']['from']}).",
        "ab MSE on ab/127 as the training loss; PSNR/SSIM of RGB in [0, 1] against the original "
        f"(PSNR capped at {metrics.PSNR_CAP_DB:g} dB); colorfulness of Hasler & Süsstrunk (2003); "
        "AuC of the cumulative ab error over 0-150 (Zhang et al. 2016). "
        + (
            "Records at their working size, letterbox bars excluded."
            if "records" in report["source"]
            else "Photos at their own size (longer side at most "
            f"{report['source']['max_side']}), colorized as `colorize` does."
        ),
    ]
    return "\n".join(lines) + "\n"


def write_report(report, curves, best, worst, out_dir):
    os.makedirs(out_dir, exist_ok=True)
    records.write_json_atomic(os.path.join(out_dir, "metrics.json"), report)
    with open(os.path.join(out_dir, "metrics.md"), "w") as f:
        f.write(markdown_table(report))
    aucs = {m: report["mean"][m]["auc"] for m in METHODS}
    plots.ab_error_cdf(metrics.AUC_THRESHOLDS, curves, aucs, os.path.join(out_dir, "ab_error_cdf.png"))
    best = sorted(best, reverse=True)[: max(1, (report["examples"] + 1) // 2)]  # lowest ab MSE first
    shown = {index for _, index, _ in best}
    worst = [entry for entry in sorted(worst, reverse=True) if entry[1] not in shown]  # highest first
    best_items, worst_items = [item for *_, item in best], [item for *_, item in worst]
    plots.best_worst_grid(best_items, worst_items, os.path.join(out_dir, "best_worst.png"))


# -- command line ------------------------------------------------------------------------------
def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m koalarization.evaluate",
        description="Score a colorizer against the gray and mean-ab baselines; write metrics.json, "
        "metrics.md, ab_error_cdf.png and best_worst.png to --out-dir.",
    )
    parser.add_argument("--model", required=True, help="run dir (model.keras + config.json), .keras file or exported SavedModel dir")
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--records", help="records dir (from python -m tfrecords_builder) to evaluate, with --split")
    what.add_argument(
        "--images", nargs="+", metavar="INPUT",
        help="image files, folders (recursive) or globs to evaluate at their own resolution, as colorize sees them",
    )
    parser.add_argument("-o", "--out-dir", required=True, help="where to write the metrics and plots (created if needed)")
    parser.add_argument("--split", default="val", help="records split to evaluate (default: val)")
    parser.add_argument("--batch-size", type=int, default=16, help="images per network call (default: 16)")
    parser.add_argument("--max-examples", type=int, default=0, help="evaluate at most this many images (default 0: all)")
    parser.add_argument(
        "--max-side", type=int, default=1024,
        help="--images: photos with a longer side are shrunk to it before scoring (default: 1024)",
    )
    parser.add_argument(
        "--working-size", type=int,
        help="--images: square size (multiple of 8) the network runs at (default: the training image size, else 224)",
    )
    parser.add_argument(
        "--inception-weights",
        help="--images with a run dir or .keras file: Inception-ResNet-v2 weights, imagenet, random or a "
        "weights file (default: the weights recorded in the run's config, else imagenet)",
    )
    parser.add_argument(
        "--mean-ab-records",
        help="records dir whose train split gives the mean-ab baseline (default: --records, or the records "
        "the run was trained on; failing both, with --images, the evaluated photos' own mean, reported as such)",
    )
    parser.add_argument(
        "--mean-ab-examples", type=int, default=2000,
        help="training examples averaged for the mean-ab baseline (0 = all; default: 2000)",
    )
    parser.add_argument("--grid-rows", type=int, default=3, help="best and worst images in best_worst.png, each (default: 3)")
    parser.add_argument("--verbose", action="store_true", help="show TensorFlow's start-up logs")
    args = parser.parse_args(argv)
    if min(args.batch_size, args.grid_rows, args.max_side) < 1 or min(args.max_examples, args.mean_ab_examples) < 0:
        parser.error("--batch-size, --grid-rows and --max-side must be >= 1; --max-examples and --mean-ab-examples >= 0")
    if args.working_size is not None and (args.working_size < 8 or args.working_size % 8):
        parser.error(f"--working-size must be a positive multiple of 8, got {args.working_size}")
    if args.images and args.split != "val":
        parser.error("--split only applies to --records")
    fields = vars(args)
    return EvaluateConfig(**{**fields, "images": tuple(fields["images"] or ())})


def main(argv=None):
    config = parse_args(argv)
    print(json.dumps(dataclasses.asdict(config)))
    try:
        report = evaluate(config)
    except (inference.ModelError, embedding.WeightsUnavailableError, FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(markdown_table(report))
    print(f"wrote metrics.json, metrics.md, ab_error_cdf.png, best_worst.png to {config.out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
