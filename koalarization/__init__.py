"""koalarization: Deep Koalarization (Baldassarre et al. 2017) in Keras 3 on TensorFlow 2.

Importing the package is cheap: it does not import TensorFlow, so every command can parse its
arguments (``--help``, argument errors) before the slow imports. Each module that needs TensorFlow
calls :func:`quiet_tensorflow` first, which imports it with its C++ start-up noise (CUDA probing,
absl banners) hidden unless ``--verbose`` is on the command line or ``KOALARIZATION_VERBOSE=1`` is
set; Python warnings and errors are never hidden.
"""

import contextlib
import importlib.util
import os
import sys

__version__ = "0.1.0"


def verbose_requested():
    return bool(os.environ.get("KOALARIZATION_VERBOSE")) or "--verbose" in sys.argv[1:]


@contextlib.contextmanager
def _stderr_silenced():
    """Point file descriptor 2 at /dev/null (C++ logs bypass Python's sys.stderr)."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real fd 2 (some notebook front ends)
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    os.close(devnull)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _import_tensorflow_quietly():
    if "tensorflow" in sys.modules:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    with _stderr_silenced():
        try:
            import tensorflow as tf
        except ImportError:  # e.g. a JAX-only machine: koalarization.model.network needs no TensorFlow
            return

        tf.config.list_physical_devices()  # device probing logs happen here, once


def tensorflow_wanted():
    """False on Keras' JAX (or torch) backend or without TensorFlow: then ``koalarization.model.network``
    can still be imported (it uses only keras), e.g. by ``python -m benchmarks --gpu-jax``."""
    backend = os.environ.get("KERAS_BACKEND", "tensorflow")
    return backend == "tensorflow" and importlib.util.find_spec("tensorflow") is not None


def quiet_tensorflow():
    """Import TensorFlow (once) with its start-up noise hidden; a no-op on other Keras backends."""
    if not verbose_requested() and tensorflow_wanted():
        _import_tensorflow_quietly()


# oneDNN (TensorFlow's CPU kernels on x86) re-packs each convolution's weights into its own layout
# at every call unless told that they never change; then it packs them once per kernel. Measured on
# an AMX Xeon (Inception-ResNet-v2, one photo): bf16 83 -> 51 ms, float32 141 -> 125 ms; 3-10% at
# batch 8-16. TensorFlow reads the variable once, at the first convolution, for the whole process:
# a process that trains must never have it (its weights change every step).
FROZEN_WEIGHTS_VARIABLE = "TF_ONEDNN_ASSUME_FROZEN_WEIGHTS"


def inference_only_command():
    """Called first by the commands that only run networks and never train (``colorize``, ``video``,
    ``evaluate``, ``export``, ``tfrecords_builder``), when run as commands, not when imported: see
    ``FROZEN_WEIGHTS_VARIABLE``. A value the user set is kept."""
    os.environ.setdefault(FROZEN_WEIGHTS_VARIABLE, "1")
