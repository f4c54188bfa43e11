"""Colorizing a photo of any size: the method shared by ``colorize`` and the exported SavedModel.

    rgb (H, W, 3) --luminance--> L (H, W, 1)  ----------------------------------------+
        --letterbox 224, L/50-1--> l (224, 224, 1) --colorizer--> ab (224, 224, 2)      |
        --letterbox 299, gray----> (299, 299, 3) --Inception----> embedding (1000,)     |
    ab --remove padding, upsample to H x W, x127--> ab (H, W, 2) --+ L (full res) ---> Lab -> rgb

The network runs at its working size, but the output keeps the input's size, aspect ratio and
full-resolution luminance; only the chroma is upsampled (Zhang et al. 2016, DDColor, DeOldify),
and shrunk where a colour would fall outside sRGB, so that the luminance survives exactly.
Only a colour input's luminance is ever used. Every step is a TensorFlow op, so the same code runs
eagerly here and inside the SavedModel graph.

This module also finds and loads a model: a run dir (``model.keras`` + ``config.json``), a
``.keras`` file, or a SavedModel written by :mod:`koalarization.export`.
"""

import json
import os

import tensorflow as tf

from koalarization import colors

RUN_MODEL_NAME = "model.keras"
RUN_CONFIG_NAME = "config.json"
EXPORT_INFO_NAME = "export.json"


class ModelError(ValueError):
    """A ``--model`` that cannot be used; ``str()`` names the path and the problem."""


# -- the method ----------------------------------------------------------------------------------
def network_inputs(rgb, working_size=colors.IMAGE_SIZE):
    """sRGB (H, W, 3) in [0, 1] -> (l (S, S, 1) scaled, Inception input (299, 299, 3)), as in training."""
    l = colors.scale_l(colors.rgb_to_luminance(colors.letterbox(rgb, working_size)))  # (S, S, 1)
    return l, colors.inception_input(rgb)  # (299, 299, 3) gray in [-1, 1]


GAMUT_STEPS = 8  # bisection steps of lab_to_rgb_keeping_luminance: chroma within 1/256 of the largest that fits


def _in_gamut(linear):
    """Linear RGB (..., 3) -> (...) bool: inside sRGB (with a hair of tolerance)."""
    return tf.reduce_all((linear >= -1e-4) & (linear <= 1.0 + 1e-4), axis=-1)


def lab_to_rgb_keeping_luminance(luminance, ab, steps=GAMUT_STEPS):
    """L (..., 1) + ab (..., 2) -> sRGB (..., 3), each colour outside sRGB desaturated just enough to fit.

    Clipping an out-of-gamut colour in RGB instead would change its luminance (a bright orange
    comes out darker), and the output's luminance must be the input's: here L is kept exactly and
    only the chroma of the pixels outside the gamut shrinks (bisection on its scale).
    """
    linear = colors.lab_to_linear_rgb(tf.concat([luminance, ab], axis=-1))  # (H, W, 3)
    outside = tf.where(tf.logical_not(_in_gamut(linear)))  # (N, 2) pixel indices
    l_out, ab_out = tf.gather_nd(luminance, outside), tf.gather_nd(ab, outside)  # (N, 1), (N, 2)
    low, high = tf.zeros_like(l_out), tf.ones_like(l_out)  # chroma scales known to fit / not to fit
    for _ in range(steps):
        middle = (low + high) / 2.0
        fits = _in_gamut(colors.lab_to_linear_rgb(tf.concat([l_out, ab_out * middle], axis=-1)))[:, None]  # (N, 1)
        low, high = tf.where(fits, middle, low), tf.where(fits, high, middle)
    fitted = colors.lab_to_linear_rgb(tf.concat([l_out, ab_out * low], axis=-1))  # (N, 3)
    return colors.linear_to_srgb(tf.tensor_scatter_nd_update(linear, outside, fitted))  # (H, W, 3)


def recombine(ab_scaled, luminance, working_size=colors.IMAGE_SIZE):
    """Predicted ab (S, S, 2) scaled + full-resolution L (H, W, 1) -> sRGB (H, W, 3) in [0, 1]."""
    shape = tf.shape(luminance)
    ab = colors.unscale_ab(colors.unletterbox(ab_scaled, shape[0], shape[1], working_size))  # (H, W, 2)
    return lab_to_rgb_keeping_luminance(luminance, ab)  # (H, W, 3)


def colorize_batch(rgbs, predict_ab, embed, working_size=colors.IMAGE_SIZE):
    """Colorize a list of sRGB images (each (H_i, W_i, 3)); returns a list of sRGB tensors of the same sizes.

    ``embed``: (B, 299, 299, 3) -> (B, D); ``predict_ab``: (l (B, S, S, 1), embedding (B, D)) -> (B, S, S, 2).
    """
    pairs = [network_inputs(rgb, working_size) for rgb in rgbs]
    l = tf.stack([p[0] for p in pairs])  # (B, S, S, 1)
    embedding = embed(tf.stack([p[1] for p in pairs]))  # (B, D)
    ab = predict_ab(l, embedding)  # (B, S, S, 2)
    return [recombine(ab[i], colors.rgb_to_luminance(rgb), working_size) for i, rgb in enumerate(rgbs)]


def to_uint8(rgb):
    """sRGB float in [0, 1] -> uint8, rounded (not truncated)."""
    return tf.cast(tf.round(tf.clip_by_value(rgb, 0.0, 1.0) * 255.0), tf.uint8)


def check_working_size(size):
    if size < 8 or size % 8:
        raise ValueError(f"working size {size}: must be a multiple of 8 (the encoder downsamples by 8)")
    return size


# -- finding and loading a model -----------------------------------------------------------------
def read_json(path):
    with open(path) as f:
        return json.load(f)


def find_embedding_facts(config):
    """The ``{"model", "weights": {...}, "dim", ...}`` record of the embedding used in training, or None.

    Looks for an ``"embedding"`` dict with a ``"weights"`` entry anywhere in the run's config (train
    copies the records manifest's facts into it).
    """
    if isinstance(config, dict):
        candidate = config.get("embedding")
        if isinstance(candidate, dict) and "weights" in candidate:
            return candidate
        values = config.values()
    elif isinstance(config, list):
        values = config
    else:
        return None
    for value in values:
        found = find_embedding_facts(value)
        if found is not None:
            return found
    return None


def training_image_size(config):
    """The image size the colorizer was trained at (an ``"image_size"`` int anywhere in the config), or None."""
    if isinstance(config, dict):
        if isinstance(config.get("image_size"), int):
            return config["image_size"]
        values = config.values()
    elif isinstance(config, list):
        values = config
    else:
        return None
    for value in values:
        found = training_image_size(value)
        if found is not None:
            return found
    return None


def weights_from_facts(facts):
    """A manifest's ``weights`` record -> what ``embedding.build_inception`` takes, or None."""
    weights = (facts or {}).get("weights") or {}
    source = weights.get("source")
    if source in ("imagenet", "random"):
        return source
    if source == "file":
        return weights.get("path")
    return None


def is_saved_model(path):
    return os.path.isdir(path) and os.path.isfile(os.path.join(path, "saved_model.pb"))


def resolve_model(path):
    """``--model`` -> ``(kind, model_path, config)``: kind "keras" or "saved_model"; config a dict or None.

    A run dir is a folder holding ``model.keras`` (and ``config.json``); a SavedModel folder holds
    ``saved_model.pb`` (and ``export.json``).
    """
    if not os.path.exists(path):
        raise ModelError(f"{path}: model not found")
    if is_saved_model(path):
        info = os.path.join(path, EXPORT_INFO_NAME)
        return "saved_model", path, read_json(info) if os.path.isfile(info) else None
    if os.path.isdir(path):
        model_path = os.path.join(path, RUN_MODEL_NAME)
        if not os.path.isfile(model_path):
            raise ModelError(f"{path}: neither a run dir (no {RUN_MODEL_NAME}) nor a SavedModel (no saved_model.pb)")
    elif path.endswith(".keras"):
        model_path = path
    else:
        raise ModelError(f"{path}: expected a run dir, a .keras file or a SavedModel dir")
    config_path = os.path.join(os.path.dirname(os.path.abspath(model_path)), RUN_CONFIG_NAME)
    return "keras", model_path, read_json(config_path) if os.path.isfile(config_path) else None


def load_colorizer(model_path):
    """Load a ``.keras`` colorizer (our ``FusionLayer`` registered by importing ``koalarization.model``)."""
    import keras

    from koalarization import model as _model  # noqa: F401  (registers FusionLayer)

    try:
        return keras.saving.load_model(model_path, compile=False)
    except Exception as error:  # keras raises ValueError, OSError, zipfile errors... for a bad file
        raise ModelError(f"{model_path}: cannot load the colorizer: {error}") from None


def embedding_dim_of(colorizer):
    """The embedding size a Keras colorizer expects."""
    inputs = colorizer.input if isinstance(colorizer.input, dict) else dict(zip(colorizer.input_names, colorizer.inputs))
    return int(inputs["embedding"].shape[-1])


def check_embedding_dim(colorizer_dim, embedder_dim, facts=None, model_path="the colorizer"):
    """Raise a clear :class:`ModelError` when the colorizer was trained on another embedding."""
    if colorizer_dim == embedder_dim:
        return
    trained_on = f" (it was trained on '{facts.get('model')}' embeddings)" if facts and facts.get("model") else ""
    raise ModelError(
        f"{model_path}: the colorizer expects {colorizer_dim}-d embeddings{trained_on}, but the embedder "
        f"gives {embedder_dim}-d; it can only colorize with the embedding model it was trained on"
    )
