"""Colorize image files and folders, any size, with a trained model.

    python -m koalarization.colorize photos/ old.jpg "scans/*.png" -o colorized/ --model runs/smoke --compare

``--model`` is a run dir (``model.keras`` + ``config.json``), a ``.keras`` file or a SavedModel from
``python -m koalarization.export``; it is loaded as a :class:`koalarization.model.colorizer.Colorizer`,
the object the SavedModel's ``serving_default`` is traced from, so both give the same pixels. Each
output ``OUTDIR/<name>.png`` has the input's size and its full-resolution luminance; only the
chroma comes from the network. A colour input is reduced to its luminance first. ``--compare``
adds ``OUTDIR/<name>_compare.png``: gray input | colorized | original (when the input was colour).
``--format jpg|webp`` (with ``--quality``) writes smaller lossy files instead of PNGs; PNGs are
written at zlib level 1 (``--png-compression``: every level is lossless, 9 is smallest and slowest).

Speed: the first photos are decoded while the model loads, the first photo goes through the
networks alone (so it is out one network call after the model is ready; the model's loading time
is printed), and decoding, recombination and encoding run in threads beside the networks.

Folders are searched recursively and keep their sub-folders in OUTDIR. Output names are decided
from the whole input set, so they do not depend on the order of the arguments: ``a.jpg`` and
``a.png`` give ``a-jpg.png`` and ``a-png.png``. An output is never written over an input, whatever
symbolic links say. Photos over ``--max-pixels`` (read from their header) are skipped and named.
Unreadable files are reported (path and reason) and skipped; existing outputs are kept unless
``--overwrite``. Exit status: 0 when at least one image was colorized or already done, 1 when
nothing could be colorized (with the reason), 2 for a bad command line or model, 3 for an output
folder that cannot be used (checked before any model is loaded).

Videos (``colorize film.mp4 -o out/ --model runs/smoke``) are handed to :mod:`koalarization.video`,
whose flags and exit statuses then apply.
"""

import argparse
import dataclasses
import json
import sys

import koalarization
from koalarization import options, safeio
from koalarization.colorize import files as colorizing
from koalarization.video import films


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m koalarization.colorize",
        description="Colorize photos of any size; outputs keep the input's size and full-resolution luminance. "
        "Videos (.mp4, .mov, .mkv, .avi, .webm, ...) are colorized by python -m koalarization.video (see its --help).",
    )
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, folders (searched recursively) or glob patterns")
    parser.add_argument("-o", "--out-dir", required=True, help="folder for the colorized images (created if needed)")
    parser.add_argument("--model", required=True, help="run dir (model.keras + config.json), .keras file or exported SavedModel dir")
    options.add_working_size(parser, "the network runs at; the output keeps the input size")
    parser.add_argument("--batch-size", type=int, default=8, help="images per network call (default 8; and at most ~16 MP of them)")
    parser.add_argument("--compare", action="store_true", help="also write NAME_compare.<format>: gray input | colorized | original")
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs (default: keep them and say so)")
    options.add_max_pixels(parser, "skip (and name)")
    parser.add_argument("--format", choices=("png", "jpg", "webp"), default="png", help="output format (default: png, lossless)")
    parser.add_argument("--quality", type=int, default=90, help="jpg and webp quality, 1-100 (default: %(default)s)")
    parser.add_argument(
        "--png-compression", type=int, default=1,
        help="PNG zlib level 0-9, all lossless (default: %(default)s, fast; 9: smallest files, several times slower)",
    )  # fmt: skip
    parser.add_argument("--inception-weights", help=options.INCEPTION_WEIGHTS_HELP)
    options.add_precision(parser)
    parser.add_argument("--verbose", action="store_true", help="show TensorFlow's start-up logs")
    args = options.check(parser, parser.parse_args(argv))
    if not 1 <= args.quality <= 100:
        parser.error(f"--quality {args.quality}: must be 1-100")
    if not 0 <= args.png_compression <= 9:
        parser.error(f"--png-compression {args.png_compression}: must be 0-9")
    return colorizing.ColorizeConfig(**{**vars(args), "inputs": tuple(args.inputs)})


def main(argv=None, inception=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if any(films.is_video(arg) for arg in argv if not arg.startswith("-")):  # films: koalarization.video's command line
        return films.main(argv, inception=inception)
    config = parse_args(argv)
    print(json.dumps(dataclasses.asdict(config)))
    try:
        with safeio.removed_if_left_empty(config.out_dir):
            summary = colorizing.colorize_files(config, inception=inception)
    except (safeio.OutputPathError, safeio.LockedError) as error:
        print(f"error: {error}", file=sys.stderr)
        return safeio.exit_status(error)
    except KeyboardInterrupt:
        print(f"\ninterrupted: the colorized files in {config.out_dir} are whole; run the same command again to do the rest "
              "(finished ones are kept)", file=sys.stderr)  # fmt: skip
        return safeio.EXIT_INTERRUPTED
    except Exception as error:  # noqa: BLE001  -- model and weights errors: one line, no traceback
        from koalarization.model import inception as embedding

        if not isinstance(error, (ValueError, embedding.WeightsUnavailableError, FileNotFoundError)):
            raise
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0 if summary.colorized or summary.existing else 1




if __name__ == "__main__":
    koalarization.inference_only_command()  # networks only: oneDNN packs their weights once
    sys.exit(main())
