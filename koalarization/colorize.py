"""Colorize image files and folders, any size, with a trained model.

    python -m koalarization.colorize photos/ old.jpg "scans/*.png" -o colorized/ --model runs/smoke --compare

``--model`` is a run dir (``model.keras`` + ``config.json``), a ``.keras`` file or a SavedModel from
``python -m koalarization.export``. Each output ``OUTDIR/<name>.png`` has the input's size and its
full-resolution luminance; only the chroma comes from the network (see :mod:`koalarization.inference`).
A colour input is reduced to its luminance first. ``--compare`` adds ``OUTDIR/<name>_compare.png``:
gray input | colorized | original (when the input was colour).

Folders are searched recursively and keep their sub-folders in OUTDIR. Unreadable files are
reported (path and reason) and skipped; existing outputs are kept unless ``--overwrite``.
Exit status: 0 when at least one image was colorized or already done, 1 when nothing could be
colorized, 2 for a bad command line or model.
"""

import argparse
import dataclasses
import json
import os
import sys

from koalarization import colors, images, inference

PANEL_MAX_HEIGHT = 512
PANEL_MIN_HEIGHT = 64
PANEL_GAP = 4


@dataclasses.dataclass(frozen=True)
class ColorizeConfig:
    inputs: tuple  # files, folders (recursive) and glob patterns
    out_dir: str
    model: str  # run dir, .keras file or SavedModel dir
    working_size: int | None = None  # default: the training image size (or the export's), else 224
    batch_size: int = 8
    compare: bool = False
    overwrite: bool = False
    inception_weights: str | None = None  # imagenet | random | PATH; default: the weights used in training
    verbose: bool = False


@dataclasses.dataclass
class Summary:
    colorized: list = dataclasses.field(default_factory=list)  # output paths written
    existing: list = dataclasses.field(default_factory=list)  # outputs kept as they were
    failed: list = dataclasses.field(default_factory=list)  # (input path, reason)


# -- the model -------------------------------------------------------------------------------------
def load_model(config, inception=None, log=print):
    """``(predict_ab, embed, working_size)`` for ``config.model``; ``inception`` overrides the embedder."""
    kind, model_path, model_config = inference.resolve_model(config.model)
    if kind == "saved_model":
        return _load_saved_model(config, model_path, model_config or {})
    from koalarization import embedding

    colorizer = inference.load_colorizer(model_path)
    facts = inference.find_embedding_facts(model_config)
    colorizer_dim = inference.embedding_dim_of(colorizer)
    if inception is None:
        inference.check_embedding_dim(colorizer_dim, embedding.EMBEDDING_DIM, facts, model_path)
        weights = config.inception_weights or inference.weights_from_facts(facts) or "imagenet"
        log(f"building Inception-ResNet-v2 with '{weights}' weights")
        inception = embedding.build_inception(weights)
    inference.check_embedding_dim(colorizer_dim, int(inception.outputs[0].shape[-1]), facts, model_path)
    working_size = config.working_size or inference.training_image_size(model_config) or colors.IMAGE_SIZE

    def predict_ab(l, embedding_batch):
        return colorizer({"l": l, "embedding": embedding_batch}, training=False)  # (B, S, S, 2)

    def embed(gray):
        return inception(gray, training=False)  # (B, D)

    return predict_ab, embed, inference.check_working_size(working_size)


def _load_saved_model(config, path, info):
    import tensorflow as tf

    if config.inception_weights:
        raise inference.ModelError(f"{path}: a SavedModel carries its own Inception weights; drop --inception-weights")
    loaded = tf.saved_model.load(path)
    missing = {"colorize_lab", "embed"} - set(loaded.signatures)
    if missing:
        raise inference.ModelError(f"{path}: SavedModel lacks the signature(s) {sorted(missing)}; re-export it")
    lab, embed = loaded.signatures["colorize_lab"], loaded.signatures["embed"]
    working_size = config.working_size or info.get("working_size") or colors.IMAGE_SIZE
    return (
        lambda l, e: lab(l=l, embedding=e)["ab"],
        lambda gray: embed(inception_input=gray)["embedding"],
        inference.check_working_size(working_size),
    )


# -- files -----------------------------------------------------------------------------------------
def plan_outputs(inputs, out_dir):
    """``(jobs, missing)``: jobs are ``(input path, output stem under out_dir)``; missing ``(input, reason)``."""
    jobs, missing, taken = [], [], set()
    for item in inputs:
        try:
            found = images.find_images([item])
        except FileNotFoundError:
            missing.append((item, "no such file, folder or matching glob"))
            continue
        for path in found:
            if os.path.abspath(path).startswith(os.path.abspath(out_dir) + os.sep):
                continue  # never colorize our own outputs
            relative = os.path.relpath(path, item) if os.path.isdir(item) else os.path.basename(path)
            stem, ext = os.path.splitext(relative)
            candidate, n = stem, 1
            while candidate in taken:  # x.jpg and x.png in one folder
                candidate = f"{stem}-{ext.lstrip('.')}" if n == 1 else f"{stem}-{ext.lstrip('.')}-{n}"
                n += 1
            taken.add(candidate)
            jobs.append((path, candidate))
    return jobs, missing


def _save_png(array, path):
    from PIL import Image

    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    temporary = f"{path}.tmp"
    Image.fromarray(array).save(temporary, format="PNG")
    os.replace(temporary, path)


def comparison_panel(rgb, colorized):
    """uint8 panel: gray input | colorized | original (only when the input had colour), one height.

    ``rgb``: the input, float (H, W, 3); ``colorized``: uint8 (H, W, 3). The panel is between
    ``PANEL_MIN_HEIGHT`` and ``PANEL_MAX_HEIGHT`` pixels high, so a 1x1 is visible and a panorama small.
    """
    import numpy as np
    from PIL import Image

    height = int(np.clip(rgb.shape[0], PANEL_MIN_HEIGHT, PANEL_MAX_HEIGHT))
    width = max(1, round(rgb.shape[1] * height / rgb.shape[0]))
    resample = Image.NEAREST if height > rgb.shape[0] else Image.LANCZOS

    def fit(tile):
        return np.asarray(Image.fromarray(tile).resize((width, height), resample))

    original = fit(inference.to_uint8(rgb).numpy())  # (height, width, 3)
    gray = inference.to_uint8(colors.luminance_to_rgb(colors.rgb_to_luminance(original / 255.0))).numpy()
    tiles = [gray, fit(colorized)] + ([original] if float(np.ptp(rgb, axis=-1).max()) > 1.0 / 255.0 else [])
    gap = np.full((height, PANEL_GAP, 3), 255, np.uint8)
    return np.concatenate([part for tile in tiles for part in (tile, gap)][:-1], axis=1)


def colorize_files(config, inception=None, log=print):
    """Colorize every image of ``config.inputs`` into ``config.out_dir``; returns a :class:`Summary`."""
    import tensorflow as tf
    from tqdm import tqdm

    if config.batch_size < 1:
        raise ValueError(f"--batch-size {config.batch_size}: must be at least 1")
    if config.working_size is not None:
        inference.check_working_size(config.working_size)
    predict_ab, embed, working_size = load_model(config, inception, log)
    jobs, missing = plan_outputs(config.inputs, config.out_dir)
    summary = Summary(failed=list(missing))
    for path, reason in missing:
        log(f"skipped {path}: {reason}")

    def flush(batch, progress):
        written = 0
        try:
            outputs = inference.colorize_batch([rgb for _, _, rgb in batch], predict_ab, embed, working_size, strips=True)
            for (path, out, rgb), colorized in zip(batch, outputs):
                colorized = colorized.numpy()  # (H, W, 3) uint8
                _save_png(colorized, out + ".png")
                if config.compare:
                    _save_png(comparison_panel(rgb, colorized), out + "_compare.png")
                summary.colorized.append(out + ".png")
                written += 1
                progress.update()
        except (tf.errors.OpError, MemoryError) as error:  # e.g. out of memory on a huge image
            for path, _, _ in batch[written:]:
                summary.failed.append((path, f"colorization failed: {error.__class__.__name__}: {error}"))
                progress.write(f"skipped {path}: colorization failed ({error.__class__.__name__})")
                progress.update()
        batch.clear()

    batch = []
    with tqdm(total=len(jobs), desc="colorizing", unit="image", file=sys.stderr, disable=not jobs) as progress:
        for path, stem in jobs:
            out = os.path.join(config.out_dir, stem)
            if os.path.exists(out + ".png") and not config.overwrite:
                summary.existing.append(out + ".png")
                progress.write(f"kept {out}.png: already exists (pass --overwrite to replace it)")
                progress.update()
                continue
            try:
                batch.append((path, out, images.read_image(path)))
            except images.ImageError as error:
                summary.failed.append((error.path, error.reason))
                progress.write(f"skipped {error}")
                progress.update()
            if len(batch) >= config.batch_size:
                flush(batch, progress)
        if batch:
            flush(batch, progress)
    log(
        f"colorized {len(summary.colorized)}, kept {len(summary.existing)} existing, "
        f"failed {len(summary.failed)} -> {config.out_dir}"
    )
    return summary


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m koalarization.colorize",
        description="Colorize photos of any size; outputs keep the input's size and full-resolution luminance.",
    )
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, folders (searched recursively) or glob patterns")
    parser.add_argument("-o", "--out-dir", required=True, help="folder for the colorized PNGs (created if needed)")
    parser.add_argument("--model", required=True, help="run dir (model.keras + config.json), .keras file or exported SavedModel dir")
    parser.add_argument(
        "--working-size",
        type=int,
        help="square size (multiple of 8) the network runs at; the output keeps the input size "
        "(default: the training image size or the export's, else 224)",
    )
    parser.add_argument("--batch-size", type=int, default=8, help="images per network call (default 8)")
    parser.add_argument("--compare", action="store_true", help="also write NAME_compare.png: gray input | colorized | original")
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs (default: keep them and say so)")
    parser.add_argument(
        "--inception-weights",
        help="imagenet, random or a weights file for Inception-ResNet-v2 (run dirs and .keras files only; "
        "default: the weights recorded in the run's config, else imagenet)",
    )
    parser.add_argument("--verbose", action="store_true", help="show TensorFlow's start-up logs")
    args = vars(parser.parse_args(argv))
    return ColorizeConfig(**{**args, "inputs": tuple(args["inputs"])})


def main(argv=None, inception=None):
    from koalarization import embedding

    config = parse_args(argv)
    print(json.dumps(dataclasses.asdict(config)))
    try:
        summary = colorize_files(config, inception=inception)
    except (inference.ModelError, embedding.WeightsUnavailableError, FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0 if summary.colorized or summary.existing else 1


if __name__ == "__main__":
    sys.exit(main())
