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
original for the best and worst images by model ab MSE). For a colour-hints model (``train --hints``)
with ``--records``, also ``hints.json``, ``hints.md`` and ``hints.png``: PSNR and ab error with 0, 1,
5, 10 and 50 simulated hints per photo (:mod:`koalarization.evaluate.hintsweep`).

The command parses an :class:`koalarization.evaluate.config.EvaluateConfig`, then runs
:func:`koalarization.evaluate.scoring.run`; exit statuses: the table of :mod:`koalarization.errors`.
"""

import sys

import koalarization
from koalarization import cli, errors
from koalarization.evaluate.config import EvaluateConfig


@errors.command
def main(argv=None):
    config = cli.parse(EvaluateConfig, argv)  # --help and bad values answer here, before TensorFlow loads
    from koalarization.evaluate import scoring

    return scoring.run(config)


if __name__ == "__main__":
    koalarization.inference_only_command()  # networks only: oneDNN packs their weights once
    sys.exit(main())
