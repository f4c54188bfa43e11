"""The config of ``python -m koalarization.evaluate``: every field an option, worded once (:mod:`koalarization.cli`).

Pure Python: the demo and the notebooks build it without a command line.
"""

import dataclasses
from typing import ClassVar

from koalarization import cli, errors


@dataclasses.dataclass(frozen=True)
class EvaluateConfig:
    PROG: ClassVar[str] = "python -m koalarization.evaluate"
    DESCRIPTION: ClassVar[str] = (
        "Score a colorizer against the gray and mean-ab baselines; write metrics.json, "
        "metrics.md, ab_error_cdf.png and best_worst.png to --out-dir."
    )

    model: str = cli.option(help=cli.MODEL_HELP)
    out_dir: str = cli.option(flags=("-o", "--out-dir"), help="where to write the metrics and plots (created if needed)")
    records: str | None = cli.option(
        None, exclusive="what", required_group=True, help="records dir (from python -m tfrecords_builder) to evaluate, with --split"
    )
    split: str = cli.option("val", help="records split to evaluate (default: val)")
    images: tuple[str, ...] = cli.option(
        (), exclusive="what", required_group=True, metavar="INPUT",
        help="image files, folders (recursive) or globs to evaluate at their own resolution, as colorize sees them",
    )  # fmt: skip
    batch_size: int = cli.option(16, help="images per network call (default: 16)")
    max_examples: int = cli.option(0, help="evaluate at most this many images (default 0: all)")
    max_side: int = cli.option(
        0, help="--images: photos with a longer side are shrunk to it before colorizing and scoring (default 0: "
        "never, so the score is of exactly the pixels colorize writes)",
    )  # fmt: skip
    working_size: int | None = cli.working_size("the network runs at, with --images")
    inception_weights: str | None = cli.inception_weights("with --images: ")
    precision: str | None = cli.precision()
    mean_ab_records: str | None = cli.option(
        None, shown_default="the records",
        help="records dir whose train split gives the mean-ab baseline (default: --records, or the records "
        "the run was trained on; failing both, with --images, the evaluated photos' own mean, reported as such)",
    )  # fmt: skip
    mean_ab_examples: int = cli.option(2000, help="training examples averaged for the mean-ab baseline (0 = all; default: 2000)")
    grid_rows: int = cli.option(3, help="best and worst images in best_worst.png, each (default: 3)")
    verbose: bool = cli.verbose()

    def __post_init__(self):
        object.__setattr__(self, "images", tuple(self.images or ()))
        if min(self.batch_size, self.grid_rows) < 1 or min(self.max_examples, self.mean_ab_examples, self.max_side) < 0:
            raise errors.UsageError("--batch-size and --grid-rows must be >= 1; --max-examples, --mean-ab-examples and --max-side >= 0")
        cli.check_working_size(self.working_size)
        if self.images and self.split != "val":
            raise errors.UsageError("--split only applies to --records")
