"""The whole pipeline on the bundled photos, in one command: the README's main job.

    python -m koalarization.demo [--out out] [--inception-weights imagenet|random|PATH] [--precision float32|bfloat16|auto]

1. builds records from the colour photos bundled with scikit-image and matplotlib,
2. trains the colorizer with the ``smoke`` preset,
3. exports the SavedModel for TF Serving,
4. colorizes the bundled photos with the trained model (with comparison panels),
5. evaluates it against the gray and mean-colour baselines (the bundled photos are the training
   photos: the evaluation says so, photo by photo),
6. and draws ``OUT/comparison.png``: gray input | colorized | original, one row per photo.

Offline, ImageNet weights for Inception-ResNet-v2 cannot be downloaded: the demo then says so and
falls back to random Inception weights, which every output records. ``--precision`` runs every
stage in it (records, training as mixed_bfloat16, export, colorize, evaluation; ``auto``: bfloat16
where the CPU or GPU has it natively), and every output records it too. Run it again and each stage
resumes: records and training resume where they stopped; the export, the colorized photos and the
evaluation are kept when they are newer than the trained model. Pass ``--fresh`` to start over.
"""

import dataclasses
import os
import shutil
import sys
from typing import ClassVar

import koalarization  # noqa: F401  (TensorFlow is imported after the arguments are parsed)
from koalarization import cli, constants


@dataclasses.dataclass(frozen=True)
class DemoConfig:
    PROG: ClassVar[str] = "python -m koalarization.demo"
    DESCRIPTION: ClassVar[str] = "The whole pipeline on the bundled photos, in one command: the README's main job."

    out: str = cli.option("out", help="output folder (default: %(default)s)")
    inception_weights: str = cli.option(
        "imagenet", help="imagenet (default; falls back to random when offline), random, or a weights file"
    )
    precision: str = cli.precision(default="float32")
    fresh: bool = cli.option(False, help="delete the output folder first and redo everything")
    verbose: bool = cli.verbose()


def _stage(number, title):
    print(f"\n=== {number}/6 {title}", flush=True)


def comparison_picture(sources, colorized_dir, path):
    """One row per photo: gray | colorized | original, written to ``path`` (PNG)."""
    from koalarization import images, plots

    rows = []
    for source in sources:
        out = os.path.join(colorized_dir, os.path.splitext(os.path.basename(source))[0] + ".png")
        if os.path.exists(out):
            rows.append((os.path.basename(source), images.read_image(source), images.read_image(out)))
    plots.comparison_grid(rows, path)
    return path


def _done(output, model_path):
    """True when ``output`` exists and is newer than the trained model (a stage to keep on a rerun)."""
    return os.path.exists(output) and os.path.getmtime(output) >= os.path.getmtime(model_path)


def run(config):
    """Every stage, as the module docstring says; returns the exit status (0)."""
    from koalarization.colorize import files as colorizing
    from koalarization.colorize.config import ColorizeConfig
    from koalarization.evaluate.config import EvaluateConfig
    from koalarization.model import inception as embedding
    from koalarization.evaluate import scoring as evaluation
    from koalarization.export import savedmodel as saved_model
    from koalarization.train import trainer as training
    from koalarization.model.colorizer import Colorizer
    from tfrecords_builder.config import BuildConfig
    from tfrecords_builder.builder import build
    from tfrecords_builder.sources import sample_photo_paths
    from tfrecords_builder.builder import INCEPTION_MODEL

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
        BuildConfig(out=records_dir, samples=True, inception_weights=weights, resume=True, precision=config.precision),
        embedder=inception,
        embedder_info={"model": INCEPTION_MODEL, "weights": embedding.describe_weights(weights)},
    )

    _stage(2, f"training (smoke preset) -> {run_dir}")
    model_path = os.path.join(run_dir, constants.MODEL_FILE)
    if os.path.exists(model_path):
        print(f"{model_path} exists: training already done (use --fresh to train again)")
    else:
        policy = {"bfloat16": "mixed_bfloat16"}.get(config.precision, config.precision)  # float32 and auto as they are
        training.train(training.TrainConfig.with_preset("smoke", records=records_dir, run_dir=run_dir, export=False, precision=policy))

    loaded = []  # one Colorizer for the export, colorize and evaluate stages, loaded when one needs it

    def colorizer():
        if not loaded:
            loaded.append(Colorizer.load(run_dir, inception, weights, precision=config.precision))
        return loaded[0]

    _stage(3, f"SavedModel for TF Serving -> {export_dir}")
    if _done(os.path.join(export_dir, "saved_model.pb"), model_path):
        print(f"{export_dir} is newer than the model: kept")
    else:
        saved_model.export_saved_model(colorizer(), export_dir, weights, overwrite=True)
        print(f"wrote {export_dir}")

    _stage(4, f"colorizing the bundled photos -> {colorized_dir}")
    stale = [p for p in photos if not _done(os.path.join(colorized_dir, os.path.splitext(os.path.basename(p))[0] + ".png"), model_path)]
    settings = ColorizeConfig(inputs=tuple(photos), out_dir=colorized_dir, model=run_dir, compare=True, overwrite=bool(stale))
    colorizing.colorize_files(settings, colorizer=colorizer() if stale else None)  # kept outputs are said per photo

    _stage(5, f"evaluation against the gray and mean-colour baselines -> {eval_dir}")
    metrics_path = os.path.join(eval_dir, "metrics.json")
    if _done(metrics_path, model_path):
        print(f"{metrics_path} is newer than the model: kept")
        with open(os.path.join(eval_dir, "metrics.md")) as f:
            print(f.read())
    else:
        report = evaluation.evaluate(
            EvaluateConfig(model=run_dir, out_dir=eval_dir, images=tuple(photos)), colorizer=colorizer()
        )
        print(evaluation.markdown_table(report))

    _stage(6, "comparison picture")
    picture = comparison_picture(photos, colorized_dir, os.path.join(out, "comparison.png"))
    print(
        f"\nDone. Look at {picture}, the colorized photos in {colorized_dir}, the training run in {run_dir}, "
        f"the metrics in {eval_dir}/metrics.md and the SavedModel in {export_dir}."
    )
    print("The evaluated photos are the training photos: the scores measure fit, not generalisation.")
    if weights == "random":
        print("Note: Inception ran with RANDOM weights, so the colours cannot use what the photos show.")
    return 0


main = cli.command(DemoConfig, run)


if __name__ == "__main__":
    sys.exit(main())
