"""The builder's settings: one frozen dataclass, every field a command-line flag."""

import argparse
import dataclasses
from typing import Optional

from koalarization.constants import IMAGE_SIZE  # noqa: E402
MAX_SHARD_SIZE = 100_000  # examples per shard; ~150 KB each, so at most ~15 GB per file
DEFAULT_SHARD_SIZE = 1000  # ~150 MB per shard, the size the tf.data guide recommends


@dataclasses.dataclass(frozen=True)
class BuildConfig:
    out: str
    images: tuple = ()
    tfds: Optional[str] = None
    samples: bool = False
    tfds_data_dir: Optional[str] = None
    inception_weights: str = "imagenet"
    precision: str = "float32"  # float32 | bfloat16 | auto: what the embedding computes in (recorded in the manifest)
    batch_size: int = 32
    val_fraction: float = 0.1
    shard_size: int = DEFAULT_SHARD_SIZE
    image_size: int = IMAGE_SIZE
    num_workers: int = 1
    worker_index: int = 0
    resume: bool = False
    limit: Optional[int] = None
    keep_gray: bool = False
    verbose: bool = False

    def __post_init__(self):
        object.__setattr__(self, "images", tuple(self.images))
        if sum([bool(self.images), self.tfds is not None, self.samples]) > 1:
            raise ValueError("choose one source: --images, --tfds or --samples")
        if not self.out:
            raise ValueError("--out is required")
        if self.batch_size < 1:
            raise ValueError(f"--batch-size must be at least 1, got {self.batch_size}")
        if not 0.0 <= self.val_fraction <= 1.0:
            raise ValueError(f"--val-fraction must be in [0, 1], got {self.val_fraction}")
        if not 1 <= self.shard_size <= MAX_SHARD_SIZE:
            raise ValueError(f"--shard-size must be in [1, {MAX_SHARD_SIZE}], got {self.shard_size}")
        if self.image_size < 8 or self.image_size % 8:
            raise ValueError(f"--image-size must be a positive multiple of 8, got {self.image_size}")
        if self.num_workers < 1 or not 0 <= self.worker_index < self.num_workers:
            raise ValueError(
                f"--worker-index must be in [0, --num-workers), got {self.worker_index} of {self.num_workers}"
            )
        if self.precision not in ("float32", "bfloat16", "auto"):
            raise ValueError(f"--precision must be float32, bfloat16 or auto, got {self.precision!r}")
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"--limit must be at least 1, got {self.limit}")

    @property
    def source_kind(self):
        """'images', 'tfds' or 'samples' (the default when no source is given)."""
        if self.images:
            return "images"
        return "tfds" if self.tfds is not None else "samples"

    def to_json(self):
        return {**dataclasses.asdict(self), "images": list(self.images)}


def make_parser():
    p = argparse.ArgumentParser(
        prog="python -m tfrecords_builder",
        description=(
            "Turn colour photos into Deep Koalarization training records: letterboxed L/ab at "
            "--image-size plus the Inception-ResNet-v2 embedding of each photo, in TFRecord shards "
            "with a manifest.json. Example: python -m tfrecords_builder --out records/ "
            "--images photos/ --inception-weights random"
        ),
    )
    p.add_argument("--out", required=True, help="output folder for the shards and manifest.json")
    src = p.add_argument_group("source (one of; default --samples)")
    src.add_argument(
        "--images", nargs="+", default=(), metavar="DIR_OR_GLOB",
        help="image files, folders (searched recursively) or glob patterns ('photos/**/*.jpg')",
    )
    src.add_argument(
        "--tfds", metavar="NAME[:SPLIT]",
        help="a tensorflow-datasets image dataset, e.g. tf_flowers or imagenet_v2:test (default split: train)",
    )
    src.add_argument(
        "--samples", action="store_true",
        help="the colour photos bundled with scikit-image and matplotlib (the default source)",
    )
    src.add_argument("--tfds-data-dir", metavar="DIR", help="where tensorflow-datasets keeps its data (its default if unset)")
    p.add_argument(
        "--inception-weights", default="imagenet", metavar="imagenet|random|PATH",
        help="Inception-ResNet-v2 weights: 'imagenet' (Keras cache or download), 'random' "
        "(seeded, for offline tests and demos) or a local .weights.h5/.h5 file (default: imagenet)",
    )
    p.add_argument(
        "--precision", default="float32", choices=("float32", "bfloat16", "auto"),
        help="number format of the embedding: float32 (default), bfloat16 (about 2x faster where the CPU has "
        "avx512_bf16 / amx_bf16 or the GPU bf16 tensor cores; embeddings within ~1%%), or auto: bfloat16 where "
        "native, else float32. The manifest records the one used",
    )  # fmt: skip
    p.add_argument("--batch-size", type=int, default=32, help="photos per Inception forward pass (default: 32)")
    p.add_argument(
        "--val-fraction", type=float, default=0.1,
        help="share of photos in the 'val' split, chosen by a hash of each key so a photo always "
        "lands in the same split (default: 0.1)",
    )
    p.add_argument(
        "--shard-size", type=int, default=DEFAULT_SHARD_SIZE,
        help=f"examples per shard, 1..{MAX_SHARD_SIZE} (default: {DEFAULT_SHARD_SIZE}, ~150 MB at 224x224)",
    )
    p.add_argument(
        "--image-size", type=int, default=IMAGE_SIZE,
        help=f"side of the square L/ab images, a multiple of 8 (default: {IMAGE_SIZE}, the paper's)",
    )
    p.add_argument("--num-workers", type=int, default=1, help="split the build over N machines or processes (default: 1)")
    p.add_argument(
        "--worker-index", type=int, default=0,
        help="which of the --num-workers parts this process builds, 0..N-1; each writes its own "
        "shards and manifest-wNN.json, which readers merge (default: 0)",
    )
    p.add_argument(
        "--resume", action="store_true",
        help="finish an interrupted build in --out: complete shards are kept, the rest are built "
        "(without it, earlier shards of this worker in --out are replaced)",
    )
    p.add_argument(
        "--limit", type=int,
        help="use N photos: a uniform sample chosen by a hash of each key, the same on every run "
        "(for --tfds, its first N: TFDS stores examples already shuffled)",
    )
    p.add_argument(
        "--keep-gray", action="store_true",
        help="keep gray photos (99%% of pixels with chroma under 5 Lab units) as training targets; "
        "by default they are skipped and listed in manifest.json, as Zhang et al. do for ImageNet",
    )
    p.add_argument("--verbose", action="store_true", help="show TensorFlow's own log messages")
    return p


def config_from_args(argv=None):
    """Parse ``argv`` into a :class:`BuildConfig`; bad values exit with a one-line usage error."""
    parser = make_parser()
    args = parser.parse_args(argv)
    fields = {f.name for f in dataclasses.fields(BuildConfig)}
    try:
        return BuildConfig(**{k: v for k, v in vars(args).items() if k in fields})
    except ValueError as error:
        parser.error(str(error))
