"""The config of ``python -m koalarization.video``: every field an option, worded once (:mod:`koalarization.cli`).

Pure Python: the notebooks and the benchmarks build it without a command line.
"""

import dataclasses
import os
from typing import ClassVar

from koalarization import cli, errors
from koalarization.discovery import IMAGE_EXTENSIONS

VIDEO_EXTENSIONS = (".mp4", ".m4v", ".mov", ".mkv", ".avi", ".webm", ".mpg", ".mpeg", ".ts", ".mts", ".m2ts", ".wmv", ".flv", ".3gp", ".ogv")  # not .gif: a photo for colorize
STATE_VERSION = 1  # of the smoothing state kept beside each chunk


def is_video(path):
    return os.path.splitext(path)[1].lower() in VIDEO_EXTENSIONS


@dataclasses.dataclass(frozen=True)
class VideoConfig:
    PROG: ClassVar[str] = "python -m koalarization.video"
    DESCRIPTION: ClassVar[str] = "Colorize videos: same size, frame rate, frames and audio; steady colour within each shot."

    inputs: tuple[str, ...] = cli.option(positional=True, metavar="VIDEO", help="video files (any container and codec FFmpeg reads)")
    out_dir: str = cli.option(flags=("-o", "--out-dir"), help="folder for the colorized videos (created if needed)")
    model: str = cli.option(help=cli.MODEL_HELP)
    working_size: int | None = cli.working_size("the network runs at; the output keeps the input size")
    batch_size: int = cli.option(8, help="frames per network call (default %(default)s)")
    chunk_frames: int = cli.option(240, help="frames per finished chunk, the unit --resume restarts from (default %(default)s)")
    smoothing: float = cli.option(
        0.8, help="weight of the past in the colour's moving average within a shot, 0..1 (0: frame by frame; default %(default)s)"
    )
    cut_threshold: float = cli.option(
        0.35, help="luminance-histogram distance (0..1) between two frames that counts as a shot cut (default %(default)s)"
    )
    video_codec: str = cli.option("libx264", help="FFmpeg video encoder (default %(default)s, in .mp4; libvpx-vp9 -> .webm, ffv1 -> .mkv)")
    crf: int = cli.option(18, help="quality for libx264/libx265/libvpx-vp9 (lower is better; default %(default)s)")
    resume: bool = cli.option(False, help="continue a killed run from its last finished chunk")
    overwrite: bool = cli.option(False, help="replace existing outputs (default: keep them and say so)")
    inception_weights: str | None = cli.inception_weights()
    precision: str | None = cli.precision()
    verbose: bool = cli.verbose()

    def __post_init__(self):
        object.__setattr__(self, "inputs", tuple(self.inputs))
        cli.check_working_size(self.working_size)
        photos = [path for path in self.inputs if os.path.splitext(path)[1].lower() in IMAGE_EXTENSIONS]
        if photos:
            raise errors.UsageError(f"{photos[0]}: a photo; colorize photos (python -m koalarization.colorize) and films in separate commands")

    def settings(self):
        """What a chunk's pixels depend on: a --resume with other values starts over."""
        keys = ("model", "working_size", "chunk_frames", "smoothing", "cut_threshold", "video_codec", "crf", "inception_weights")
        precision = {"precision": self.precision} if self.precision else {}  # unset: as before, so old runs resume
        return {key: getattr(self, key) for key in keys} | {"model": os.path.realpath(self.model), "version": STATE_VERSION} | precision
