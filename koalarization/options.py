"""Command-line options shared by ``colorize``, ``evaluate`` and ``export``: one wording, one check.

No TensorFlow here: the commands parse (and answer ``--help`` or an argument error) before the
slow imports.
"""

from koalarization import images

INCEPTION_WEIGHTS_HELP = (
    "imagenet, random or a weights file for Inception-ResNet-v2 (run dirs and .keras files only; "
    "default: the weights recorded in the run's config, else imagenet)"
)


def add_working_size(parser, what="the network runs at"):
    parser.add_argument(
        "--working-size", type=int,
        help=f"square size (multiple of 8) {what} (default: the training image size or the export's, else 224)",
    )  # fmt: skip


def add_max_pixels(parser, what):
    parser.add_argument(
        "--max-pixels", type=int, default=images.DEFAULT_MAX_PIXELS,
        help=f"{what} images with more pixels, read from their header before decoding "
        "(default: %(default)s; 0: no limit)",
    )  # fmt: skip


def add_precision(parser, default=None):
    from koalarization import precision

    parser.add_argument(
        "--precision", choices=precision.CHOICES, default=default,
        help=precision.HELP + (f" (default: {default})" if default else " (default: float32; a SavedModel runs as it was exported)"),
    )  # fmt: skip


def check(parser, args):
    """``parser.error`` (exit status 2, one line) for a bad ``--working-size`` or ``--max-pixels``."""
    if getattr(args, "max_pixels", 0) < 0:
        parser.error("--max-pixels must be >= 0 (0: no limit)")
    size = getattr(args, "working_size", None)
    if size is not None and (size < 8 or size % 8):
        parser.error(f"--working-size {size}: must be a positive multiple of 8 (the encoder downsamples by 8)")
    return args
