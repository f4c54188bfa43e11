"""Colorize films: ``python -m koalarization.video``.

    python -m koalarization.video film.mp4 -o colorized/ --model runs/smoke          # -> colorized/film.mp4
    python -m koalarization.video film.mp4 -o colorized/ --model runs/smoke --resume # finish a killed run

The command; the method, the streaming and the parser are :mod:`koalarization.video.films`.
"""

import sys

import koalarization
from koalarization.video import films


def main(argv=None):
    return films.main(argv)


if __name__ == "__main__":
    koalarization.inference_only_command()  # networks only: oneDNN packs their weights once
    sys.exit(main())
