"""Training figures: achieved GFLOP/s vs matmul, mixed_bfloat16 vs float32, records vs memory.

The train step is the training's own (``koalarization.train.make_steps``: the paper's Adam + MSE
under ``strategy.run``), timed step by step; each figure's two sides run in alternation and the
median step is kept, so a burst of load from another process moves both sides alike.
"""

import os
import statistics
import tempfile
import time

import keras
import numpy as np
import tensorflow as tf

from benchmarks import figure, interleaved_medians, machine
from benchmarks.flops import EMBEDDING_DIM, train_flops_per_image
from benchmarks.photos import synthetic_photos
from koalarization import colors, model, records
from koalarization import data as data_lib
from koalarization import train as train_lib

tf.get_logger().setLevel("ERROR")  # the alternating runs retrace on purpose; no warnings about it


# -- matmul --------------------------------------------------------------------------------------
def matmul_gflops(size, repeats, dtype=tf.float32):
    """The machine's matmul rate: median over ``repeats`` of one ``size x size`` product, in GFLOP/s."""
    a = tf.cast(tf.random.normal((size, size)), dtype)
    b = tf.cast(tf.random.normal((size, size)), dtype)
    product = tf.function(lambda: tf.reduce_sum(tf.cast(tf.matmul(a, b), tf.float32)))
    product()  # warm up (thread pools, tracing)
    (median,) = interleaved_medians([lambda: product().numpy()], repeats)
    return 2 * size**3 / median / 1e9


# -- synthetic data ------------------------------------------------------------------------------
def learnable_set(count, size, dim, seed=0):
    """A synthetic task the model can learn: inputs ``{"l", "embedding"}`` and scaled ab targets."""
    rng = np.random.default_rng(seed)
    lab = colors.rgb_to_lab(synthetic_photos(rng, count, size, size)).numpy()  # (N, S, S, 3)
    inputs = {
        "l": colors.scale_l(lab[..., :1]).astype(np.float32),  # (N, S, S, 1)
        "embedding": rng.normal(size=(count, dim)).astype(np.float32),  # (N, D)
    }
    return inputs, colors.scale_ab(lab[..., 1:]).astype(np.float32)  # (N, S, S, 2)


def build(policy, size=None, seed=0):
    """A colorizer built under the dtype ``policy`` (set before building, as training does), with
    the training's own step: returns ``(model, train_step)``, ``train_step(iterator) -> loss``."""
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(policy)
    try:
        keras.utils.set_random_seed(seed)
        colorizer = model.compile_colorizer(model.build_colorizer(EMBEDDING_DIM, size, size))
        colorizer.optimizer.build(colorizer.trainable_variables)
    finally:
        keras.mixed_precision.set_global_policy(previous)
    return colorizer


def train_step_of(colorizer):
    """``koalarization.train``'s step (``strategy.run`` under the default strategy)."""
    train_step, _ = train_lib.make_steps(colorizer, tf.distribute.get_strategy())
    return train_step


# -- step timing ---------------------------------------------------------------------------------
def step_times(train_step, iterator, warmup, steps):
    """Seconds of each of ``steps`` train steps, after ``warmup`` untimed steps."""
    for _ in range(warmup):
        float(train_step(iterator))
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        float(train_step(iterator))  # float(): wait for the step to finish
        times.append(time.perf_counter() - start)
    return times


def alternate_step_medians(runs, warmup, steps, rounds):
    """Median step seconds of each ``(train_step, iterator)`` in ``runs``, alternating ``rounds`` times."""
    times = [[] for _ in runs]
    for _ in range(rounds):
        for i, (train_step, iterator) in enumerate(runs):
            times[i] += step_times(train_step, iterator, warmup, steps)
    return [statistics.median(t) for t in times]


def in_memory(inputs, targets):
    """The same batch again and again, already in memory."""
    return iter(tf.data.Dataset.from_tensors((inputs, targets)).repeat())


# -- figures -------------------------------------------------------------------------------------
def precision_and_flops(sizes, log=print):
    """Figures: ``mixed_bfloat16`` vs ``float32`` step (+ loss check), achieved GFLOP/s vs matmul."""
    size, batch = sizes.train_size, sizes.train_batch
    inputs, targets = learnable_set(batch, size, EMBEDDING_DIM, seed=1)
    f32, bf16 = build("float32", size), build("mixed_bfloat16", size)
    bf16.set_weights(f32.get_weights())
    bf16_native = bool(machine.bf16_flags())
    rounds = sizes.rounds if bf16_native else 1  # emulated bf16 is several times slower: one round is enough
    log(f"train step at {size}x{size}, batch {batch}: float32 vs mixed_bfloat16")
    t_f32, t_bf16 = alternate_step_medians(
        [(train_step_of(f32), in_memory(inputs, targets)), (train_step_of(bf16), in_memory(inputs, targets))],
        sizes.warmup_steps, sizes.timed_steps, rounds,
    )
    del f32, bf16

    log("synthetic learning task in both precisions")
    loss = learning_task_losses(sizes)
    gap = abs(loss["mixed_bfloat16"] - loss["float32"]) / loss["float32"]
    loss_ok = gap <= 0.05 and loss["float32"] < 0.5 * loss["baseline"]

    note = (
        f"batch {batch} at {size}x{size}. Learning task ({sizes.task_images} synthetic photos at "
        f"{sizes.task_size}x{sizes.task_size}, {sizes.task_steps} steps from the same weights, evaluated in float32): loss "
        f"float32 {loss['float32']:.4g}, mixed_bfloat16 {loss['mixed_bfloat16']:.4g} ({100 * gap:.1f}% apart, "
        f"goal ≤ 5%), ab=0 baseline {loss['baseline']:.4g}."
    )
    if not bf16_native:
        note += (
            " This CPU has no native bf16 (no avx512_bf16/amx_bf16 flag): bf16 is emulated, so the "
            "speed-up goal does not apply here."
        )
    precision = figure(
        "mixed_bfloat16", "mixed_bfloat16 train step",
        ("mixed_bfloat16 images/s", batch / t_bf16, "img/s"), ("float32 images/s", batch / t_f32, "img/s"),
        goal=(">=", 1.8), note=note, applicable=bf16_native,
    )
    if not loss_ok:
        precision["status"] = "fail"
        precision["note"] = "LOSS CHECK FAILED. " + note

    log(f"matmul {sizes.matmul_size}x{sizes.matmul_size}, float32")
    matmul = matmul_gflops(sizes.matmul_size, sizes.matmul_repeats)
    flops = train_flops_per_image(size) * batch
    achieved = flops / t_f32 / 1e9
    gflops = figure(
        "train_gflops", "training achieved GFLOP/s (float32)",
        ("train step GFLOP/s", achieved, "GFLOP/s"), (f"float32 matmul {sizes.matmul_size}²", matmul, "GFLOP/s"),
        note=(
            f"{flops / batch / 1e9:.2f} GFLOP per image per step at {size}x{size} (3 × forward, counted "
            f"from the conv layers), batch {batch}, median step {t_f32:.3f} s; aim ≥ 0.7"
        ),
    )
    return [precision, gflops]


def learning_task_losses(sizes):
    """Final training loss of the same steps from the same weights in float32 and mixed_bfloat16."""
    n, size = sizes.task_images, sizes.task_size
    inputs, targets = learnable_set(n, size, EMBEDDING_DIM, seed=2)
    batch = min(8, n)
    losses = {"baseline": float(np.mean(targets**2))}
    weights = None
    judge = build("float32")  # both results are evaluated in float32: the weights learnt are compared
    for policy in ("float32", "mixed_bfloat16"):
        colorizer = build(policy)
        if weights is None:
            weights = colorizer.get_weights()
        colorizer.set_weights(weights)
        batches = iter(tf.data.Dataset.from_tensor_slices((inputs, targets)).batch(batch).repeat())
        step_times(train_step_of(colorizer), batches, 0, sizes.task_steps)
        judge.set_weights(colorizer.get_weights())
        predicted = np.asarray(judge(inputs, training=False))  # (N, S, S, 2), eager: no tracing
        losses[policy] = float(np.mean((predicted - targets) ** 2))
    return losses


def write_records(out_dir, count, size, dim=EMBEDDING_DIM, shards=4, seed=0):
    """``count`` synthetic examples at ``size`` in the builder's schema; returns the records dir."""
    rng = np.random.default_rng(seed)
    photos = synthetic_photos(rng, count, size, size)
    lab = colors.rgb_to_lab(photos).numpy()  # (N, S, S, 3)
    examples = [
        records.serialize_example(f"train/{i}", size, size, lab[i], rng.normal(size=dim)) for i in range(count)
    ]
    names = [records.shard_name("train", s) for s in range(shards)]
    for s, name in enumerate(names):
        records.write_shard(os.path.join(out_dir, name), examples[s::shards])
    embedding = {"model": "synthetic", "weights": {"source": "random"}, "dim": dim, "input_size": size}
    manifest = records.make_manifest(size, embedding, {"train": {"examples": count, "shards": names}})
    records.write_json_atomic(os.path.join(out_dir, records.MANIFEST_NAME), manifest)
    return out_dir


def input_pipeline(sizes, log=print):
    """Figure: train images/s reading records (``data.load_dataset``) vs the same step in memory."""
    size, batch = sizes.train_size, sizes.train_batch
    with tempfile.TemporaryDirectory(prefix="bench-records-") as tmp:
        count = batch * 4
        log(f"records: {count} examples at {size}x{size}")
        write_records(tmp, count, size)
        records_fn = lambda: data_lib.load_dataset(tmp, "train", batch, shuffle=True, repeat=True, seed=0)  # noqa: E731
        first_inputs, first_targets = next(iter(records_fn()))
        colorizer = build("float32", size)
        t_records, t_memory = alternate_step_medians(
            [
                (train_step_of(colorizer), iter(train_lib.distribute(tf.distribute.get_strategy(), records_fn()))),
                (train_step_of(colorizer), in_memory(first_inputs, first_targets)),
            ],
            sizes.warmup_steps, sizes.timed_steps, sizes.rounds,
        )
        # The pipeline alone, without training: how many images/s it can deliver on this machine.
        iterator = iter(records_fn().take(4 * sizes.timed_steps + 1))
        next(iterator)
        start = time.perf_counter()
        delivered = sum(int(x["l"].shape[0]) for x, _ in iterator)
        pipeline_rate = delivered / (time.perf_counter() - start)
    return [
        figure(
            "input_pipeline", "training images/s reading records",
            ("reading records", batch / t_records, "img/s"), ("tensors in memory", batch / t_memory, "img/s"),
            goal=(">=", 0.95),
            note=(
                f"batch {batch} at {size}x{size}; median step {t_records:.3f} s vs {t_memory:.3f} s; the "
                f"pipeline alone delivers {pipeline_rate:.0f} img/s"
            ),
        )
    ]
