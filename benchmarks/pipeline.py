"""Figures of the stages around the network: the builder vs Inception alone, the SavedModel vs its
two networks alone.

Inception-ResNet-v2 is built once per run with random weights (the speed does not depend on the
weights, and ImageNet weights cannot be downloaded everywhere); the hidden ``--smoke`` size uses a
tiny stand-in instead.
"""

import functools
import os
import tempfile
import time

import keras
import numpy as np
import tensorflow as tf

from benchmarks import figure, interleaved_medians, seconds
from benchmarks.flops import EMBEDDING_DIM
from benchmarks.photos import jpeg_bytes, write_jpegs
from koalarization.export import savedmodel as saved_model
from koalarization import colors
from koalarization.model import inception as embedding
from koalarization.model import network as model


@functools.lru_cache(maxsize=None)
def embedder(real):
    """Inception-ResNet-v2 with random weights, or (``real=False``) a tiny stand-in of the same interface."""
    if real:
        return embedding.build_inception("random")
    size = colors.INCEPTION_SIZE
    x = keras.Input((size, size, 3))
    pooled = keras.layers.GlobalAveragePooling2D()(keras.layers.AveragePooling2D(13)(x))  # (B, 3)
    return keras.Model(x, keras.layers.Dense(EMBEDDING_DIM)(pooled), name="stand_in_embedder")


# The same stand-in built in a fresh process (``stand_in``): --smoke's commands that would otherwise
# build Inception-ResNet-v2 for a run dir get it as their ``inception`` (the scripts below).
STAND_IN_SOURCE = f"""
import keras
x = keras.Input(({colors.INCEPTION_SIZE}, {colors.INCEPTION_SIZE}, 3))
pooled = keras.layers.GlobalAveragePooling2D()(keras.layers.AveragePooling2D(13)(x))
stand_in = keras.Model(x, keras.layers.Dense({EMBEDDING_DIM})(pooled), name="stand_in_embedder")
"""
# ``python -m koalarization.colorize ARGS`` with that stand-in as its Inception.
COLORIZE_WITH_STAND_IN = (
    "import sys\nimport koalarization\nkoalarization.inference_only_command()\n" + STAND_IN_SOURCE
    + "from koalarization.colorize.files import main\nsys.exit(main(sys.argv[1:], inception=stand_in))\n"
)


def _embedder_name(sizes):
    return "Inception-ResNet-v2 (random weights)" if sizes.real_inception else "a tiny stand-in embedder (--smoke)"


def builder_throughput(sizes, log=print):
    """Figure: builder images/s vs Inception forward alone at the same batch size."""
    from tfrecords_builder.config import BuildConfig
    from tfrecords_builder.builder import build

    batch = sizes.builder_batch
    count = max(batch, sizes.builder_images // batch * batch)  # whole batches only: no retracing
    inception = embedder(sizes.real_inception)
    with tempfile.TemporaryDirectory(prefix="bench-builder-") as tmp:
        photos = write_jpegs(os.path.join(tmp, "photos"), count)
        x = np.random.default_rng(0).uniform(-1, 1, (batch, 299, 299, 3)).astype(np.float32)
        inception.predict_on_batch(x)  # warm up

        def run_builder(embed, name):
            config = BuildConfig(
                out=os.path.join(tmp, name), images=(photos,), inception_weights="random",
                batch_size=batch, val_fraction=0.0,
            )
            return seconds(lambda: build(config, embedder=embed, progress=False), 1)[0]

        log(f"builder: {count} JPEGs of 500x375, batch {batch}, {_embedder_name(sizes)}")
        alone, builder = [], []
        for round_ in range(sizes.rounds):
            alone += seconds(lambda: [inception.predict_on_batch(x) for _ in range(count // batch)], 1)
            builder.append(run_builder(inception, f"records-{round_}"))
        # The preparation alone (decode, Lab, letterbox), with an embedder that costs nothing.
        prep = run_builder(lambda b: np.zeros((len(b), EMBEDDING_DIM), np.float32), "records-prep")
    t_alone, t_builder = float(np.median(alone)), float(np.median(builder))
    return [
        figure(
            "builder_throughput", "builder images/s",
            ("builder, whole build", count / t_builder, "img/s"),
            ("Inception forward alone, same batch", count / t_alone, "img/s"),
            goal=(">=", 0.9),
            note=(
                f"{count} JPEGs of 500x375, batch {batch}, {_embedder_name(sizes)}; the builder's decode + "
                f"Lab + letterbox alone (no embedding) runs at {count / prep:.0f} img/s, and shares the "
                "same cores with Inception"
            ),
        )
    ]


@functools.lru_cache(maxsize=None)
def model_sources(real, size=224):
    """``(run dir, SavedModel dir, export seconds)`` of a random colorizer at ``size`` with :func:`embedder`
    (the run's config records random Inception weights), made once per process (the SavedModel and
    speed figures share it) in a folder removed at exit."""
    import atexit
    import json
    import shutil

    folder = tempfile.mkdtemp(prefix="bench-models-")
    atexit.register(shutil.rmtree, folder, True)
    run = os.path.join(folder, "run")
    os.makedirs(run)
    network = model.build_colorizer(EMBEDDING_DIM)
    network.save(os.path.join(run, "model.keras"))
    config = {"records": {"image_size": size, "embedding": {"model": "inception_resnet_v2", "weights": {"source": "random"}, "dim": EMBEDDING_DIM}}}
    with open(os.path.join(run, "config.json"), "w") as f:
        json.dump(config, f)
    start = time.perf_counter()
    saved = saved_model.export_saved_model(network, os.path.join(folder, "1"), "random", inception=embedder(real), config=config)
    return run, saved, time.perf_counter() - start


def savedmodel_latency(sizes, log=print):
    """Figure: the SavedModel's ``serving_default`` on one 1024x768 JPEG vs its two networks alone."""
    log(f"exporting a SavedModel with {_embedder_name(sizes)} (once per run: the speed figures use it too)")
    size = sizes.colorizer_size
    _, path, export_seconds = model_sources(sizes.real_inception, size)
    loaded = tf.saved_model.load(path)
    serve, embed, colorize_lab = (loaded.signatures[k] for k in ("serving_default", "embed", "colorize_lab"))

    request = tf.constant([jpeg_bytes(np.random.default_rng(0), 768, 1024)])  # (1,)
    gray = tf.random.uniform((1, 299, 299, 3), -1.0, 1.0)
    l = tf.random.uniform((1, size, size, 1), -1.0, 1.0)

    def bytes_to_bytes():
        return serve(image_bytes=request)["colorized_bytes"].numpy()

    def networks_alone():
        vectors = embed(inception_input=gray)["embedding"]  # (1, D)
        return colorize_lab(l=l, embedding=vectors)["ab"].numpy()  # (1, size, size, 2)

    out_shape = tf.io.decode_png(bytes_to_bytes()[0]).shape
    if tuple(out_shape) != (768, 1024, 3):
        raise RuntimeError(f"serving_default returned a {tuple(out_shape)} PNG for a 768x1024x3 JPEG")
    networks_alone()
    t_bytes, t_networks = interleaved_medians([bytes_to_bytes, networks_alone], sizes.export_repeats)
    return [
        figure(
            "savedmodel_latency", "SavedModel, one 1024x768 JPEG, bytes in -> bytes out",
            ("serving_default, JPEG bytes -> PNG bytes", t_bytes, "s"),
            (f"Inception forward + colorizer forward at {size} (its embed and colorize_lab signatures)", t_networks, "s"),
            goal=("<=", 1.15),
            note=(
                f"median of {sizes.export_repeats} calls each, alternating, batch 1, {_embedder_name(sizes)}; "
                f"the export took {export_seconds:.0f} s"
            ),
        )
    ]
