"""The config of ``python -m koalarization.app``: every field an option, worded once (:mod:`koalarization.cli`).

Pure Python (no TensorFlow, no gradio): ``--help`` answers at once.
"""

import dataclasses
from typing import ClassVar

from koalarization import cli, errors


@dataclasses.dataclass(frozen=True)
class AppConfig:
    PROG: ClassVar[str] = "python -m koalarization.app"
    DESCRIPTION: ClassVar[str] = (
        "A web page to colorize photos and videos: open the printed address in a browser. "
        "Listens on 127.0.0.1 only, with no public link and no analytics, unless told otherwise."
    )

    model: str = cli.option(help=cli.MODEL_HELP)
    host: str = cli.option("127.0.0.1", help="address to listen on (default %(default)s: this machine only; 0.0.0.0: every network it is on)")
    port: int = cli.option(7860, help="port to listen on (default %(default)s)")
    share: bool = cli.option(False, help="also open a public gradio.live link through Gradio's servers (default: none)")
    root_path: str = cli.option("", help="the public URL path when behind a reverse proxy, e.g. /koalarization (default: none)")
    max_file_mb: int = cli.option(200, help="uploads over this many megabytes are refused (default %(default)s)")
    max_pixels: int = cli.max_pixels("refuse (with a message)")
    max_photos: int = cli.option(32, help="photos per upload at most (default %(default)s)")
    queue_size: int = cli.option(16, help="requests waiting at most; the page runs one at a time (default %(default)s)")
    keep_minutes: int = cli.option(60, help="results are deleted this long after they were made (default %(default)s); all of them at exit")
    working_size: int | None = cli.working_size("the network runs at; results keep the photo's size")
    inception_weights: str | None = cli.inception_weights()
    precision: str | None = cli.precision()
    verbose: bool = cli.verbose()

    def __post_init__(self):
        cli.check_max_pixels(self.max_pixels)
        cli.check_working_size(self.working_size)
        for name in ("max_file_mb", "max_photos", "queue_size", "keep_minutes"):
            if getattr(self, name) < 1:
                raise errors.UsageError(f"--{name.replace('_', '-')} {getattr(self, name)}: must be at least 1")
        if not 0 <= self.port <= 65535:
            raise errors.UsageError(f"--port {self.port}: must be 0-65535")
        if self.root_path and not self.root_path.startswith("/"):
            raise errors.UsageError(f"--root-path {self.root_path}: must start with / (e.g. /koalarization)")


def parse_args(argv=None):
    return cli.parse(AppConfig, argv)
