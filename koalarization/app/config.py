"""The web page's settings: one frozen dataclass, each option's help on its field, the parser built
from the fields. Pure Python (no TensorFlow, no gradio): ``--help`` answers at once.
"""

import argparse
import dataclasses

from koalarization import cli, errors
from koalarization.constants import DEFAULT_MAX_PIXELS


def _option(default, help, **argparse_kwargs):
    return dataclasses.field(default=default, metadata={"help": help, **argparse_kwargs})


@dataclasses.dataclass(frozen=True)
class AppConfig:
    model: str = _option(None, "run dir (model.keras + config.json), .keras file or exported SavedModel dir", required=True)
    host: str = _option("127.0.0.1", "address to listen on (default %(default)s: this machine only; 0.0.0.0: every network it is on)")
    port: int = _option(7860, "port to listen on (default %(default)s)")
    share: bool = _option(False, "also open a public gradio.live link through Gradio's servers (default: none)")
    root_path: str = _option("", "the public URL path when behind a reverse proxy, e.g. /koalarization (default: none)")
    max_file_mb: int = _option(200, "uploads over this many megabytes are refused (default %(default)s)")
    max_pixels: int = _option(DEFAULT_MAX_PIXELS, "photos with more pixels, read from their header before decoding, are refused; also a video's frame size (default %(default)s)")
    max_photos: int = _option(32, "photos per upload at most (default %(default)s)")
    queue_size: int = _option(16, "requests waiting at most; the page runs one at a time (default %(default)s)")
    keep_minutes: int = _option(60, "results are deleted this long after they were made (default %(default)s); all of them at exit")
    working_size: int | None = _option(None, "square size (multiple of 8) the network runs at (default: the training image size or the export's, else 224)")
    inception_weights: str | None = _option(None, cli.INCEPTION_WEIGHTS_HELP)
    precision: str | None = _option(None, "float32, bfloat16 or auto (default: float32; a SavedModel runs as it was exported)")
    verbose: bool = _option(False, "show TensorFlow's start-up logs")


def build_parser():
    parser = argparse.ArgumentParser(
        prog="python -m koalarization.app",
        description="A web page to colorize photos and videos: open the printed address in a browser. "
        "Listens on 127.0.0.1 only, with no public link and no analytics, unless told otherwise.",
    )
    for field in dataclasses.fields(AppConfig):
        meta = dict(field.metadata)
        flag = "--" + field.name.replace("_", "-")
        if field.type is bool or field.type == "bool":
            parser.add_argument(flag, action="store_true", help=meta["help"])
            continue
        kind = int if int in getattr(field.type, "__args__", (field.type,)) else str
        extra = {"required": True} if meta.get("required") else {"default": field.default}
        if field.name == "precision":
            extra["choices"] = ("float32", "bfloat16", "auto")
        parser.add_argument(flag, type=kind, help=meta["help"], **extra)
    return parser


def parse_args(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        cli.check_working_size(args.working_size)
        cli.check_max_pixels(args.max_pixels)
    except errors.UsageError as error:
        parser.error(str(error))
    for name in ("port", "max_file_mb", "max_photos", "queue_size", "keep_minutes"):
        if getattr(args, name) < (0 if name == "port" else 1):
            parser.error(f"--{name.replace('_', '-')} {getattr(args, name)}: must be at least {0 if name == 'port' else 1}")
    if args.root_path and not args.root_path.startswith("/"):
        parser.error(f"--root-path {args.root_path}: must start with / (e.g. /koalarization)")
    return AppConfig(**vars(args))
