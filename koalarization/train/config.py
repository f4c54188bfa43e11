"""The config of ``python -m koalarization.train`` and its presets: every field an option, worded
once (:mod:`koalarization.cli`). A preset is a plain dict of field values: a flag left out takes
the preset's value, then the field's default (the paper's settings).

Pure Python: the demo and the notebooks build it without a command line.
"""

import dataclasses
from typing import ClassVar, Optional

from koalarization import cli, errors

PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16", "auto")  # auto: koalarization.precision.training_policy
DISTRIBUTIONS = ("none", "mirrored", "multi_worker")
PRESETS = {
    "paper": {},  # the dataclass defaults are the paper's settings
    "smoke": {"epochs": 2, "steps_per_epoch": 3, "validation_steps": 2, "batch_size": 4},
}


class UserError(errors.UsageError):
    """An expected problem with the user's input: reported as one line, without a traceback."""


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    PROG: ClassVar[str] = "python -m koalarization.train"
    DESCRIPTION: ClassVar[str] = (
        "Train the Deep Koalarization colorizer on records from `python -m tfrecords_builder`. "
        "Flags left out take the preset's value, then the paper's."
    )

    records: str = cli.option(help="records dir (manifest.json and shards)")
    run_dir: str = cli.option(help="output dir; run the same command again to resume a killed run")
    preset: str = cli.option(
        "paper", choices=sorted(PRESETS),
        help="paper: 100 epochs, batch 100, lr 0.001; smoke: 2 epochs of 3 steps, batch 4 (minutes on a CPU)",
    )  # fmt: skip
    epochs: int = cli.option(100, help="number of epochs (paper: 100)")
    steps_per_epoch: Optional[int] = cli.option(None, help="train steps per epoch (default: one pass over the train split)")
    validation_steps: Optional[int] = cli.option(None, help="val batches per epoch (default: the whole val split)")
    batch_size: int = cli.option(100, help="global batch size, split over the replicas (paper: 100)")
    learning_rate: float = cli.option(0.001, help="Adam learning rate (paper: 0.001)")
    clipnorm: Optional[float] = cli.option(
        None, help="clip each gradient to this L2 norm before Adam's step (default: none, as the paper); "
        "lets the --hints variant train at a higher learning rate without its ReLUs dying",
    )  # fmt: skip
    precision: str = cli.option(
        "float32", choices=PRECISIONS,
        help="Keras dtype policy (default float32); auto: mixed_bfloat16 where the CPU (avx512_bf16 / amx_bf16) "
        "or GPU (compute capability >= 8.0) has bf16 natively, else float32; config.json records the one used",
    )  # fmt: skip
    distribution: str = cli.option(
        "none", choices=DISTRIBUTIONS,
        help="none (default): one device; mirrored: all local GPUs; multi_worker: the cluster in TF_CONFIG",
    )  # fmt: skip
    seed: int = cli.option(0, help="seed of weight initialisation and shuffling (default 0)")
    sample_images: int = cli.option(4, help="images in the per-epoch sample panel (default 4)")
    shuffle_buffer: int = cli.option(
        4096, help="examples shuffled in memory (default 4096, ~600 MB; with shards mixed by the builder, "
        "a batch of 100 from a class-sorted source spans most classes)",
    )  # fmt: skip
    cycle_length: int = cli.option(16, help="train shards read at once, round-robin (default 16)")
    backup_every_steps: int = cli.option(
        1000, help="also back up inside an epoch every N steps, so a kill loses at most N steps (default 1000; "
        "0: at epoch ends only; may change when resuming)",
    )  # fmt: skip
    hints: bool = cli.option(
        False, help="train the colour-hints variant (an addition, not the paper's model): the encoder also takes "
        "simulated user clicks (ab + mask), so colorize --hint can steer it; see docs/hints.md",
    )  # fmt: skip
    export: bool = cli.option(
        True, negatable=True, shown_default="yes",
        help="export RUN/saved_model/1 for TF Serving at the end (default: yes, for records "
        "with Inception embeddings); --no-export skips it",
    )  # fmt: skip
    verbose: bool = cli.verbose()

    def __post_init__(self):
        if self.preset not in PRESETS:
            raise UserError(f"unknown preset {self.preset!r}; choose from {sorted(PRESETS)}")
        if self.precision not in PRECISIONS:
            raise UserError(f"unknown precision {self.precision!r}; choose from {PRECISIONS}")
        if self.distribution not in DISTRIBUTIONS:
            raise UserError(f"unknown distribution {self.distribution!r}; choose from {DISTRIBUTIONS}")
        for name in ("epochs", "batch_size", "sample_images", "steps_per_epoch", "validation_steps", "shuffle_buffer", "cycle_length"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise UserError(f"{name} must be at least 1, got {value}")
        if self.backup_every_steps < 0:
            raise UserError(f"backup_every_steps must be 0 or more, got {self.backup_every_steps}")
        if self.clipnorm is not None and not self.clipnorm > 0:
            raise UserError(f"clipnorm must be positive, got {self.clipnorm}")
        if not self.learning_rate > 0:
            raise UserError(f"learning_rate must be positive, got {self.learning_rate}")

    @classmethod
    def with_preset(cls, preset="paper", **fields):
        """The preset's values as defaults, ``fields`` on top."""
        if preset not in PRESETS:
            raise UserError(f"unknown preset {preset!r}; choose from {sorted(PRESETS)}")
        return cls(preset=preset, **{**PRESETS[preset], **fields})
