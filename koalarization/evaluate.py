"""Evaluate a trained colorizer beside two baselines: metrics, a markdown table and plots.

    python -m koalarization.evaluate --model runs/smoke --records records/ --split val -o out/eval
    python -m koalarization.evaluate --model runs/smoke/model.keras --images photos/ -o out/eval

Three methods are scored on the same images: the ``model``, ``gray`` (ab = 0, the gray image
itself) and ``mean_ab`` (every pixel gets the training set's mean a*, b*). Per image and on
average: ab MSE (scaled as the loss), PSNR and SSIM of the RGB result against the original,
colorfulness and its absolute difference from the original's, and the AuC of the cumulative
ab-error curve over 0-150 (see :mod:`koalarization.metrics`).

Images are scored at the working resolution (letterboxed, 224 by default), on the photo only: the
white letterbox bars are cropped away first, since every method gets them right for free. With
``--records`` the L/ab pairs and embeddings come from the records; with ``--images`` the files are
letterboxed here and the embedding is computed with Inception-ResNet-v2 (``--inception-weights``).

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

import keras
import numpy as np
from tqdm import tqdm

from koalarization import colors, data, embedding, images, metrics, model, plots, records  # noqa: F401 (model registers FusionLayer)

METHODS = ("model", "gray", "mean_ab")
METRICS = ("ab_mse", "psnr", "ssim", "colorfulness", "colorfulness_diff", "auc")


@dataclasses.dataclass(frozen=True)
class EvaluateConfig:
    model: str  # a .keras file, or a run dir holding model.keras
    out_dir: str
    records: str | None = None  # records dir to evaluate (with split) ...
    split: str = "val"
    images: tuple[str, ...] = ()  # ... or image files / folders / globs
    batch_size: int = 16
    max_examples: int = 0  # 0 = all
    image_size: int = colors.IMAGE_SIZE  # working resolution for --images (records carry their own)
    inception_weights: str = "imagenet"  # for --images: imagenet | random | PATH
    mean_ab_records: str | None = None  # records whose train split gives the mean-ab baseline
    mean_ab_examples: int = 2000  # how many training examples to average for it
    grid_rows: int = 3  # best and worst images shown in best_worst.png (each)
    verbose: bool = False


# -- inputs ------------------------------------------------------------------------------------
def load_colorizer(path):
    """A trained colorizer from a ``.keras`` file or a run dir with ``model.keras``."""
    if os.path.isdir(path):
        path = os.path.join(path, "model.keras")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such model file (pass a .keras file or a run dir with model.keras)")
    try:
        return keras.saving.load_model(path, compile=False)  # FusionLayer is registered by model's import
    except (ValueError, OSError) as error:
        raise ValueError(f"{path}: cannot load the model: {error}") from None


def record_batches(records_dir, split, batch_size, max_examples=0):
    """Batches of dicts with scaled ``l``, ``ab``, ``embedding`` and ``key``, ``height``, ``width``."""
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


def image_batches(paths, batch_size, size, inception=None, log=print):
    """Like :func:`record_batches` for image files; the embedding is computed when ``inception`` is given.

    Unreadable files are reported through ``log`` and skipped.
    """
    for start in range(0, len(paths), batch_size):
        labs, inception_inputs, keys, heights, widths = [], [], [], [], []
        for path in paths[start : start + batch_size]:
            try:
                rgb = images.read_image(path)
            except images.ImageError as error:
                log(f"skipped {error}")
                continue
            labs.append(colors.prepare_lab(rgb, size).numpy())  # (S, S, 3)
            if inception is not None:
                inception_inputs.append(colors.inception_input(rgb).numpy())  # (299, 299, 3)
            keys.append(path)
            heights.append(rgb.shape[0])
            widths.append(rgb.shape[1])
        if not keys:
            continue
        lab = np.stack(labs)  # (B, S, S, 3)
        batch = {
            "key": keys,
            "height": np.array(heights),
            "width": np.array(widths),
            "l": colors.scale_l(lab[..., :1]),
            "ab": colors.scale_ab(lab[..., 1:]),
        }
        if inception is not None:
            batch["embedding"] = inception.predict_on_batch(np.stack(inception_inputs))  # (B, 1000)
        yield batch


def content_box(height, width, size):
    """(top, left, new_height, new_width) of the photo inside its letterbox, as Python ints."""
    return tuple(int(v) for v in colors.letterbox_box(height, width, size))


def mean_ab(batches):
    """The mean a*, b* (Lab units) over the photo pixels of ``batches`` (letterbox bars left out)."""
    total, count = np.zeros(2), 0
    for batch in batches:
        size = batch["ab"].shape[1]
        for ab, height, width in zip(batch["ab"], batch["height"], batch["width"]):
            top, left, h, w = content_box(height, width, size)
            total += colors.unscale_ab(ab[top : top + h, left : left + w]).sum(axis=(0, 1))
            count += h * w
    if count == 0:
        raise ValueError("no images to compute the mean ab from")
    return total / count


# -- scoring -----------------------------------------------------------------------------------
def score_image(l, ab_true, predictions):
    """Metrics of each method's ab (Lab units, (H, W, 2)) for one photo with L (H, W, 1).

    Returns ``(scores, rgbs, curves)``: ``scores[method][metric]`` plus ``scores["colorfulness_original"]``,
    the RGB images (original and per method) and the ab-error curves.
    """
    names = ["original", *predictions]
    lab = np.stack([np.concatenate([l, ab], axis=-1) for ab in [ab_true, *predictions.values()]])
    rgbs = dict(zip(names, colors.lab_to_rgb(lab).numpy()))  # each (H, W, 3)
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


def evaluate(config, log=print):
    """Score the model and both baselines on the configured images; write and return the report."""
    colorizer = load_colorizer(config.model)
    model_dim = colorizer.input["embedding"].shape[-1] if isinstance(colorizer.input, dict) else None

    if config.records:
        manifest = records.read_manifest(config.records)
        data_dim = records.embedding_dim(manifest)
        total = data.num_examples(config.records, config.split)
        batches = record_batches(config.records, config.split, config.batch_size, config.max_examples)
        source = {"records": os.path.abspath(config.records), "split": config.split}
    else:
        paths = images.find_images(config.images)
        paths = paths[: config.max_examples] if config.max_examples else paths
        if not paths:
            raise FileNotFoundError(f"{' '.join(config.images)}: no image files found")
        data_dim = embedding.EMBEDDING_DIM
        total = len(paths)
        source = {"images": [os.path.abspath(p) for p in paths], "inception_weights": config.inception_weights}
    if model_dim is not None and model_dim != data_dim:
        raise ValueError(
            f"{config.model}: the model takes {model_dim}-d embeddings but the data has {data_dim}-d ones"
        )
    if config.max_examples:
        total = min(total, config.max_examples)

    # The mean-ab baseline: a training split when there is one, else the evaluated images themselves.
    mean_source = config.mean_ab_records or config.records
    if mean_source and data.num_examples(mean_source, "train") > 0:
        mean = mean_ab(record_batches(mean_source, "train", config.batch_size, config.mean_ab_examples))
        n_mean = min(data.num_examples(mean_source, "train"), config.mean_ab_examples or sys.maxsize)
        mean_info = f"train split of {mean_source} ({n_mean} images)"
    else:
        evaluated = (
            record_batches(config.records, config.split, config.batch_size, config.max_examples)
            if config.records
            else image_batches(paths, config.batch_size, config.image_size, log=lambda _: None)
        )
        mean = mean_ab(evaluated)
        mean_info = "the evaluated images themselves (no training records given)"
    log(f"mean-ab baseline: a={mean[0]:.2f} b={mean[1]:.2f}, from {mean_info}")

    if not config.records:
        inception, used = embedding.build_inception(config.inception_weights), config.inception_weights
        batches = image_batches(paths, config.batch_size, config.image_size, inception, log=log)
        source["inception_weights"] = used

    per_image, curve_sums = [], {m: np.zeros_like(metrics.AUC_THRESHOLDS) for m in METHODS}
    best, worst = [], []  # heaps of (±ab_mse, index, images) for the grid
    with tqdm(total=total, desc="evaluate", unit="img", disable=None) as progress:
        for batch in batches:
            ab_model = colorizer.predict_on_batch({"l": batch["l"], "embedding": batch["embedding"]})  # (B,S,S,2)
            size = batch["l"].shape[1]
            for i, key in enumerate(batch["key"]):
                top, left, h, w = content_box(batch["height"][i], batch["width"][i], size)
                crop = (slice(top, top + h), slice(left, left + w))
                l = colors.unscale_l(batch["l"][i][crop])  # (h, w, 1)
                ab_true = colors.unscale_ab(batch["ab"][i][crop])  # (h, w, 2)
                predictions = {
                    "model": colors.unscale_ab(np.asarray(ab_model[i])[crop]),
                    "gray": np.zeros_like(ab_true),
                    "mean_ab": np.broadcast_to(mean, ab_true.shape),
                }
                scores, rgbs, curves = score_image(l, ab_true, predictions)
                for method in METHODS:
                    curve_sums[method] += curves[method]
                index = len(per_image)
                per_image.append({"key": key, "height": int(batch["height"][i]), "width": int(batch["width"][i]), **scores})
                shown = {"key": key, "ab_mse": scores["model"]["ab_mse"], "gray": rgbs["gray"], "model": rgbs["model"], "original": rgbs["original"]}
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
        "AuC of the cumulative ab error over 0-150 (Zhang et al. 2016). Letterbox bars excluded.",
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
        "metrics.md, ab_error_cdf.png and best_worst.png.",
    )
    parser.add_argument("--model", required=True, help="a .keras file, or a run dir holding model.keras")
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--records", help="records dir (from python -m tfrecords_builder) to evaluate")
    what.add_argument("--images", nargs="+", help="image files, folders or globs to evaluate")
    parser.add_argument("-o", "--out-dir", required=True, help="where to write the metrics and plots")
    parser.add_argument("--split", default="val", help="records split to evaluate (default: val)")
    parser.add_argument("--batch-size", type=int, default=16, help="images per model call (default: 16)")
    parser.add_argument("--max-examples", type=int, default=0, help="evaluate at most this many images (0 = all)")
    parser.add_argument(
        "--image-size", type=int, default=colors.IMAGE_SIZE,
        help=f"working resolution for --images, divisible by 8 (default: {colors.IMAGE_SIZE})",
    )
    parser.add_argument(
        "--inception-weights", default="imagenet",
        help="for --images: Inception-ResNet-v2 weights, 'imagenet', 'random' or a weights file; "
        "use what the records the model was trained on used (default: imagenet)",
    )
    parser.add_argument(
        "--mean-ab-records",
        help="records dir whose train split gives the mean-ab baseline (default: --records; with "
        "--images and no training records, the evaluated images' own mean, reported as such)",
    )
    parser.add_argument(
        "--mean-ab-examples", type=int, default=2000,
        help="training examples averaged for the mean-ab baseline (0 = all; default: 2000)",
    )
    parser.add_argument("--grid-rows", type=int, default=3, help="best and worst images in best_worst.png, each (default: 3)")
    parser.add_argument("--verbose", action="store_true", help="show TensorFlow's start-up logs")
    args = parser.parse_args(argv)
    if args.batch_size < 1 or args.grid_rows < 1 or args.max_examples < 0 or args.mean_ab_examples < 0:
        parser.error("--batch-size and --grid-rows must be >= 1, --max-examples and --mean-ab-examples >= 0")
    if args.image_size < 8 or args.image_size % 8:
        parser.error(f"--image-size must be a positive multiple of 8, got {args.image_size}")
    if args.images and args.split != "val":
        parser.error("--split only applies to --records")
    return EvaluateConfig(
        model=args.model, out_dir=args.out_dir, records=args.records, split=args.split,
        images=tuple(args.images or ()), batch_size=args.batch_size, max_examples=args.max_examples,
        image_size=args.image_size, inception_weights=args.inception_weights,
        mean_ab_records=args.mean_ab_records, mean_ab_examples=args.mean_ab_examples,
        grid_rows=args.grid_rows, verbose=args.verbose,
    )  # fmt: skip


def main(argv=None):
    config = parse_args(argv)
    print(json.dumps(dataclasses.asdict(config)))
    try:
        report = evaluate(config)
    except (FileNotFoundError, ValueError, embedding.WeightsUnavailableError) as error:
        sys.exit(f"evaluate: error: {error}")
    print(markdown_table(report))
    print(f"wrote metrics.json, metrics.md, ab_error_cdf.png, best_worst.png to {config.out_dir}")


if __name__ == "__main__":
    main()
