"""The colorizer network: the paper's layer table, any input size, save/load, the JAX backend,
and a fusion layer that really carries the embedding's information."""

import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

from koalarization.model.network import FusionLayer, build_colorizer, compile_colorizer

# The paper's table at 224x224 with a 1000-d embedding: name, kind, output shape, filters/kernel,
# stride, activation. Written from PAPER.md, not from a run.
TABLE = [
    ("encoder_conv1", "Conv2D", (112, 112, 64), 3, 2, "relu"),
    ("encoder_conv2", "Conv2D", (112, 112, 128), 3, 1, "relu"),
    ("encoder_conv3", "Conv2D", (56, 56, 128), 3, 2, "relu"),
    ("encoder_conv4", "Conv2D", (56, 56, 256), 3, 1, "relu"),
    ("encoder_conv5", "Conv2D", (28, 28, 256), 3, 2, "relu"),
    ("encoder_conv6", "Conv2D", (28, 28, 512), 3, 1, "relu"),
    ("encoder_conv7", "Conv2D", (28, 28, 512), 3, 1, "relu"),
    ("encoder_conv8", "Conv2D", (28, 28, 256), 3, 1, "relu"),
    ("fusion", "FusionLayer", (28, 28, 1256), None, None, None),
    ("fusion_conv", "Conv2D", (28, 28, 256), 1, 1, "relu"),
    ("decoder_conv1", "Conv2D", (28, 28, 128), 3, 1, "relu"),
    ("decoder_up1", "UpSampling2D", (56, 56, 128), None, None, None),
    ("decoder_conv2", "Conv2D", (56, 56, 64), 3, 1, "relu"),
    ("decoder_conv3", "Conv2D", (56, 56, 64), 3, 1, "relu"),
    ("decoder_up2", "UpSampling2D", (112, 112, 64), None, None, None),
    ("decoder_conv4", "Conv2D", (112, 112, 32), 3, 1, "relu"),
    ("decoder_conv5", "Conv2D", (112, 112, 2), 3, 1, "tanh"),
    ("ab", "UpSampling2D", (224, 224, 2), None, None, None),
]


@pytest.fixture(scope="module")
def model_224():
    return build_colorizer(1000, 224, 224)


def test_layer_table_matches_the_paper(model_224):
    layers = [layer for layer in model_224.layers if not isinstance(layer, keras.layers.InputLayer)]
    assert [layer.name for layer in layers] == [row[0] for row in TABLE]
    for layer, (name, kind, shape, kernel, stride, activation) in zip(layers, TABLE):
        assert type(layer).__name__ == kind, name
        assert tuple(layer.output.shape[1:]) == shape, name
        if kind == "Conv2D":
            assert layer.kernel_size == (kernel, kernel), name
            assert layer.strides == (stride, stride), name
            assert layer.padding == "same", name
            assert layer.activation.__name__ == activation, name
        if kind == "UpSampling2D":
            assert layer.size == (2, 2) and layer.interpolation == "nearest", name
    kinds = {type(layer).__name__ for layer in model_224.layers}
    assert not kinds & {"BatchNormalization", "Dropout", "Lambda"}  # the paper has none; Lambda does not serialize
    assert sorted(i.name for i in model_224.inputs) == ["embedding", "l"]
    assert tuple(model_224.output.shape) == (None, 224, 224, 2)


@pytest.mark.parametrize("dim, params", [(1000, 6_573_794), (1001, 6_574_050)])
def test_parameter_count(dim, params):
    model = build_colorizer(dim)
    assert model.count_params() == params
    assert sum(int(np.prod(w.shape)) for w in model.trainable_weights) == params


@pytest.mark.parametrize("height, width", [(224, 224), (64, 64), (320, 480)])
def test_one_model_runs_at_any_size(height, width):
    model = build_colorizer(16)  # H, W left open
    rng = np.random.default_rng(0)
    l = rng.uniform(-1, 1, (2, height, width, 1)).astype("float32")
    ab = keras.ops.convert_to_numpy(model({"l": l, "embedding": rng.normal(size=(2, 16)).astype("float32")}))
    assert ab.shape == (2, height, width, 2)
    assert np.all(np.abs(ab) <= 1.0) and np.all(np.isfinite(ab))


def test_fusion_repeats_the_embedding_at_every_position():
    rng = np.random.default_rng(1)
    features = rng.normal(size=(2, 3, 5, 4)).astype("float32")
    embedding = rng.normal(size=(2, 6)).astype("float32")
    fused = keras.ops.convert_to_numpy(FusionLayer()([features, embedding]))
    assert fused.shape == (2, 3, 5, 10)
    np.testing.assert_array_equal(fused[..., :4], features)
    for i in range(3):
        for j in range(5):
            np.testing.assert_array_equal(fused[:, i, j, 4:], embedding)
    clone = FusionLayer.from_config(FusionLayer(name="f").get_config())
    assert isinstance(clone, FusionLayer) and clone.name == "f"


def test_keras_save_and_load_give_identical_outputs(tmp_path):
    model = compile_colorizer(build_colorizer(16), 0.001)
    model.optimizer.build(model.trainable_variables)
    rng = np.random.default_rng(2)
    inputs = {"l": rng.uniform(-1, 1, (2, 48, 40, 1)).astype("float32"), "embedding": rng.normal(size=(2, 16)).astype("float32")}
    path = str(tmp_path / "colorizer.keras")
    model.save(path)
    loaded = keras.models.load_model(path)  # no custom_objects: FusionLayer is registered
    assert isinstance(loaded.get_layer("fusion"), FusionLayer)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(model(inputs)), keras.ops.convert_to_numpy(loaded(inputs)))


def test_one_training_step_on_the_jax_backend_without_tensorflow():
    code = textwrap.dedent(
        """
        import sys
        sys.modules["tensorflow"] = None  # any `import tensorflow` now fails: the model needs none
        import json, keras, numpy as np
        assert keras.backend.backend() == "jax", keras.backend.backend()
        from koalarization.model.network import build_colorizer, compile_colorizer
        model = compile_colorizer(build_colorizer(8), 0.001)
        rng = np.random.default_rng(0)
        x = {"l": rng.uniform(-1, 1, (2, 16, 24, 1)).astype("float32"),
             "embedding": rng.normal(size=(2, 8)).astype("float32")}
        y = rng.uniform(-0.5, 0.5, (2, 16, 24, 2)).astype("float32")
        before = model.get_weights()
        loss = float(model.train_on_batch(x, y))
        changed = sum(not np.array_equal(a, b) for a, b in zip(before, model.get_weights()))
        print("RESULT", json.dumps({"loss": loss, "changed": changed, "total": len(before)}))
        """
    )
    env = {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert lines, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads(lines[-1][len("RESULT ") :])
    assert np.isfinite(result["loss"])
    assert result["changed"] == result["total"]  # every weight moved: gradients reached the whole network


def _two_class_set(rng, n, size=16, dim=8):
    """Luminance drawn from one distribution for both classes; the colour (ab) is the class's;
    only the embedding (a noisy class code) tells the classes apart."""
    labels = rng.integers(0, 2, n)
    l = rng.uniform(-1, 1, (n, size, size, 1)).astype("float32")  # same statistics for both classes
    colour = np.array([[0.4, -0.3], [-0.4, 0.3]], dtype="float32")[labels]  # (n, 2)
    ab = np.broadcast_to(colour[:, None, None, :], (n, size, size, 2)).copy()
    codes = np.eye(dim, dtype="float32")[labels] * 2.0 + rng.normal(scale=0.1, size=(n, dim)).astype("float32")
    return l, codes, ab


def _train_and_score(l, embedding, ab, test, steps, batch=8, seed=0):
    keras.utils.set_random_seed(seed)
    model = compile_colorizer(build_colorizer(embedding.shape[1]), 0.001)
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        idx = rng.integers(0, len(l), batch)
        model.train_on_batch({"l": l[idx], "embedding": embedding[idx]}, ab[idx])
    test_l, test_embedding, test_ab = test
    pred = keras.ops.convert_to_numpy(model.predict({"l": test_l, "embedding": test_embedding}, verbose=0))
    return float(np.mean((pred - test_ab) ** 2))


def test_fusion_carries_the_embedding_information():
    rng = np.random.default_rng(3)
    l, codes, ab = _two_class_set(rng, 256)
    test_l, test_codes, test_ab = _two_class_set(rng, 64)
    baseline = float(np.mean((test_ab - ab.mean(axis=(0, 1, 2))) ** 2))  # predict the mean colour

    with_embedding = _train_and_score(l, codes, ab, (test_l, test_codes, test_ab), steps=25)
    without = _train_and_score(l, np.zeros_like(codes), ab, (test_l, np.zeros_like(test_codes), test_ab), steps=25)

    assert with_embedding < 0.1 * baseline, (with_embedding, baseline)
    assert without > 0.7 * baseline, (without, baseline)  # luminance alone cannot tell the colours
