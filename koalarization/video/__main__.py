"""Colorize films: ``python -m koalarization.video``.

    python -m koalarization.video film.mp4 -o colorized/ --model runs/smoke          # -> colorized/film.mp4
    python -m koalarization.video film.mp4 -o colorized/ --model runs/smoke --resume # finish a killed run

The command: parses a :class:`koalarization.video.config.VideoConfig`, then runs
:func:`koalarization.video.films.run`. Exit statuses: the table of :mod:`koalarization.errors`.
"""

import sys

import koalarization
from koalarization.video.films import main  # parse a VideoConfig, then films.run

if __name__ == "__main__":
    koalarization.inference_only_command()  # networks only: oneDNN packs their weights once
    sys.exit(main())
