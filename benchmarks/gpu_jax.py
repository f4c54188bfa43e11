"""``--gpu-jax``: the colorizer's train step with Keras on JAX, in bf16, against the card's bf16 matmul.

For a GPU machine that has JAX but no TensorFlow: nothing here imports TensorFlow (``__main__``
sets ``KERAS_BACKEND=jax`` before Keras is imported, and ``koalarization`` skips its TensorFlow
start-up on that backend). The step is the paper's (MSE on scaled ab, Adam 1e-3) written with
Keras' stateless API under ``jax.jit``, on a batch already on the device, with the
``mixed_bfloat16`` policy (float32 weights, bf16 compute). Full size: batch 100 at 224x224.
"""

import statistics
import time

import jax
import jax.numpy as jnp
import keras
import numpy as np

from benchmarks import figure
from benchmarks.flops import EMBEDDING_DIM, train_flops_per_image
from koalarization.model import network as model

CALLS_PER_TIMING = 10  # back-to-back matmuls per timing, so dispatch overhead does not count


def matmul_tflops(size, repeats):
    """The device's bf16 matmul rate in TFLOP/s: median over ``repeats`` of 10 back-to-back products."""
    rng = np.random.default_rng(0)
    a, b = (jnp.asarray(rng.normal(size=(size, size)), jnp.bfloat16) for _ in range(2))
    product = jax.jit(lambda x, y: x @ y)
    product(a, b).block_until_ready()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(CALLS_PER_TIMING):
            c = product(a, b)
        c.block_until_ready()
        times.append((time.perf_counter() - start) / CALLS_PER_TIMING)
    return 2 * size**3 / statistics.median(times) / 1e12


def make_train_step(colorizer, optimizer):
    """``step(state, l, embedding, ab) -> (loss, state)``, jitted; ``state`` = (trainable, non-trainable, optimizer) values."""

    def loss_of(trainable, non_trainable, l, embedding, ab):
        pred, non_trainable = colorizer.stateless_call(trainable, non_trainable, {"l": l, "embedding": embedding}, training=True)
        return jnp.mean(jnp.square(pred.astype(jnp.float32) - ab)), non_trainable  # (B, S, S, 2) -> ()

    gradient = jax.value_and_grad(loss_of, has_aux=True)

    def step(state, l, embedding, ab):
        trainable, non_trainable, optimizer_state = state
        (loss, non_trainable), grads = gradient(trainable, non_trainable, l, embedding, ab)
        trainable, optimizer_state = optimizer.stateless_apply(optimizer_state, grads, trainable)
        return loss, (trainable, non_trainable, optimizer_state)

    return jax.jit(step, donate_argnums=0)


def run(sizes, log=print):
    batch, size = sizes.jax_batch, sizes.jax_size
    device = jax.devices()[0]
    where = f"{device.platform}: {getattr(device, 'device_kind', device)}"
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("mixed_bfloat16")  # before building: bf16 compute, float32 weights
    try:
        colorizer = model.build_colorizer(EMBEDDING_DIM, size, size)
    finally:
        keras.mixed_precision.set_global_policy(previous)
    optimizer = keras.optimizers.Adam(0.001)
    optimizer.build(colorizer.trainable_variables)
    state = (
        [v.value for v in colorizer.trainable_variables],
        [v.value for v in colorizer.non_trainable_variables],
        [v.value for v in optimizer.variables],
    )
    rng = np.random.default_rng(0)
    l = jnp.asarray(rng.uniform(-1, 1, (batch, size, size, 1)), jnp.float32)  # (B, S, S, 1)
    embedding = jnp.asarray(rng.normal(size=(batch, EMBEDDING_DIM)), jnp.float32)  # (B, D)
    ab = jnp.asarray(rng.uniform(-1, 1, (batch, size, size, 2)), jnp.float32)  # (B, S, S, 2)
    step = make_train_step(colorizer, optimizer)

    log(f"JAX train step, batch {batch} at {size}x{size}, mixed_bfloat16, on {where}")
    loss, state = step(state, l, embedding, ab)  # compile
    first_loss = float(loss)
    per_step = []
    for _ in range(sizes.rounds):
        start = time.perf_counter()
        for _ in range(sizes.jax_steps):
            loss, state = step(state, l, embedding, ab)
        loss.block_until_ready()
        per_step.append((time.perf_counter() - start) / sizes.jax_steps)
    t_step = statistics.median(per_step)
    if not np.isfinite(float(loss)):
        raise RuntimeError(f"the bf16 train step's loss became {float(loss)}")

    log(f"bf16 matmul {sizes.jax_matmul_size}x{sizes.jax_matmul_size}")
    matmul = matmul_tflops(sizes.jax_matmul_size, max(3, sizes.matmul_repeats))
    flops = train_flops_per_image(size) * batch
    caveat = "" if device.platform == "gpu" else f"NOT A GPU ({device.platform}): run only to exercise the mode. "
    return [
        figure(
            "gpu_jax_train_tflops", "[JAX backend, bf16] training achieved TFLOP/s",
            ("train step TFLOP/s", flops / t_step / 1e12, "TFLOP/s"),
            (f"bf16 matmul {sizes.jax_matmul_size}² (jnp)", matmul, "TFLOP/s"),
            note=(
                f"{caveat}on {where}; batch {batch} at {size}x{size}, mixed_bfloat16, jax.jit stateless Keras step; "
                f"{batch / t_step:.1f} img/s, median step {t_step * 1000:.1f} ms; "
                f"{flops / batch / 1e9:.2f} GFLOP per image per step (3 × forward, from the conv layers); "
                f"loss {first_loss:.4f} -> {float(loss):.4f}"
            ),
        )
    ]
