"""Inception-ResNet-v2 and its weights (koalarization.model.inception). The real 55M-parameter network is
built as few times as possible: once as a module fixture, once from a weights file, once offline."""

import keras
import numpy as np
import pytest
from keras.src.utils import file_utils

from conftest import synthetic_photo
from koalarization import colors
from koalarization.model import inception as embedding

OFFLINE_ERROR = "URL fetch failure on https://storage.googleapis.com/...: None -- [Errno -3] Temporary failure in name resolution"


@pytest.fixture(scope="module")
def random_inception():
    return embedding.build_inception("random")


def test_inception_maps_gray_input_to_1000_logits(random_inception):
    model = random_inception
    assert model.input_shape == (None, colors.INCEPTION_SIZE, colors.INCEPTION_SIZE, 3)
    assert model.output_shape == (None, embedding.EMBEDDING_DIM)
    assert model.layers[-1].activation.__name__ == "linear"  # logits, not softmax


def test_weights_from_a_local_file_give_the_same_outputs(random_inception, tmp_path):
    path = str(tmp_path / "inception.weights.h5")
    random_inception.save_weights(path)
    loaded = embedding.build_inception(path)
    x = colors.inception_input(synthetic_photo(np.random.default_rng(0), 40, 60))[None]  # (1, 299, 299, 3)
    expected = np.asarray(random_inception(x, training=False))  # (1, 1000)
    np.testing.assert_allclose(np.asarray(loaded(x, training=False)), expected, rtol=1e-5, atol=1e-5)
    assert expected.shape == (1, embedding.EMBEDDING_DIM) and np.all(np.isfinite(expected))
    described = embedding.describe_weights(path)
    assert described["source"] == "file" and described["path"] == path and len(described["sha256_16"]) == 16


def test_offline_imagenet_stops_with_the_ways_forward(monkeypatch, tmp_path):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))  # an empty cache, whatever this machine has

    def no_network(*args, **kwargs):
        raise Exception(OFFLINE_ERROR)  # what keras' get_file raises without a network

    monkeypatch.setattr(file_utils, "get_file", no_network)
    assert not embedding.imagenet_weights_cached()
    with pytest.raises(embedding.WeightsUnavailableError) as error:
        embedding.build_inception("imagenet")
    message = str(error.value)
    assert "\n" not in message
    assert "--inception-weights PATH" in message and "--inception-weights random" in message


def test_missing_weights_file_is_named(tmp_path):
    path = str(tmp_path / "nowhere.weights.h5")
    with pytest.raises(FileNotFoundError, match="nowhere.weights.h5"):
        embedding.build_inception(path)


def test_fallback_to_random_says_so(monkeypatch):
    """load_inception_or_fallback (the demo's path): offline -> random weights and one log line.
    The network itself is replaced by a tiny model here; the real one is covered above."""
    built = []

    def fake_inception(weights=None, **kwargs):
        if weights == "imagenet":
            raise Exception(OFFLINE_ERROR)
        built.append(weights)
        return keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])

    monkeypatch.setattr(keras.applications, "InceptionResNetV2", fake_inception)
    logged = []
    model, used = embedding.load_inception_or_fallback("imagenet", log=logged.append)
    assert used == "random" and built == [None] and model.output_shape == (None, 2)
    assert len(logged) == 1 and "RANDOM" in logged[0]
    assert embedding.describe_weights(used)["source"] == "random"


KILLED_RANDOM_BUILD = r"""
import random, sys, threading, time
sys.path.insert(0, sys.argv[1])
import killpoint

def draw():  # whatever else the process does with Python's random numbers while Inception is built
    while True:
        random.random()
        time.sleep(0.0002)

threading.Thread(target=draw, daemon=True).start()
killpoint.install("train-00001.tfrecord:1:after")  # killed once the second of four shards is written
from koalarization import cli, errors
from tfrecords_builder import builder
from tfrecords_builder.config import BuildConfig
sys.exit(errors.command(builder.run)(cli.parse(BuildConfig, sys.argv[2:])))  # what the command runs
"""


def test_a_random_weights_build_killed_and_resumed_embeds_as_one_never_stopped(random_inception, tmp_path):
    """``--inception-weights random`` is one network in every process: the shards a killed build wrote
    and those its resumed run (a second fresh process) wrote hold the embeddings an unstopped build
    gives (here in this process, after whatever ran before), not those of two networks."""
    import os
    import subprocess
    import sys

    import tensorflow as tf
    from PIL import Image

    from koalarization import records
    from tfrecords_builder.builder import build
    from tfrecords_builder.config import BuildConfig

    photos = tmp_path / "photos"
    photos.mkdir()
    rng = np.random.default_rng(7)
    for i in range(4):
        Image.fromarray((synthetic_photo(rng, 12, 16) * 255).round().astype(np.uint8)).save(photos / f"p{i}.png")
    flags = ["--images", str(photos), "--inception-weights", "random", "--image-size", "16", "--shard-size", "1", "--batch-size", "1", "--val-fraction", "0"]
    tests = os.path.dirname(os.path.abspath(__file__))
    killed = subprocess.run([sys.executable, "-c", KILLED_RANDOM_BUILD, tests, "--out", str(tmp_path / "resumed"), *flags],
                            capture_output=True, text=True, timeout=600)  # fmt: skip
    assert killed.returncode == 9, killed.stderr[-3000:]
    assert sorted(p.name for p in (tmp_path / "resumed").glob("train-*.tfrecord")) == ["train-00000.tfrecord", "train-00001.tfrecord"]
    resumed = subprocess.run([sys.executable, "-m", "tfrecords_builder", "--out", str(tmp_path / "resumed"), *flags, "--resume"],
                             capture_output=True, text=True, timeout=600)  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    config = BuildConfig(out=str(tmp_path / "unstopped"), images=(str(photos),), image_size=16, batch_size=1, shard_size=1, val_fraction=0.0)
    build(config, embedder=random_inception, progress=False)

    def embeddings(out):
        paths = sorted(str(p) for p in (tmp_path / out).glob("train-*.tfrecord"))
        batch = next(iter(tf.data.TFRecordDataset(paths).batch(100)))
        parsed = records.parse_examples(batch, 16, embedding.EMBEDDING_DIM)
        return dict(zip(parsed["key"].numpy(), parsed["embedding"].numpy()))

    want, got = embeddings("unstopped"), embeddings("resumed")
    assert sorted(got) == sorted(want) and len(want) == 4
    scale = max(np.abs(e).max() for e in want.values())
    for key, embedded in want.items():  # another network's embeddings differ by about their own size
        np.testing.assert_allclose(got[key], embedded, rtol=0, atol=1e-4 * scale, err_msg=key)
