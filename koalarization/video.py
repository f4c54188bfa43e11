"""Colorize films: ``python -m koalarization.video``.

    python -m koalarization.video film.mp4 -o colorized/ --model runs/smoke          # -> colorized/film.mp4
    python -m koalarization.video film.mp4 -o colorized/ --model runs/smoke --resume # finish a killed run

The command; the method, the streaming and the parser are :mod:`koalarization.films` (whose names
this module forwards, so ``koalarization.video.colorize_video`` and the like keep working).
"""

import sys

import koalarization
from koalarization import films, options

__getattr__ = options.forwarding(__name__, "koalarization.films")

if __name__ == "__main__":
    koalarization.inference_only_command()  # networks only: oneDNN packs their weights once
    sys.exit(films.main())
