"""Evaluate a trained colorizer beside two baselines: metrics, a markdown table and plots.

    python -m koalarization.evaluate --model runs/smoke --records records/ --split val -o out/eval
    python -m koalarization.evaluate --model runs/smoke --images photos/ -o out/eval-photos

Three methods are scored on the same images: the ``model``, ``gray`` (ab = 0, the gray image
itself) and ``mean_ab`` (every pixel gets the training set's mean a*, b*). Per image and on
average: ab MSE (scaled as the loss), PSNR and SSIM of the RGB result against the original,
colorfulness and its absolute difference from the original's, and the AuC of the cumulative
ab-error curve over 0-150 (see :mod:`koalarization.metrics`).

With ``--records`` the photos are the records' letterboxed L/ab pairs (and their stored
embeddings), scored at that resolution on the photo only: the white letterbox bars are cropped
away first, since every method gets them right for free. With ``--images`` each file is colorized
by the same :class:`koalarization.model.colorizer.Colorizer` as ``python -m koalarization.colorize``, and
the score is of exactly the pixels ``colorize`` writes, at the photo's own size (``--max-side``
shrinks the photo first, when asked). Images smaller than SSIM's 7x7 window are skipped and named.

Gray originals (no colour to find: ``colors.is_grayscale``) are scored apart from the colour ones:
their PSNR and ab error only say how gray the output is. The means in the table are over the colour
originals; ``metrics.json`` also has the gray originals' means. The mean-ab baseline comes from a
uniform sample of the training split (every k-th example across all shards).

Writes to ``-o``: ``metrics.json`` (per image and mean per method), ``metrics.md`` (the table),
``ab_error_cdf.png`` (the curves of the three methods) and ``best_worst.png`` (gray | model |
original for the best and worst images by model ab MSE).
"""

import argparse
import dataclasses
import json
import sys

import koalarization
from koalarization import options, safeio
from koalarization.configs import EvaluateConfig

# -- command line ------------------------------------------------------------------------------
def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m koalarization.evaluate",
        description="Score a colorizer against the gray and mean-ab baselines; write metrics.json, "
        "metrics.md, ab_error_cdf.png and best_worst.png to --out-dir.",
    )
    parser.add_argument("--model", required=True, help="run dir (model.keras + config.json), .keras file or exported SavedModel dir")
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--records", help="records dir (from python -m tfrecords_builder) to evaluate, with --split")
    what.add_argument(
        "--images", nargs="+", metavar="INPUT",
        help="image files, folders (recursive) or globs to evaluate at their own resolution, as colorize sees them",
    )
    parser.add_argument("-o", "--out-dir", required=True, help="where to write the metrics and plots (created if needed)")
    parser.add_argument("--split", default="val", help="records split to evaluate (default: val)")
    parser.add_argument("--batch-size", type=int, default=16, help="images per network call (default: 16)")
    parser.add_argument("--max-examples", type=int, default=0, help="evaluate at most this many images (default 0: all)")
    parser.add_argument(
        "--max-side", type=int, default=0,
        help="--images: photos with a longer side are shrunk to it before colorizing and scoring (default 0: "
        "never, so the score is of exactly the pixels colorize writes)",
    )
    options.add_working_size(parser, "the network runs at, with --images")
    parser.add_argument("--inception-weights", help="with --images: " + options.INCEPTION_WEIGHTS_HELP)
    options.add_precision(parser)
    parser.add_argument(
        "--mean-ab-records",
        help="records dir whose train split gives the mean-ab baseline (default: --records, or the records "
        "the run was trained on; failing both, with --images, the evaluated photos' own mean, reported as such)",
    )
    parser.add_argument(
        "--mean-ab-examples", type=int, default=2000,
        help="training examples averaged for the mean-ab baseline (0 = all; default: 2000)",
    )
    parser.add_argument("--grid-rows", type=int, default=3, help="best and worst images in best_worst.png, each (default: 3)")
    parser.add_argument("--verbose", action="store_true", help="show TensorFlow's start-up logs")
    args = parser.parse_args(argv)
    if min(args.batch_size, args.grid_rows) < 1 or min(args.max_examples, args.mean_ab_examples, args.max_side) < 0:
        parser.error("--batch-size and --grid-rows must be >= 1; --max-examples, --mean-ab-examples and --max-side >= 0")
    options.check(parser, args)
    if args.images and args.split != "val":
        parser.error("--split only applies to --records")
    fields = vars(args)
    return EvaluateConfig(**{**fields, "images": tuple(fields["images"] or ())})


def main(argv=None):
    config = parse_args(argv)
    print(json.dumps(dataclasses.asdict(config)))
    try:
        with safeio.removed_if_left_empty(config.out_dir):
            safeio.check_output_dir(config.out_dir)  # before TensorFlow and any model
            from koalarization.model import inception as embedding
            from koalarization.evaluate import scoring as evaluation

            report = evaluation.evaluate(config)
    except KeyboardInterrupt:
        print("\ninterrupted: no report written (a report is written whole at the end); run the command again", file=sys.stderr)
        return safeio.EXIT_INTERRUPTED
    except (safeio.OutputPathError, safeio.LockedError) as error:
        print(f"error: {error}", file=sys.stderr)
        return safeio.exit_status(error)
    except (embedding.WeightsUnavailableError, FileNotFoundError, ValueError, safeio.SafeIOError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(evaluation.markdown_table(report))
    print(f"wrote metrics.json, metrics.md, ab_error_cdf.png, best_worst.png to {config.out_dir}")
    return 0




if __name__ == "__main__":
    koalarization.inference_only_command()  # networks only: oneDNN packs their weights once
    sys.exit(main())
