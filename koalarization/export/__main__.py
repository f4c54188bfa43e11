"""Export a trained colorizer, with its Inception-ResNet-v2, as a SavedModel for TF Serving.

    python -m koalarization.export --model runs/smoke --out models/koalarization/1

``--out`` is the numbered version folder TF Serving expects. Signatures:

- ``serving_default``: ``image_bytes`` (string [B], encoded JPEG/PNG/GIF/BMP/WebP, each of any size
  up to ``--max-pixels``) -> ``colorized_bytes`` (string [B], PNG of the same size as each input,
  zlib level 1: as lossless as any level, and much faster to write). The graph is traced from
  :meth:`koalarization.model.colorizer.Colorizer.colorize_encoded`, the method ``colorize`` runs: decode
  (EXIF orientation applied, size checked from the header first), luminance, letterbox, Inception
  embedding, colorizer, ab upsampling, recombination with the full-resolution L in strips, PNG.
  One bad element fails the whole call with an ``InvalidArgumentError`` (TF Serving: HTTP 400 and
  ``{"error": ...}`` for the whole request); the checks made before decoding name the element
  (``image_bytes[i]: ...``), a decoder error on corrupt data does not.
- ``colorize_lab``: ``l`` (float [B, H, W, 1], L/50-1, H and W multiples of 8, else an
  ``InvalidArgumentError``) and ``embedding`` (float [B, D]) -> ``ab`` (float [B, H, W, 2], ab/127),
  for users who bring their own embeddings.
- ``embed``: ``inception_input`` (float [B, 299, 299, 3], gray in [-1, 1]) -> ``embedding`` [B, D].

``--precision bfloat16`` (or ``auto`` on a machine with native bf16) runs both networks in bfloat16
inside (weights stored in bf16: half the size); every signature still takes and gives float32.

The SavedModel needs only ``tensorflow`` to load (no keras, no koalarization). ``export.json``
beside ``saved_model.pb`` records the working size, the precision, the Inception weights it carries and the
training config. The folder is written under a temporary name (``.1.tmp-PID-HOST``) and renamed at
the end, so a TF Serving instance watching the parent never sees half a model. ``--overwrite``
swaps the old and new folders in one atomic step where Linux can (``safeio.replace_folder``), so a
kill at any instant leaves a whole model under ``--out``; elsewhere a kill between its two renames
leaves the old model set aside, put back by the next export. The next export also removes what a
killed one left. Two exports into
one version folder at once: the second stops with one line (``.lock-1`` beside the folder).

The command parses an :class:`koalarization.export.config.ExportConfig`, then runs
:func:`koalarization.export.savedmodel.run`; exit statuses: the table of :mod:`koalarization.errors`.
"""

import sys

import koalarization
from koalarization.export.savedmodel import main  # parse an ExportConfig, then savedmodel.run

if __name__ == "__main__":
    koalarization.inference_only_command()  # networks only: oneDNN packs their weights once
    sys.exit(main())
