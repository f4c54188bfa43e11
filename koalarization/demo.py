"""The whole pipeline on the bundled photos, in one command: the README's main job.

    python -m koalarization.demo [--out out] [--inception-weights imagenet|random|PATH]

1. builds records from the colour photos bundled with scikit-image and matplotlib,
2. trains the colorizer with the ``smoke`` preset,
3. exports the SavedModel for TF Serving,
4. colorizes the bundled photos with the trained model (with comparison panels),
5. evaluates it against the gray and mean-colour baselines,
6. and draws ``OUT/comparison.png``: gray input | colorized | original, one row per photo.

Offline, ImageNet weights for Inception-ResNet-v2 cannot be downloaded: the demo then says so and
falls back to random Inception weights, which every output records. Run it again and each stage
resumes or redoes its part; pass ``--fresh`` to start over.
"""

import argparse
import dataclasses
import os
import shutil
import sys

import koalarization  # noqa: F401
from koalarization import colorize, embedding, evaluate, export, images, train
from tfrecords_builder import BuildConfig, build, sample_photo_paths
from tfrecords_builder.builder import INCEPTION_MODEL


@dataclasses.dataclass(frozen=True)
class DemoConfig:
    out: str = "out"  # everything goes here
    inception_weights: str = "imagenet"  # imagenet (falls back to random offline) | random | PATH
    fresh: bool = False  # delete OUT first
    verbose: bool = False


def _stage(number, title):
    print(f"\n=== {number}/6 {title}", flush=True)


def comparison_picture(sources, colorized_dir, path, columns=("gray input", "colorized", "original")):
    """One row per photo: gray | colorized | original, written to ``path`` (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from koalarization import colors

    rows = []
    for source in sources:
        out = os.path.join(colorized_dir, os.path.splitext(os.path.basename(source))[0] + ".png")
        if os.path.exists(out):
            rgb = images.read_image(source)
            gray = colors.luminance_to_rgb(colors.rgb_to_luminance(rgb)).numpy()
            rows.append((os.path.basename(source), (gray, images.read_image(out), rgb)))
    fig, axes = plt.subplots(len(rows), 3, figsize=(9, 3 * len(rows)), squeeze=False)
    for row, (name, pictures) in zip(axes, rows):
        for axis, picture, title in zip(row, pictures, columns):
            axis.imshow(np.clip(picture, 0, 1))
            axis.set_title(f"{name}: {title}" if title == columns[0] else title, fontsize=9)
            axis.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def run(config):
    out = os.path.abspath(config.out)
    if config.fresh and os.path.exists(out):
        shutil.rmtree(out)
    os.makedirs(out, exist_ok=True)
    records_dir, run_dir = os.path.join(out, "records"), os.path.join(out, "run")
    export_dir = os.path.join(out, "models", "koalarization", "1")
    colorized_dir, eval_dir = os.path.join(out, "colorized"), os.path.join(out, "evaluation")
    photos = sample_photo_paths()

    _stage(1, f"records from {len(photos)} bundled photos -> {records_dir}")
    if config.inception_weights == "imagenet":
        inception, weights = embedding.load_inception_or_fallback("imagenet")
    else:
        inception, weights = embedding.build_inception(config.inception_weights), config.inception_weights
    print(f"Inception-ResNet-v2 weights: {weights}")
    build(
        BuildConfig(out=records_dir, samples=True, inception_weights=weights, resume=True),
        embedder=inception,
        embedder_info={"model": INCEPTION_MODEL, "weights": embedding.describe_weights(weights)},
    )

    _stage(2, f"training (smoke preset) -> {run_dir}")
    model_path = os.path.join(run_dir, "model.keras")
    if os.path.exists(model_path):
        print(f"{model_path} exists: training already done (use --fresh to train again)")
    else:
        train.train(train.TrainConfig.with_preset("smoke", records=records_dir, run_dir=run_dir, export=False))

    _stage(3, f"SavedModel for TF Serving -> {export_dir}")
    export.export_from_path(
        export.ExportConfig(model=run_dir, out=export_dir, inception_weights=weights, overwrite=True), inception=inception
    )

    _stage(4, f"colorizing the bundled photos -> {colorized_dir}")
    colorize.colorize_files(
        colorize.ColorizeConfig(
            inputs=tuple(photos), out_dir=colorized_dir, model=run_dir, compare=True, overwrite=True,
            inception_weights=weights,
        ),
        inception=inception,
    )

    _stage(5, f"evaluation against the gray and mean-colour baselines -> {eval_dir}")
    report = evaluate.evaluate(
        evaluate.EvaluateConfig(model=run_dir, out_dir=eval_dir, images=tuple(photos), inception_weights=weights),
        inception=inception,
    )
    print(evaluate.markdown_table(report))

    _stage(6, "comparison picture")
    picture = comparison_picture(photos, colorized_dir, os.path.join(out, "comparison.png"))
    print(
        f"\nDone. Look at {picture}, the colorized photos in {colorized_dir}, the training run in {run_dir}, "
        f"the metrics in {eval_dir}/metrics.md and the SavedModel in {export_dir}."
    )
    if weights == "random":
        print("Note: Inception ran with RANDOM weights, so the colours cannot use what the photos show.")
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m koalarization.demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=DemoConfig.out, help="output folder (default: %(default)s)")
    parser.add_argument(
        "--inception-weights", default=DemoConfig.inception_weights,
        help="imagenet (default; falls back to random when offline), random, or a weights file",
    )
    parser.add_argument("--fresh", action="store_true", help="delete the output folder first and redo everything")
    parser.add_argument("--verbose", action="store_true", help="show TensorFlow's start-up logs")
    config = DemoConfig(**vars(parser.parse_args(argv)))
    run(config)
    return 0


if __name__ == "__main__":
    sys.exit(main())
