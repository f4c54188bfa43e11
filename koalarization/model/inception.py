"""The Inception-ResNet-v2 feature extractor and where its weights come from.

The paper feeds the gray image, stacked to three channels, at 299x299 and scaled to [-1, 1], to
Inception-ResNet-v2 pre-trained on ImageNet and keeps the logits (the last layer before the
softmax). ``keras.applications`` has 1000 classes, so the embedding is 1000-d (the authors'
TF-slim checkpoint had 1001).

Weights: ``"imagenet"`` (downloaded once by Keras into ``~/.keras/models``, or taken from that
cache offline), ``"random"`` (for tests and offline demos; colours learnt with it cannot use
image semantics) or a path to a weights file (``.weights.h5`` / ``.h5``). Every output records
which one was used via :func:`describe_weights`.
"""

import hashlib
import os

from koalarization import quiet_tensorflow  # noqa: E402

quiet_tensorflow()
import keras

from koalarization import colors, errors

from koalarization.constants import EMBEDDING_DIM  # noqa: F401
IMAGENET_WEIGHTS_FILE = "inception_resnet_v2_weights_tf_dim_ordering_tf_kernels.h5"


class WeightsUnavailableError(errors.UsageError):
    """ImageNet weights are neither cached nor downloadable."""


def imagenet_weights_cached():
    """True when Keras already has the ImageNet weights of Inception-ResNet-v2 in its cache."""
    cache = os.path.join(os.environ.get("KERAS_HOME", os.path.expanduser("~/.keras")), "models")
    return os.path.exists(os.path.join(cache, IMAGENET_WEIGHTS_FILE))


def _file_digest(path, chunk=1 << 20):
    sha = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            sha.update(block)
    return sha.hexdigest()[:16]


def describe_weights(weights):
    """What to write in a manifest, config or export about the Inception weights used."""
    if weights == "random":
        return {"source": "random", "seed": RANDOM_WEIGHTS_SEED}
    if weights == "imagenet":
        return {"source": "imagenet"}
    return {"source": "file", "path": os.path.abspath(weights), "sha256_16": _file_digest(weights)}


RANDOM_WEIGHTS_SEED = 0  # "random" Inception weights are seeded, so every stage builds the same network


def _seeded_random_weights(model, seed):
    """``model`` with every weight redrawn by its layer's initializer (``kernel_initializer`` for
    ``kernel``, ...) given the seed ``seed * 100_003 + k`` for the k-th weight: an integer seed makes
    Keras draw statelessly, so the values depend on nothing but ``seed`` and the network's layout.
    Keras' own draws at build time take their seeds from Python's global ``random`` (shared with
    every other thread and library of the process), so they cannot promise that."""
    variables = [(layer, variable) for layer in model.layers for variable in layer.weights]
    for k, (layer, variable) in enumerate(variables):
        initializer = getattr(layer, f"{variable.name}_initializer", None)
        if initializer is None:
            raise RuntimeError(f"{model.name}: no initializer found for {variable.path}: cannot seed its random weights")
        config = initializer.get_config()
        if "seed" in config:  # a random one; constant ones (zeros, ones) are the same everywhere already
            seeded = type(initializer).from_config({**config, "seed": seed * 100_003 + k})
            variable.assign(seeded(variable.shape, variable.dtype))
    return model


def build_inception(weights="imagenet"):
    """Inception-ResNet-v2 with logits output, ``(B, 299, 299, 3)`` in [-1, 1] -> ``(B, 1000)``.

    ``"random"`` weights are the same network in every process (the builder's, a resumed build's,
    each Beam worker's, the colorizer's, the export's): :func:`_seeded_random_weights` draws each
    weight from its own initializer seeded by ``RANDOM_WEIGHTS_SEED`` and its place in the network,
    whatever Keras' global random state, other threads or what was built before in the process.

    Raises :class:`WeightsUnavailableError` with the ways forward when ImageNet weights can be
    neither found in the cache nor downloaded, and ``FileNotFoundError`` for a missing file.
    """
    if weights not in ("imagenet", "random"):
        if not os.path.isfile(weights):
            raise FileNotFoundError(f"{weights}: Inception weights file not found")
    keras_weights = None if weights == "random" else weights
    try:
        model = keras.applications.InceptionResNetV2(
            include_top=True,
            weights=keras_weights,
            input_shape=(colors.INCEPTION_SIZE, colors.INCEPTION_SIZE, 3),
            classifier_activation=None,
        )
        return _seeded_random_weights(model, RANDOM_WEIGHTS_SEED) if weights == "random" else model
    except Exception as error:  # keras raises a bare Exception("URL fetch failure ...") offline
        if weights != "imagenet":
            raise ValueError(f"{weights}: cannot load Inception-ResNet-v2 weights from it: {error}") from error
        raise WeightsUnavailableError(
            "ImageNet weights for Inception-ResNet-v2 are not in the Keras cache "
            f"(~/.keras/models/{IMAGENET_WEIGHTS_FILE}) and could not be downloaded ({error}). "
            "Pass --inception-weights PATH with a local weights file, or --inception-weights random "
            "to go on with random weights (the embedding then carries no ImageNet semantics)."
        ) from None


def load_inception_or_fallback(weights="imagenet", log=print):
    """Like :func:`build_inception`, but falls back to random weights offline and says so.

    Returns ``(model, weights_used)``; for the demo and the notebooks, where a result beats a stop.
    """
    try:
        return build_inception(weights), weights
    except WeightsUnavailableError:
        log(
            "ImageNet weights for Inception-ResNet-v2 are not cached and cannot be downloaded: "
            "falling back to RANDOM Inception weights (recorded in every output)."
        )
        return build_inception("random"), "random"
