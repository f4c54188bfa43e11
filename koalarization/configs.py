"""The frozen config of each command that other code builds too: ``colorize``, ``export`` and
``evaluate`` (the demo and the notebooks make them without going through a command line).

Every field is a command-line option of its command; each command prints its config as JSON at
start. Pure Python: importing it costs nothing.
"""

import dataclasses

from koalarization.images import DEFAULT_MAX_PIXELS


@dataclasses.dataclass(frozen=True)
class ColorizeConfig:
    inputs: tuple  # files, folders (recursive) and glob patterns
    out_dir: str
    model: str  # run dir, .keras file or SavedModel dir
    working_size: int | None = None  # default: the training image size (or the export's), else 224
    batch_size: int = 8  # images per network call, and at most ~16 MP of them
    compare: bool = False
    overwrite: bool = False
    inception_weights: str | None = None  # imagenet | random | PATH; default: the weights used in training
    max_pixels: int = DEFAULT_MAX_PIXELS  # bigger photos are skipped (0: no limit)
    precision: str | None = None  # float32 | bfloat16 | auto; default float32 (a SavedModel: as exported)
    format: str = "png"  # png | jpg | webp
    quality: int = 90  # jpg and webp quality, 1-100
    png_compression: int = 1  # zlib level 0-9: all lossless; 1 (run-length, see koalarization.pngfile) is ~10x faster to write than 6, ~9% bigger
    verbose: bool = False


@dataclasses.dataclass(frozen=True)
class ExportConfig:
    model: str  # run dir, .keras file
    out: str  # version folder, e.g. models/koalarization/1
    inception_weights: str | None = None  # imagenet | random | PATH; default: the weights used in training
    working_size: int | None = None  # colorizer input size; default: the training image size, else 224
    max_pixels: int = DEFAULT_MAX_PIXELS  # serving_default refuses bigger images (0: no limit)
    precision: str = "float32"  # float32 | bfloat16 | auto: what runs inside (inputs and outputs stay float32)
    overwrite: bool = False
    verbose: bool = False


@dataclasses.dataclass(frozen=True)
class EvaluateConfig:
    model: str  # run dir, .keras file or SavedModel dir
    out_dir: str
    records: str | None = None  # records dir to evaluate (with split) ...
    split: str = "val"
    images: tuple[str, ...] = ()  # ... or image files / folders / globs
    batch_size: int = 16
    max_examples: int = 0  # 0 = all
    max_side: int = 0  # --images: larger photos are shrunk to this longer side before colorizing (0: never)
    working_size: int | None = None  # --images: network size; default: the training image size
    inception_weights: str | None = None  # --images: imagenet | random | PATH; default: as in training
    precision: str | None = None  # float32 | bfloat16 | auto; default float32 (a SavedModel: as exported)
    mean_ab_records: str | None = None  # records whose train split gives the mean-ab baseline
    mean_ab_examples: int = 2000  # how many training examples to average for it (0 = all)
    grid_rows: int = 3  # best and worst images shown in best_worst.png (each)
    verbose: bool = False
