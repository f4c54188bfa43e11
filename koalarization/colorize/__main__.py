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
nothing could be colorized (with the reason), else the table of :mod:`koalarization.errors` (an
output folder that cannot be used is checked before any model is loaded).

Videos (``colorize film.mp4 -o out/ --model runs/smoke``) are parsed as
:class:`koalarization.video.config.VideoConfig` (:func:`koalarization.colorize.config.parse`) and
handed to :func:`koalarization.video.films.run`, whose flags then apply. The photos' options: :class:`koalarization.colorize.config.ColorizeConfig`.
"""

import sys

import koalarization
from koalarization.colorize.files import main  # parse (colorize.config.parse), then files.run


if __name__ == "__main__":
    koalarization.inference_only_command()  # networks only: oneDNN packs their weights once
    sys.exit(main())
