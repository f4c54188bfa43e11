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
