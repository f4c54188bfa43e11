"""The builder's settings: one frozen dataclass, every field a command-line flag worded once (:mod:`koalarization.cli`)."""

import dataclasses
from typing import ClassVar, Optional

from koalarization import beam_options, cli, errors
from koalarization.constants import IMAGE_SIZE

MAX_SHARD_SIZE = 100_000  # examples per shard; ~150 KB each, so at most ~15 GB per file
DEFAULT_SHARD_SIZE = 1000  # ~150 MB per shard, the size the tf.data guide recommends
SOURCE = "source (one of; default --samples)"


@dataclasses.dataclass(frozen=True)
class BuildConfig:
    PROG: ClassVar[str] = "python -m tfrecords_builder"
    DESCRIPTION: ClassVar[str] = (
        "Turn colour photos into Deep Koalarization training records: letterboxed L/ab at "
        "--image-size plus the Inception-ResNet-v2 embedding of each photo, in TFRecord shards "
        "with a manifest.json. Example: python -m tfrecords_builder --out records/ "
        "--images photos/ --inception-weights random"
    )

    out: str = cli.option(help="output folder for the shards and manifest.json")
    images: tuple[str, ...] = cli.option(
        (), group=SOURCE, metavar="DIR_OR_GLOB",
        help="image files, folders (searched recursively) or glob patterns ('photos/**/*.jpg')",
    )  # fmt: skip
    tfds: Optional[str] = cli.option(
        None, group=SOURCE, metavar="NAME[:SPLIT]",
        help="a tensorflow-datasets image dataset, e.g. tf_flowers or imagenet_v2:test (default split: train)",
    )  # fmt: skip
    samples: bool = cli.option(False, group=SOURCE, help="the colour photos bundled with scikit-image and matplotlib (the default source)")
    tfds_data_dir: Optional[str] = cli.option(
        None, group=SOURCE, metavar="DIR", help="where tensorflow-datasets keeps its data (its default if unset)"
    )
    inception_weights: str = cli.option(
        "imagenet", metavar="imagenet|random|PATH",
        help="Inception-ResNet-v2 weights: 'imagenet' (Keras cache or download), 'random' "
        "(seeded, for offline tests and demos) or a local .weights.h5/.h5 file (default: imagenet)",
    )  # fmt: skip
    precision: str = cli.option(
        "float32", choices=("float32", "bfloat16", "auto"),
        help="number format of the embedding: float32 (default), bfloat16 (about 2x faster where the CPU has "
        "avx512_bf16 / amx_bf16 or the GPU bf16 tensor cores; embeddings within ~1%%), or auto: bfloat16 where "
        "native, else float32. The manifest records the one used",
    )  # fmt: skip
    batch_size: int = cli.option(32, help="photos per Inception forward pass (default: 32)")
    val_fraction: float = cli.option(
        0.1, help="share of photos in the 'val' split, chosen by a hash of each key so a photo always "
        "lands in the same split (default: 0.1)",
    )  # fmt: skip
    shard_size: int = cli.option(
        DEFAULT_SHARD_SIZE, help=f"examples per shard, 1..{MAX_SHARD_SIZE} (default: {DEFAULT_SHARD_SIZE}, ~150 MB at 224x224)"
    )
    image_size: int = cli.option(IMAGE_SIZE, help=f"side of the square L/ab images, a multiple of 8 (default: {IMAGE_SIZE}, the paper's)")
    resume: bool = cli.option(
        False, help="finish an interrupted build in --out: complete shards are kept, the rest are built "
        "(without it, earlier shards in --out are replaced)",
    )  # fmt: skip
    limit: Optional[int] = cli.option(
        None, help="use N photos: a uniform sample chosen by a hash of each key, the same on every run "
        "(for --tfds, its first N: TFDS stores examples already shuffled)",
    )  # fmt: skip
    keep_gray: bool = cli.option(
        False, help="keep gray photos (99%% of pixels with chroma under 5 Lab units) as training targets; "
        "by default they are skipped and listed in manifest.json, as Zhang et al. do for ImageNet",
    )  # fmt: skip
    verbose: bool = cli.option(False, help="show TensorFlow's own log messages")
    beam_pipeline_options: Optional[str] = cli.option(None, help=beam_options.HELP, metavar="runner=NAME,KEY=VALUE,...")

    def __post_init__(self):
        object.__setattr__(self, "images", tuple(self.images))
        if sum([bool(self.images), self.tfds is not None, self.samples]) > 1:
            raise errors.UsageError("choose one source: --images, --tfds or --samples")
        if not self.out:
            raise errors.UsageError("--out is required")
        if self.batch_size < 1:
            raise errors.UsageError(f"--batch-size must be at least 1, got {self.batch_size}")
        if not 0.0 <= self.val_fraction <= 1.0:
            raise errors.UsageError(f"--val-fraction must be in [0, 1], got {self.val_fraction}")
        if not 1 <= self.shard_size <= MAX_SHARD_SIZE:
            raise errors.UsageError(f"--shard-size must be in [1, {MAX_SHARD_SIZE}], got {self.shard_size}")
        if self.image_size < 8 or self.image_size % 8:
            raise errors.UsageError(f"--image-size must be a positive multiple of 8, got {self.image_size}")
        if self.precision not in ("float32", "bfloat16", "auto"):
            raise errors.UsageError(f"--precision must be float32, bfloat16 or auto, got {self.precision!r}")
        if self.limit is not None and self.limit < 1:
            raise errors.UsageError(f"--limit must be at least 1, got {self.limit}")

    @property
    def source_kind(self):
        """'images', 'tfds' or 'samples' (the default when no source is given)."""
        if self.images:
            return "images"
        return "tfds" if self.tfds is not None else "samples"

    def to_json(self):
        return {**dataclasses.asdict(self), "images": list(self.images)}


def make_parser():
    """The command's argparse parser, built from :class:`BuildConfig`'s fields."""
    return cli.parser_for(BuildConfig, BuildConfig.PROG, BuildConfig.DESCRIPTION)


def config_from_args(argv=None):
    """Parse ``argv`` into a :class:`BuildConfig`; bad values exit with a one-line usage error."""
    return cli.parse(BuildConfig, argv)
