"""A picklable stand-in for Inception that Beam's worker processes import (tests/ is on their PYTHONPATH).

    python tests/beam_stand_in.py BUILD_FLAGS...    # python -m tfrecords_builder's flags, this embedder
"""

import os
import sys
import time

import numpy as np


CALLS = [0]


def stand_in(x):
    """(B, 299, 299, 3) -> (B, 25): a deterministic 5x5 sample of the gray input (as test_builder's).
    While the file ``$BEAM_STAND_IN_HOLD`` exists, every call after a process's first waits: each
    worker writes its first shard and stops there, so a test can kill the build halfway."""
    CALLS[0] += 1
    hold = os.environ.get("BEAM_STAND_IN_HOLD")
    while hold and CALLS[0] > 1 and os.path.exists(hold):
        time.sleep(0.1)
    return np.asarray(x)[:, ::60, ::60, 0].reshape(len(x), -1)


def tiny_inception(dim=16):
    """A seeded tiny Keras stand-in for Inception (colorize on Beam): the same network in every process."""
    import keras

    keras.utils.set_random_seed(7)
    gray = keras.Input((299, 299, 3))
    pooled = keras.layers.GlobalAveragePooling2D()(keras.layers.AveragePooling2D(8)(gray))  # (B, 3)
    return keras.Model(gray, keras.layers.Dense(dim)(pooled), name="stand_in")


if __name__ == "__main__":
    from tfrecords_builder import builder
    from tfrecords_builder.config import config_from_args

    builder.build(config_from_args(sys.argv[1:]), stand_in)
