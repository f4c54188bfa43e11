"""Sizes, scales and file names every stage agrees on, in one light module (no TensorFlow import).

Import these from here; modules that need TensorFlow (colors, the records schema, the run dir)
use the same names instead of spelling the values again.
"""

# -- the paper's sizes and scaling (Baldassarre et al. 2017) --------------------------------
IMAGE_SIZE = 224  # encoder input and target size
INCEPTION_SIZE = 299  # Inception-ResNet-v2 input size
EMBEDDING_DIM = 1000  # Inception-ResNet-v2 logits of keras.applications (the authors' TF-slim had 1001)
L_HALF_RANGE = 50.0  # L in [0, 100]  ->  L / 50 - 1 in [-1, 1]
AB_SCALE = 127.0  # ab in ~[-127, 127] -> ab / 127 in [-1, 1] (tanh output)

# -- files a build, a run and an export leave behind ------------------------------------------
RECORDS_SCHEMA_VERSION = 2  # the records' layout (koalarization.records); a build of another version is rebuilt
MANIFEST_FILE = "manifest.json"  # records folder: counts, shards, weights, precision
MODEL_FILE = "model.keras"  # run dir: the final model
CONFIG_FILE = "config.json"  # run dir: the training config and the records' facts
EXPORT_INFO_FILE = "export.json"  # SavedModel folder: what was exported, with which weights
COLORIZE_SUMMARY_FILE = "colorize-summary.json"  # colorize on Beam: every output written, kept or failed (with its reason)

# -- limits -----------------------------------------------------------------------------------
DEFAULT_MAX_PIXELS = 100_000_000  # colorize --max-pixels and export --max-pixels; 0 = no limit
