"""bfloat16 against float32 where the time goes: the builder's embedding, colorize and the SavedModel,
each timed in alternation until the ratio is stable; and what bf16 costs in accuracy.

The networks have random weights (ImageNet weights cannot be downloaded everywhere; speed does not
depend on them). Accuracy is therefore shown on those: the embeddings' relative error and top-5
agreement of random-weight Inception logits (whose classes are closer to ties than a trained
network's, so agreement is a lower bound), and colorizations of a colorizer at its random
initialisation. bf16 speed goals apply only where :func:`koalarization.precision.native_bf16`.
"""

import functools
import os
import tempfile
import time

import numpy as np
import tensorflow as tf

from benchmarks import alternate_until_stable, figure, machine, stability_note
from benchmarks.flops import EMBEDDING_DIM
from benchmarks.photos import jpeg_bytes, synthetic_photos, write_jpegs
from koalarization.model import colorizer as colorizer_lib
from koalarization import colors, precision
from koalarization.model import network as model
from koalarization.export import savedmodel as saved_model

def _native():
    native, reason = precision.native_bf16()
    return native, ("" if native else f" bf16 goal n/a on this machine: {reason}.")


@functools.lru_cache(maxsize=None)
def _embedder(real):
    from benchmarks.pipeline import embedder

    return embedder(real)


def _quick(sizes):
    return sizes.rounds == 1  # --quick and --smoke


def _budget(sizes):
    return 20.0 if _quick(sizes) else 150.0  # seconds of alternation per figure: quick / full


@functools.lru_cache(maxsize=None)
def _colorizer(real, kind):
    """The same random colorizer network and Inception, as a Colorizer in ``kind`` precision."""
    return colorizer_lib.Colorizer.from_keras(_network(), _embedder(real), colors.IMAGE_SIZE, precision=kind)


@functools.lru_cache(maxsize=None)
def _network():
    return model.build_colorizer(EMBEDDING_DIM)


# -- the builder --------------------------------------------------------------------------------
def builder_figures(sizes, log=print):
    """Figures: builder images/s in bfloat16 vs float32 (whole builds); bf16 embeddings vs float32."""
    from tfrecords_builder.config import BuildConfig
    from tfrecords_builder.builder import build

    batch = sizes.builder_batch
    count = batch if _quick(sizes) else max(batch, sizes.builder_images // batch * batch)
    inception = _embedder(sizes.real_inception)
    native, na = _native()
    with tempfile.TemporaryDirectory(prefix="bench-bf16-builder-") as tmp:
        photos = write_jpegs(os.path.join(tmp, "photos"), count)
        runs = {"float32": 0, "bfloat16": 0}

        def run_builder(kind):
            runs[kind] += 1
            config = BuildConfig(
                out=os.path.join(tmp, f"{kind}-{runs[kind]}"), images=(photos,), inception_weights="random",
                batch_size=batch, val_fraction=0.0, precision=kind,
            )
            return build(config, embedder=inception, progress=False)

        log(f"builder: {count} JPEGs of 500x375, batch {batch}, float32 vs bfloat16 (alternating)")
        manifests = [run_builder("float32"), run_builder("bfloat16")]  # warm up (traces) and check
        recorded = [m["embedding"].get("precision") for m in manifests]
        result = alternate_until_stable(
            [lambda: run_builder("float32"), lambda: run_builder("bfloat16")],
            min_rounds=3, max_rounds=5 if _quick(sizes) else 9, budget_s=_budget(sizes),
        )
    t32, t16 = result["seconds"]
    speed = figure(
        "builder_bf16", "builder images/s, bfloat16 vs float32 embedding",
        ("--precision bfloat16", count / t16, "img/s"), ("--precision float32", count / t32, "img/s"),
        goal=(">=", 1.8), ratio=result["ratio"], spread=result["spread"], applicable=native,
        note=f"{count} JPEGs of 500x375, batch {batch}, whole builds; {stability_note(result)}; manifests record {recorded}.{na}",
    )
    return [speed, embedding_accuracy(inception, sizes, log)]


def embedding_accuracy(inception, sizes, log=print):
    """Figure: relative error of bf16 embeddings against float32 ones (and top-5 agreement)."""
    rng = np.random.default_rng(3)
    count = (16 if _quick(sizes) else 32) if sizes.real_inception else 8
    photos = synthetic_photos(rng, count, colors.INCEPTION_SIZE, colors.INCEPTION_SIZE)  # (N, 299, 299, 3)
    gray = np.repeat(photos.mean(axis=-1, keepdims=True) * 2 - 1, 3, axis=-1).astype(np.float32)  # (N, 299, 299, 3)
    spec = [tf.TensorSpec([None, colors.INCEPTION_SIZE, colors.INCEPTION_SIZE, 3], tf.float32)]
    outputs = {}
    for kind in ("float32", "bfloat16"):
        network = precision.in_precision(inception, kind)
        run = tf.function(lambda x, n=network: tf.cast(n(x, training=False), tf.float32), input_signature=spec, autograph=False)
        outputs[kind] = np.concatenate([run(gray[i : i + 8]).numpy() for i in range(0, count, 8)])  # (N, D)
    a, b = outputs["float32"], outputs["bfloat16"]
    relative = np.linalg.norm(a - b, axis=1) / np.maximum(np.linalg.norm(a, axis=1), 1e-12)  # (N,)
    top = lambda y: np.argsort(-y, axis=1)[:, :5]  # noqa: E731
    top5 = float(np.mean([len(set(x) & set(y)) / 5 for x, y in zip(top(a), top(b))]))
    top1 = float(np.mean(top(a)[:, 0] == top(b)[:, 0]))
    log(f"embeddings: median relative error {np.median(relative):.4f}, top-5 overlap {top5:.3f}")
    return figure(
        "embedding_bf16", "bf16 embeddings vs float32 (relative error)",
        ("median ‖bf16 − float32‖ / ‖float32‖", float(np.median(relative)), ""), ("bound", 0.02, ""),
        goal=("<=", 1.0), ratio=float(np.median(relative)) / 0.02,
        note=(
            f"{count} synthetic photos through the same Inception (random weights: its logits are closer to "
            f"ties than ImageNet's); max relative error {relative.max():.4f}; top-5 classes shared {100 * top5:.1f}%, "
            f"top-1 equal {100 * top1:.0f}%; ratio = error / 0.02"
        ),
    )


# -- colorize -----------------------------------------------------------------------------------
def colorize_figures(sizes, log=print):
    """Figures: colorize images/s in bfloat16 vs float32 (the Colorizer colorize runs); their pixels."""
    rng = np.random.default_rng(4)
    count, (height, width) = 4 if _quick(sizes) else 8, (480, 640)
    photos = [p for p in synthetic_photos(rng, count, height, width)]  # (480, 640, 3) each
    photos = [np.clip(p + rng.normal(0, 0.03, p.shape), 0, 1).astype(np.float32) for p in photos]
    native, na = _native()
    colorizers = {k: _colorizer(sizes.real_inception, k) for k in ("float32", "bfloat16")}
    outputs = {k: [o.numpy() for o in c.colorize(photos)] for k, c in colorizers.items()}  # warm up, and the pixels
    log(f"colorize: {count} photos of {width}x{height}, float32 vs bfloat16 (alternating)")
    result = alternate_until_stable(
        [lambda: [o.numpy() for o in colorizers["float32"].colorize(photos)], lambda: [o.numpy() for o in colorizers["bfloat16"].colorize(photos)]],
        min_rounds=3, max_rounds=5 if _quick(sizes) else 9, budget_s=_budget(sizes),
    )
    t32, t16 = result["seconds"]
    speed = figure(
        "colorize_bf16", "colorize images/s, bfloat16 vs float32",
        ("--precision bfloat16", count / t16, "img/s"), ("--precision float32", count / t32, "img/s"),
        goal=(">=", 1.8), ratio=result["ratio"], spread=result["spread"], applicable=native,
        note=f"Colorizer.colorize (the colorize command's method) of {count} photos of {width}x{height} in one batch (networks at 224, recombined at full size); {stability_note(result)}.{na}",
    )
    diff = np.abs(np.stack(outputs["float32"]).astype(np.int16) - np.stack(outputs["bfloat16"]))  # (N, H, W, 3)
    p999 = [float(np.percentile(diff[..., c], 99.9)) for c in range(3)]
    accuracy = figure(
        "colorize_bf16_accuracy", "bf16 colorizations vs float32: per-channel difference, 99.9th percentile",
        ("worst channel's 99.9th percentile |bf16 − float32|", max(p999), "/255"), ("bound", 3.0, "/255"),
        goal=("<=", 1.0), ratio=max(p999) / 3.0,
        note=(
            f"R, G, B: {', '.join(f'{p:g}' for p in p999)} /255; max {int(diff.max())}/255, mean {diff.mean():.3f}/255; "
            "colorizer at its random initialisation, Inception with random weights"
        ),
    )
    return [speed, accuracy]


# -- the SavedModel -----------------------------------------------------------------------------
def savedmodel_figures(sizes, log=print):
    """Figures: serving_default bytes -> bytes in bfloat16 vs float32; images/s at batch 8 vs batch 1."""
    native, na = _native()
    quick = _quick(sizes)
    with tempfile.TemporaryDirectory(prefix="bench-bf16-export-") as tmp:
        serve, export_s = {}, {}
        for kind in ("float32", "bfloat16"):
            start = time.perf_counter()
            if quick:  # the module export saves, traced here: the same graph without the ~30 s of writing and reading it
                log(f"tracing the {kind} SavedModel's module (--quick: not written to disk)")
                module = saved_model.build_module(_colorizer(sizes.real_inception, kind))
                serve[kind] = lambda image_bytes, m=module: m.serve(image_bytes)
            else:
                log(f"exporting a {kind} SavedModel")
                path = saved_model.export_saved_model(_colorizer(sizes.real_inception, kind), os.path.join(tmp, kind, "1"), "random")
                serve[kind] = tf.saved_model.load(path).signatures["serving_default"]
            export_s[kind] = time.perf_counter() - start
        request = tf.constant([jpeg_bytes(np.random.default_rng(0), 768, 1024)])  # (1,)
        calls = {k: (lambda s=s: s(image_bytes=request)["colorized_bytes"].numpy()) for k, s in serve.items()}
        for call in calls.values():
            call()
        log("SavedModel: float32 vs bfloat16, one 1024x768 JPEG (alternating)")
        result = alternate_until_stable([calls["float32"], calls["bfloat16"]], min_rounds=3, max_rounds=6 if quick else 15, budget_s=_budget(sizes) / 2)
        t32, t16 = result["seconds"]
        rows = [
            figure(
                "savedmodel_bf16", "SavedModel bytes -> bytes, bfloat16 vs float32",
                ("export --precision bfloat16", 1 / t16, "img/s"), ("export --precision float32", 1 / t32, "img/s"),
                goal=(">=", 1.6), ratio=result["ratio"], spread=result["spread"], applicable=native,
                note=(
                    f"serving_default, one 1024x768 JPEG -> PNG per call; {stability_note(result)}; "
                    + ("the module's serve function traced in process (--quick)" if quick else "exported and loaded SavedModels")
                    + f", made in {export_s['float32']:.0f} s and {export_s['bfloat16']:.0f} s.{na}"
                ),
            )
        ]
        kind = precision.resolve("auto")
        rng = np.random.default_rng(5)
        eight = tf.constant([jpeg_bytes(rng, 480, 640) for _ in range(8)])  # (8,)
        one = eight[:1]
        batch8 = lambda: serve[kind](image_bytes=eight)["colorized_bytes"].numpy()  # noqa: E731
        batch1 = lambda: serve[kind](image_bytes=one)["colorized_bytes"].numpy()  # noqa: E731
        batch8(), batch1()
        log(f"SavedModel ({kind}): batch 8 vs batch 1 of 640x480 JPEGs (alternating)")
        per_call = alternate_until_stable(
            [lambda: [batch1() for _ in range(8)], batch8], min_rounds=2, max_rounds=3 if quick else 9, budget_s=_budget(sizes) / 2
        )
        t1, t8 = per_call["seconds"]
        rows.append(
            figure(
                "savedmodel_batch", "SavedModel images/s, batch 8 vs batch 1 (640x480 JPEGs)",
                ("batch 8", 8 / t8, "img/s"), ("batch 1 (8 calls)", 8 / t1, "img/s"),
                ratio=per_call["ratio"], spread=per_call["spread"],
                note=f"serving_default of the {kind} export (--precision auto here); {stability_note(per_call)}",
            )
        )
    return rows
