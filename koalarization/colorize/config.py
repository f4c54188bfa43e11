"""The config of ``python -m koalarization.colorize``: every field an option, worded once (:mod:`koalarization.cli`).

Pure Python: the demo, the notebooks and the benchmarks build it without a command line.
"""

import dataclasses
import sys
from typing import ClassVar

from koalarization import beam_options, cli, errors
from koalarization.video.config import VideoConfig, is_video

FORMATS = ("png", "jpg", "webp")


@dataclasses.dataclass(frozen=True)
class ColorizeConfig:
    PROG: ClassVar[str] = "python -m koalarization.colorize"
    DESCRIPTION: ClassVar[str] = (
        "Colorize photos of any size; outputs keep the input's size and full-resolution luminance. "
        "Videos (.mp4, .mov, .mkv, .avi, .webm, ...) are colorized by python -m koalarization.video (see its --help)."
    )

    inputs: tuple[str, ...] = cli.option(positional=True, metavar="INPUT", help="image files, folders (searched recursively) or glob patterns")
    out_dir: str = cli.option(flags=("-o", "--out-dir"), help="folder for the colorized images (created if needed)")
    model: str = cli.option(help=cli.MODEL_HELP)
    working_size: int | None = cli.working_size("the network runs at; the output keeps the input size")
    batch_size: int = cli.option(8, help="images per network call (default 8; and at most ~16 MP of them)")
    compare: bool = cli.option(False, help="also write NAME_compare.<format>: gray input | colorized | original")
    overwrite: bool = cli.option(False, help="replace existing outputs (default: keep them and say so)")
    inception_weights: str | None = cli.inception_weights()
    max_pixels: int = cli.max_pixels("skip (and name)")
    precision: str | None = cli.precision()
    format: str = cli.option("png", choices=FORMATS, help="output format (default: png, lossless)")
    quality: int = cli.option(90, help="jpg and webp quality, 1-100 (default: %(default)s)")
    png_compression: int = cli.option(
        1, help="PNG zlib level 0-9, all lossless (default: %(default)s, fast; 9: smallest files, several times slower)"
    )
    hint: tuple[str, ...] = cli.option(
        (), repeatable=True, metavar="X,Y,#RRGGBB",
        help="a colour hint for the one photo given (repeatable): pixel X,Y of the photo as displayed "
        "gets colour #RRGGBB's chroma; a hints model only (train --hints; docs/hints.md)",
    )  # fmt: skip
    hints: str | None = cli.option(
        None, metavar="FILE.json",
        help='colour hints for several photos: {"photo name": [[x, y, "#RRGGBB"], ...]}, names as the file name '
        "or the path below the folder given",
    )  # fmt: skip
    verbose: bool = cli.verbose()
    beam_pipeline_options: str | None = cli.option(None, help=beam_options.HELP, metavar="runner=NAME,KEY=VALUE,...")

    def __post_init__(self):
        object.__setattr__(self, "inputs", tuple(self.inputs))
        cli.check_max_pixels(self.max_pixels)
        cli.check_working_size(self.working_size)
        if not 1 <= self.quality <= 100:
            raise errors.UsageError(f"--quality {self.quality}: must be 1-100")
        if not 0 <= self.png_compression <= 9:
            raise errors.UsageError(f"--png-compression {self.png_compression}: must be 0-9")


def parse(argv=None):
    """The colorize command line: a :class:`ColorizeConfig`, or a :class:`VideoConfig` when an input
    is a film (``colorize film.mp4`` takes ``python -m koalarization.video``'s options)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if any(is_video(arg) for arg in argv if not arg.startswith("-")):
        return cli.parse(VideoConfig, argv)
    return cli.parse(ColorizeConfig, argv)
