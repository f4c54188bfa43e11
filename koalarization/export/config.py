"""The config of ``python -m koalarization.export``: every field an option, worded once (:mod:`koalarization.cli`)."""

import dataclasses
from typing import ClassVar

from koalarization import cli


@dataclasses.dataclass(frozen=True)
class ExportConfig:
    PROG: ClassVar[str] = "python -m koalarization.export"
    DESCRIPTION: ClassVar[str] = "Export a trained colorizer and its Inception-ResNet-v2 as a SavedModel for TF Serving."

    model: str = cli.option(help="run dir (holding model.keras and config.json) or a .keras file")
    out: str = cli.option(help="version folder to write, e.g. models/koalarization/1 (TF Serving layout)")
    inception_weights: str | None = cli.inception_weights()
    working_size: int | None = cli.working_size("the colorizer runs at in the SavedModel")
    max_pixels: int = cli.max_pixels("serving_default refuses (one InvalidArgumentError)")
    precision: str = cli.precision(default="float32")
    overwrite: bool = cli.option(False, help="replace --out if it already holds something")
    verbose: bool = cli.verbose()

    def __post_init__(self):
        cli.check_max_pixels(self.max_pixels)
        cli.check_working_size(self.working_size)
