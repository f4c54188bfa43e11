"""Training figures: achieved GFLOP/s vs matmul, mixed_bfloat16 vs float32, records vs memory.

The train step is the training's own (``koalarization.train.loop.make_steps``: the paper's Adam + MSE
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

from benchmarks import alternate_until_stable, figure, machine, seconds, stability_note
from benchmarks.flops import EMBEDDING_DIM, train_flops_per_image
from benchmarks.photos import synthetic_photos
from koalarization import colors, records
from koalarization.model import network as model
from koalarization.records.dataset import Records
from koalarization.train import loop as train_lib

tf.get_logger().setLevel("ERROR")  # the alternating runs retrace on purpose; no warnings about it


# -- matmul --------------------------------------------------------------------------------------
def matmul_stretch(size, dtype, seconds_target, calibration=3):
    """``(run, flops)``: ``run()`` does ``size x size`` products for about ``seconds_target`` (at least
    one, timed ``calibration`` times first), and ``flops`` is the work of one ``run()``."""
    a = tf.cast(tf.random.normal((size, size)), dtype)
    b = tf.cast(tf.random.normal((size, size)), dtype)
    product = tf.function(lambda: tf.reduce_sum(tf.cast(tf.matmul(a, b), tf.float32)))
    product()  # warm up (thread pools, tracing)
    repeats = max(1, round(seconds_target / statistics.median(seconds(lambda: product().numpy(), calibration))))

    def run():
        for _ in range(repeats):
            product().numpy()

    return run, 2 * size**3 * repeats


def achieved_vs_matmul(step, step_flops, size, dtype, sizes, step_seconds):
    """A train step's achieved GFLOP/s against a ``size``² matmul's in ``dtype``, the two timed in
    alternation (a matmul stretch about as long as a step) until their ratio is stable, so that
    the machine's load hits both alike. -> ``(step GFLOP/s, matmul GFLOP/s, alternation result)``."""
    stretch, matmul_flops = matmul_stretch(size, dtype, step_seconds, sizes.matmul_repeats)
    quick = sizes.rounds == 1
    # At least 7 rounds (3 let a stretch of a few steady rounds decide; bf16 moved 1.05-1.19 between full runs).
    result = alternate_until_stable([step, stretch], min_rounds=3 if quick else 7, max_rounds=9 if quick else 21, budget_s=20.0 if quick else 90.0, tolerance=0.05 if quick else 0.03)
    t_step, t_matmul = result["seconds"]
    return step_flops / t_step / 1e9, matmul_flops / t_matmul / 1e9, result


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
    """Figures: ``mixed_bfloat16`` vs ``float32`` step, the bf16 loss check, achieved GFLOP/s vs matmul
    in float32 and in bf16. The two steps alternate until their ratio is stable."""
    size, batch = sizes.train_size, sizes.train_batch
    inputs, targets = learnable_set(batch, size, EMBEDDING_DIM, seed=1)
    f32, bf16 = build("float32", size), build("mixed_bfloat16", size)
    bf16.set_weights(f32.get_weights())
    bf16_native = machine.bf16_native()
    steps = [(train_step_of(f32), in_memory(inputs, targets)), (train_step_of(bf16), in_memory(inputs, targets))]
    for train_step, iterator in steps:
        step_times(train_step, iterator, sizes.warmup_steps, 0)  # trace and warm up, untimed
    log(f"train step at {size}x{size}, batch {batch}: float32 vs mixed_bfloat16 (alternating until stable)")
    result = alternate_until_stable(
        [lambda: float(steps[0][0](steps[0][1])), lambda: float(steps[1][0](steps[1][1]))],
        min_rounds=3 * sizes.timed_steps if bf16_native else 2, max_rounds=6 * sizes.timed_steps,
        budget_s=60.0 if sizes.rounds == 1 else 240.0,
    )
    t_f32, t_bf16 = result["seconds"]

    log(f"train steps against matmuls {sizes.matmul_size}x{sizes.matmul_size}, float32 and bfloat16 (alternating)")
    flops = train_flops_per_image(size) * batch
    rates = {
        dtype: achieved_vs_matmul(lambda s=s: float(s[0](s[1])), flops, sizes.matmul_size, dtype, sizes, t)
        for dtype, s, t in ((tf.float32, steps[0], t_f32), (tf.bfloat16, steps[1], t_bf16))
    }
    del f32, bf16, steps

    log("synthetic learning task in both precisions")
    loss = learning_task_losses(sizes)
    gap = abs(loss["mixed_bfloat16_last"] - loss["float32_last"]) / loss["baseline"]
    learnt = loss["float32"] < 0.5 * loss["baseline"]
    not_native = (
        " This machine has no native bf16 (" + machine.precision.native_bf16()[1] + "): bf16 is emulated, so the "
        "speed goals do not apply here."
    )
    precision = figure(
        "mixed_bfloat16", "mixed_bfloat16 train step",
        ("mixed_bfloat16 images/s", batch / t_bf16, "img/s"), ("float32 images/s", batch / t_f32, "img/s"),
        goal=(">=", 2.0), ratio=result["ratio"], spread=result["spread"], applicable=bf16_native,
        note=f"batch {batch} at {size}x{size}; {stability_note(result)}." + ("" if bf16_native else not_native),
    )
    task = (
        f"{sizes.task_images} synthetic photos at {sizes.task_size}x{sizes.task_size}, {sizes.task_steps} steps from the "
        f"same weights and seed"
    )
    loss_row = figure(
        "bf16_loss", "mixed_bfloat16 training loss vs float32 (same seed)",
        ("gap of the mean loss over the last quarter of steps, bf16 vs float32", abs(loss["mixed_bfloat16_last"] - loss["float32_last"]), ""),
        ("ab=0 baseline loss", loss["baseline"], ""),
        goal=("<=", 0.05), ratio=gap,
        note=(
            f"{task}: mean training loss over the last {loss['last_steps']} steps float32 {loss['float32_last']:.4g}, "
            f"mixed_bfloat16 {loss['mixed_bfloat16_last']:.4g}; final weights evaluated in float32: "
            f"{loss['float32']:.4g} vs {loss['mixed_bfloat16']:.4g}; the gap as a fraction of the ab=0 baseline "
            f"{loss['baseline']:.4g} (goal ≤ 5%)"
            + ("" if learnt else "; FLOAT32 DID NOT LEARN (final loss not under half the baseline)")
        ),
    )
    if not learnt:
        loss_row["status"] = "fail"

    per_image = f"{flops / batch / 1e9:.2f} GFLOP per image per step at {size}x{size} (3 × forward, counted from the conv layers), batch {batch}"
    (step, matmul, alternation), (step_bf16, matmul_bf16, alternation_bf16) = rates[tf.float32], rates[tf.bfloat16]
    gflops = figure(
        "train_gflops", "training achieved GFLOP/s (float32)",
        ("train step GFLOP/s", step, "GFLOP/s"), (f"float32 matmul {sizes.matmul_size}²", matmul, "GFLOP/s"),
        goal=(">=", 0.7), spread=alternation["spread"], note=f"{per_image}; {stability_note(alternation)} (step vs a stretch of matmuls)",
    )
    gflops_bf16 = figure(
        "train_gflops_bf16", "training achieved GFLOP/s (mixed_bfloat16)",
        ("train step GFLOP/s", step_bf16, "GFLOP/s"), (f"bf16 matmul {sizes.matmul_size}²", matmul_bf16, "GFLOP/s"),
        goal=(">=", 0.5), applicable=bf16_native, spread=alternation_bf16["spread"],
        note=f"{per_image}; {stability_note(alternation_bf16)}; bf16 matmul is {matmul_bf16 / matmul:.1f}x float32's here."
        + ("" if bf16_native else not_native),
    )
    return [precision, loss_row, gflops, gflops_bf16]


def learning_task_losses(sizes):
    """Training losses of the same steps from the same weights and seed in float32 and mixed_bfloat16:
    ``<policy>_last``, the mean over the last quarter of steps (steadier than one final value), and
    ``<policy>``, the final weights evaluated in float32."""
    n, size = sizes.task_images, sizes.task_size
    inputs, targets = learnable_set(n, size, EMBEDDING_DIM, seed=2)
    batch = min(8, n)
    losses = {"baseline": float(np.mean(targets**2)), "last_steps": max(1, sizes.task_steps // 4)}
    weights = None
    judge = build("float32")  # both results are evaluated in float32: the weights learnt are compared
    for policy in ("float32", "mixed_bfloat16"):
        colorizer = build(policy)
        if weights is None:
            weights = colorizer.get_weights()
        colorizer.set_weights(weights)
        batches = iter(tf.data.Dataset.from_tensor_slices((inputs, targets)).batch(batch).repeat())
        train_step = train_step_of(colorizer)
        curve = [float(train_step(batches)) for _ in range(sizes.task_steps)]
        losses[f"{policy}_last"] = float(np.mean(curve[-losses["last_steps"]:]))
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
    """Figure: train images/s reading records (``Records.dataset``) vs the same step in memory."""
    size, batch = sizes.train_size, sizes.train_batch
    with tempfile.TemporaryDirectory(prefix="bench-records-") as tmp:
        count = batch * 4
        log(f"records: {count} examples at {size}x{size}")
        write_records(tmp, count, size)
        records_fn = lambda: Records(tmp).dataset("train", batch, shuffle=True, repeat=True, seed=0)  # noqa: E731
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
