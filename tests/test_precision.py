"""``--precision float32|bfloat16|auto``: who decides ``auto``, and that every door runs in the precision
asked for and records it (builder manifest, train's config.json, export.json, metrics.json), with
float32 inputs and outputs and pixels within 3/255 of float32. Stand-in networks keep it fast; the
real Inception in bf16 is measured in ``benchmarks`` (``embedding_bf16``, ``colorize_bf16_accuracy``).
"""

import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import write_synthetic_records
from test_builder import read_records, save_photos
from test_colorize import stand_in_embedder, tinted_colorizer, write_run_dir

from koalarization import precision
from koalarization.colorize import files as colorize
from koalarization.model import colorizer
from koalarization.model import inception as embedding
from koalarization.evaluate import scoring as evaluate
from koalarization.export import savedmodel as export
from koalarization.train.trainer import TrainConfig, train
from tfrecords_builder.config import BuildConfig
from tfrecords_builder.builder import build

XEON = "processor\t: 0\nmodel name\t: Intel(R) Xeon(R)\nflags\t\t: fpu sse avx512f avx512_bf16 amx_bf16 amx_tile\n"
EPYC = "processor\t: 0\nmodel name\t: AMD EPYC\nflags\t\t: fpu sse avx2 avx512f\n"


@pytest.mark.parametrize(
    "cpuinfo, gpus, native",
    [(XEON, [], True), (EPYC, [], False), (EPYC, [(8, 0)], True), (XEON, [(7, 5)], False)],
)
def test_auto_is_bf16_only_where_the_hardware_has_it(cpuinfo, gpus, native, monkeypatch):
    read = precision.cpu_bf16_flags
    monkeypatch.setattr(precision, "cpu_bf16_flags", lambda: read(cpuinfo))
    monkeypatch.setattr(precision, "_gpu_compute_capabilities", lambda: gpus)
    decided, reason = precision.native_bf16.__wrapped__()
    assert decided is native and reason
    monkeypatch.setattr(precision, "native_bf16", lambda: (decided, reason))
    assert precision.resolve("auto") == ("bfloat16" if native else "float32")
    assert precision.training_policy("auto") == ("mixed_bfloat16" if native else "float32")
    assert precision.resolve("float32") == "float32" and precision.training_policy("mixed_float16") == "mixed_float16"
    with pytest.raises(ValueError, match="unknown precision"):
        precision.resolve("float16")


def test_cpu_flags_are_read_from_cpuinfo():
    assert precision.cpu_bf16_flags(XEON) == ["amx_bf16", "avx512_bf16"]
    assert precision.cpu_bf16_flags(EPYC) == []


def test_bfloat16_colorizer_keeps_float32_io_and_its_pixels():
    network, inception = tinted_colorizer(16), stand_in_embedder(16)
    rgb = np.random.default_rng(0).random((45, 70, 3)).astype(np.float32)
    f32 = colorizer.Colorizer.from_keras(network, inception, 64)
    bf16 = colorizer.Colorizer.from_keras(network, inception, 64, precision="bfloat16")
    assert (f32.precision, bf16.precision) == ("float32", "bfloat16")
    computing = [layer for net in bf16.networks for layer in net.layers if not isinstance(layer, keras.layers.InputLayer)]
    assert {layer.compute_dtype for layer in computing} == {"bfloat16"}
    assert network.layers[1].compute_dtype == "float32"  # the caller's network is left as it was
    assert bf16.embed(tf.zeros([2, 299, 299, 3])).dtype == tf.float32
    a, b = f32.colorize([rgb])[0].numpy(), bf16.colorize([rgb])[0].numpy()
    assert b.shape == a.shape == (45, 70, 3) and b.dtype == np.uint8
    diff = np.abs(a.astype(int) - b.astype(int))
    assert np.percentile(diff, 99.9) <= 3, diff.max()


@pytest.fixture
def stand_in_inception(monkeypatch):
    inception = stand_in_embedder(16)  # one network: "random" weights are the same in every stage
    monkeypatch.setattr(embedding, "build_inception", lambda weights="imagenet": inception)
    monkeypatch.setattr(embedding, "EMBEDDING_DIM", 16)


def test_export_colorize_and_evaluate_in_bfloat16_record_it(stand_in_inception, tmp_path, capsys):
    run_dir = write_run_dir(tmp_path / "run", tinted_colorizer(16))
    out = tmp_path / "models" / "1"
    assert export.main(["--model", run_dir, "--out", str(out), "--precision", "bfloat16"]) == 0
    assert json.load(open(out / colorizer.EXPORT_INFO_NAME))["precision"] == "bfloat16"
    loaded = tf.saved_model.load(str(out))
    assert sorted(loaded.signatures) == ["colorize_lab", "embed", "serving_default"]
    lab = loaded.signatures["colorize_lab"]
    assert {spec.dtype for spec in lab.structured_input_signature[1].values()} == {tf.float32}
    assert lab(l=tf.zeros([1, 16, 16, 1]), embedding=tf.zeros([1, 16]))["ab"].dtype == tf.float32
    assert {v.dtype for v in loaded.colorizer_variables} == {tf.bfloat16}  # the weights inside are bf16: half the size

    photo = tmp_path / "in" / "photo.png"
    photo.parent.mkdir()
    keras.utils.save_img(str(photo), np.random.default_rng(1).random((40, 56, 3)))
    assert colorize.main([str(photo), "-o", str(tmp_path / "c"), "--model", str(out), "--precision", "float32"]) == 2
    assert "runs in bfloat16" in capsys.readouterr().err
    assert colorize.main([str(photo), "-o", str(tmp_path / "c"), "--model", str(out)]) == 0
    served = keras.utils.img_to_array(keras.utils.load_img(str(tmp_path / "c" / "photo.png")))
    assert colorize.main([str(photo), "-o", str(tmp_path / "k"), "--model", run_dir, "--precision", "bfloat16"]) == 0
    keras_bf16 = keras.utils.img_to_array(keras.utils.load_img(str(tmp_path / "k" / "photo.png")))
    assert np.percentile(np.abs(served - keras_bf16), 99.9) <= 3  # the same method in the same precision

    assert evaluate.main(["--model", str(out), "--images", str(photo), "-o", str(tmp_path / "e")]) == 0
    assert json.load(open(tmp_path / "e" / "metrics.json"))["precision"] == "bfloat16"
    assert evaluate.main(["--model", run_dir, "--images", str(photo), "-o", str(tmp_path / "e32")]) == 0
    assert json.load(open(tmp_path / "e32" / "metrics.json"))["precision"] == "float32"


def test_builder_embeds_in_bfloat16_and_records_it(tmp_path):
    photos = save_photos(str(tmp_path / "photos"), 6, size=(24, 32))
    inception = stand_in_embedder(16)
    vectors = {}
    for kind in ("float32", "bfloat16"):
        config = BuildConfig(out=str(tmp_path / kind), images=(photos,), image_size=16, batch_size=4, val_fraction=0.0, precision=kind)
        manifest = build(config, embedder=inception, progress=False)
        assert manifest["embedding"]["precision"] == kind and manifest["config"]["precision"] == kind
        examples = read_records(str(tmp_path / kind))
        vectors[kind] = np.stack([examples[k]["embedding"] for k in sorted(examples)])  # (6, 16)
    error = np.linalg.norm(vectors["bfloat16"] - vectors["float32"]) / np.linalg.norm(vectors["float32"])
    assert 0 < error < 0.02  # bf16 really ran, and stayed close


def test_train_auto_trains_in_mixed_bfloat16_where_native_and_records_it(tmp_path, monkeypatch):
    records = str(tmp_path / "records")
    write_synthetic_records(records, n_train=8, n_val=0, image_size=16)
    monkeypatch.setattr(precision, "native_bf16", lambda: (True, "test: as on a CPU with amx_bf16"))
    config = TrainConfig.with_preset("smoke", records=records, run_dir=str(tmp_path / "run"), epochs=1, steps_per_epoch=2,
                                     precision="auto", export=False)  # fmt: skip
    result = train(config, log=lambda *a, **k: None)
    saved = json.load(open(os.path.join(result.run_dir, "config.json")))
    assert saved["config"]["precision"] == "auto" and saved["precision"] == "mixed_bfloat16"
    assert result.model.get_layer("encoder_conv1").compute_dtype == "bfloat16"
    assert np.isfinite(result.history["loss"]).all()
    assert keras.mixed_precision.global_policy().name == "float32"  # restored after training

    # The saved model keeps its layers' mixed policy; loaded for colorize, it computes in what it says.
    loaded = colorizer.Colorizer.load(result.run_dir, embedder=False, log=lambda *a, **k: None)
    network = loaded.networks[0]
    assert loaded.precision == "float32" and {layer.compute_dtype for layer in network.layers} == {"float32"}
    inputs = {"l": np.random.default_rng(0).uniform(-1, 1, (2, 16, 16, 1)), "embedding": np.ones((2, network.input["embedding"].shape[-1]))}
    trained = result.model(inputs, training=False)  # mixed_bfloat16
    assert 0 < float(np.abs(np.asarray(network(inputs, training=False)) - np.asarray(trained, np.float32)).max()) < 0.05


def test_bfloat16_copy_folds_batch_norm_into_its_convolution_and_keeps_the_output():
    x = keras.Input((12, 12, 3))
    y = keras.layers.Conv2D(8, 3, use_bias=False)(x)
    y = keras.layers.BatchNormalization(scale=False)(y)
    shared = keras.layers.Conv2D(4, 1)(y)  # feeds two layers: its batch norm must stay
    z = keras.layers.BatchNormalization()(shared)
    network = keras.Model(x, [keras.layers.Activation("relu")(z), shared])
    rng = np.random.default_rng(0)
    for layer in network.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            n = layer.moving_mean.shape[0]
            layer.moving_mean.assign(rng.normal(0, 0.5, n))
            layer.moving_variance.assign(rng.uniform(0.3, 2.0, n))
    copy = precision.in_precision(network, "bfloat16")
    assert sum(isinstance(layer, keras.layers.BatchNormalization) for layer in copy.layers) == 1
    inputs = rng.normal(size=(2, 12, 12, 3)).astype(np.float32)
    for want, got in zip(network(inputs), copy(inputs)):
        want, got = np.asarray(want), np.asarray(tf.cast(got, tf.float32))
        assert np.linalg.norm(got - want) / np.linalg.norm(want) < 0.02


# -- oneDNN packs the weights once in the commands that never train ---------------------------------
ENVIRONMENT_OF = """
import importlib, os, runpy, sys
module = sys.argv[1]
importlib.import_module(module)
print(os.environ.get("TF_ONEDNN_ASSUME_FROZEN_WEIGHTS", "unset"))  # imported (tests, notebooks): nothing changes
sys.argv = [module, "--help"]
try:
    runpy.run_module(module, run_name="__main__")
except SystemExit:
    pass
print(os.environ.get("TF_ONEDNN_ASSUME_FROZEN_WEIGHTS", "unset"))  # run as the command
"""


@pytest.mark.parametrize(
    "module, frozen",
    [("koalarization.colorize", "1"), ("koalarization.video", "1"), ("koalarization.evaluate", "1"),
     ("koalarization.export", "1"), ("tfrecords_builder", "1"), ("koalarization.train", "unset"), ("koalarization.demo", "unset")],
)  # fmt: skip
def test_only_the_commands_that_never_train_tell_onednn_the_weights_are_frozen(module, frozen):
    """TensorFlow reads TF_ONEDNN_ASSUME_FROZEN_WEIGHTS once per process: set in a process that trains,
    every step would run on the weights packed at the first one. Set only as a command (not on import)."""
    import subprocess
    import sys

    environment = {k: v for k, v in os.environ.items() if k != "TF_ONEDNN_ASSUME_FROZEN_WEIGHTS"}
    done = subprocess.run([sys.executable, "-c", ENVIRONMENT_OF, module], capture_output=True, text=True, timeout=120, env=environment)
    assert [line for line in done.stdout.splitlines() if line in ("1", "unset")][-2:] == ["unset", frozen], (done.stdout[-1000:], done.stderr[-2000:])


COLORIZE_FROZEN = """
import sys
import numpy as np
import koalarization
koalarization.inference_only_command()
import keras
from koalarization.model import colorizer
network, embedder = colorizer.load_keras_network(sys.argv[1]), keras.saving.load_model(sys.argv[2])
rgb = np.load(sys.argv[3])
for precision in ("float32", "bfloat16"):
    model = colorizer.Colorizer.from_keras(network, embedder, 64, precision=precision)
    for _ in range(3):  # the first call packs the weights, the next ones use them
        out = model.colorize([rgb])[0].numpy()
    np.save(sys.argv[4] + precision + ".npy", out)
"""


def test_weights_packed_once_give_the_same_picture(tmp_path):
    """colorize, the builder and the server's users run with oneDNN's packed weights; training and this
    test process without: both must give the same colours (within 1/255), in float32 and bfloat16."""
    import subprocess
    import sys

    network, embedder = tinted_colorizer(16), stand_in_embedder(16)
    network.save(tmp_path / "colorizer.keras")
    embedder.save(tmp_path / "embedder.keras")
    rgb = np.random.default_rng(0).random((45, 70, 3)).astype(np.float32)
    np.save(tmp_path / "rgb.npy", rgb)
    argv = [str(tmp_path / name) for name in ("colorizer.keras", "embedder.keras", "rgb.npy", "frozen-")]
    done = subprocess.run([sys.executable, "-c", COLORIZE_FROZEN, *argv], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    for precision in ("float32", "bfloat16"):
        here = colorizer.Colorizer.from_keras(network, embedder, 64, precision=precision).colorize([rgb])[0].numpy()
        packed = np.load(tmp_path / f"frozen-{precision}.npy")
        assert np.abs(here.astype(int) - packed.astype(int)).max() <= 1, precision
