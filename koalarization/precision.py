"""Which number format the networks run in: ``--precision float32|bfloat16|auto``, decided here only.

    from koalarization import precision
    precision.resolve("auto")            # "bfloat16" on a CPU with avx512_bf16/amx_bf16 or a GPU with
                                         # compute capability >= 8.0, else "float32"
    precision.training_policy("auto")    # the Keras dtype policy train uses: "mixed_bfloat16" or "float32"

Inference in bfloat16 (builder's embedding, colorize, evaluate, export) builds the Keras networks
under the ``bfloat16`` dtype policy (weights stored in bf16, each batch norm folded into the
convolution before it, which also spares Keras' float32 round trip around it) and casts at the
boundaries, so callers keep float32 inputs and outputs. Pure Python: the commands
decide before TensorFlow is imported (a GPU is asked about through ``nvidia-smi``, or TensorFlow if
it is already loaded).
"""

import functools
import shutil
import subprocess
import sys

CHOICES = ("float32", "bfloat16", "auto")
CPU_BF16_FLAGS = ("avx512_bf16", "amx_bf16", "bf16")  # x86: AVX512-BF16 or AMX; Arm: the BF16 extension
HELP = (
    "number format of the networks: float32, bfloat16, or auto (bfloat16 where the CPU (avx512_bf16 / "
    "amx_bf16) or GPU (compute capability >= 8.0) has it natively, else float32)"
)


def cpu_bf16_flags(cpuinfo=None):
    """The flags of the first core in ``/proc/cpuinfo`` that mean native bf16 (empty: emulated)."""
    if cpuinfo is None:
        try:
            with open("/proc/cpuinfo") as f:
                cpuinfo = f.read()
        except OSError:
            cpuinfo = ""
    for line in cpuinfo.splitlines():
        if line.split(":")[0].strip() in ("flags", "Features"):
            return sorted(set(line.split(":", 1)[1].split()) & set(CPU_BF16_FLAGS))
    return []


def _gpu_compute_capabilities():
    """Compute capabilities of the visible NVIDIA GPUs, e.g. ``[(8, 0)]`` (empty: none found)."""
    tf = sys.modules.get("tensorflow")
    if tf is not None and hasattr(tf, "config"):
        found = []
        for gpu in tf.config.list_physical_devices("GPU"):
            capability = tf.config.experimental.get_device_details(gpu).get("compute_capability")
            if capability:
                found.append(tuple(capability))
        return found
    if not shutil.which("nvidia-smi"):
        return []
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=compute_cap", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout
        return [tuple(int(part) for part in line.strip().split(".")) for line in out.splitlines() if line.strip()]
    except (OSError, subprocess.SubprocessError, ValueError):
        return []


@functools.lru_cache(maxsize=None)
def native_bf16():
    """``(True, why)`` when this machine computes bfloat16 natively, else ``(False, why)``."""
    capabilities = _gpu_compute_capabilities()
    if capabilities:
        if all(c >= (8, 0) for c in capabilities):
            return True, f"GPU compute capability {'.'.join(map(str, capabilities[0]))} (bf16 tensor cores)"
        return False, f"GPU compute capability {'.'.join(map(str, min(capabilities)))} < 8.0 (no bf16 tensor cores)"
    flags = cpu_bf16_flags()
    if flags:
        return True, f"CPU flags {', '.join(flags)}"
    return False, "no GPU and no avx512_bf16 / amx_bf16 CPU flag: bf16 would be emulated, slower than float32"


def resolve(precision):
    """``float32 | bfloat16 | auto`` -> ``float32 | bfloat16``; ValueError for anything else."""
    if precision not in CHOICES:
        raise ValueError(f"unknown precision {precision!r}; choose from {', '.join(CHOICES)}")
    if precision == "auto":
        return "bfloat16" if native_bf16()[0] else "float32"
    return precision


def training_policy(precision):
    """train's ``--precision`` (a Keras policy, or ``auto``) -> the Keras dtype policy to train under."""
    if precision == "auto":
        return "mixed_bfloat16" if native_bf16()[0] else "float32"
    return precision


def in_float32(model):
    """A Keras model -> the same network computing in float32: itself, or, when it was saved under a
    mixed policy (trained in ``mixed_bfloat16``: each layer keeps its policy in the ``.keras`` file), a
    float32 copy with its weights, so that what inference says it runs in is what it runs in."""
    if all(layer.dtype_policy.name == "float32" for layer in model.layers):
        return model
    import keras

    copy = keras.models.clone_model(model, clone_function=lambda layer: layer.__class__.from_config({**layer.get_config(), "dtype": "float32"}))
    copy.set_weights(model.get_weights())
    return copy


def in_precision(model, precision):
    """A Keras model -> the same network computing in ``precision`` ("float32": the model itself;
    "bfloat16": a copy built under the ``bfloat16`` dtype policy, its weights rounded to bf16, each
    inference-mode batch norm that follows a convolution folded into it). Its inputs are cast to
    bf16 by Keras; its outputs are bf16: cast them back where they leave."""
    if resolve(precision) == "float32":
        return model
    import keras

    folded = _foldable_batch_norms(model)  # {conv name: batch norm}
    skipped = {bn.name for bn in folded.values()}

    def clone(layer):
        if layer.name in skipped:
            return _passthrough_class()(name=layer.name, dtype="bfloat16")
        config = {**layer.get_config(), "dtype": "bfloat16"}
        if layer.name in folded:
            config["use_bias"] = True
        return layer.__class__.from_config(config)

    copy = keras.models.clone_model(model, clone_function=clone)
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer) or layer.name in skipped or not layer.weights:
            continue
        target = copy.get_layer(layer.name)
        if layer.name in folded:
            target.set_weights(_fold(layer, folded[layer.name]))
        else:
            target.set_weights(layer.get_weights())
    return copy


def _foldable_batch_norms(model):
    """``{conv layer name: the BatchNormalization right after it}`` where the conv feeds only it."""
    import keras

    outputs = {id(tensor) for tensor in model.outputs}
    found = {}
    for layer in model.layers:
        if not isinstance(layer, keras.layers.BatchNormalization) or len(layer._inbound_nodes) != 1:
            continue
        if layer.axis not in (-1, len(layer.input.shape) - 1):
            continue
        parents = [parent.operation for parent in layer._inbound_nodes[0].parent_nodes]
        conv = parents[0] if len(parents) == 1 else None
        if (
            isinstance(conv, keras.layers.Conv2D) and len(conv._inbound_nodes) == 1
            and len(conv._outbound_nodes) == 1 and id(conv.output) not in outputs
        ):  # fmt: skip
            found[conv.name] = layer
    return found


def _fold(conv, batch_norm):
    """Conv2D + inference-mode BatchNormalization -> the kernel and bias of one Conv2D."""
    import numpy as np

    kernel = conv.kernel.numpy()  # (kh, kw, Cin, Cout)
    bias = conv.bias.numpy() if conv.use_bias else 0.0
    gamma = batch_norm.gamma.numpy() if batch_norm.scale else 1.0
    beta = batch_norm.beta.numpy() if batch_norm.center else 0.0
    scale = gamma / np.sqrt(batch_norm.moving_variance.numpy() + batch_norm.epsilon)  # (Cout,)
    return [kernel * scale, (bias - batch_norm.moving_mean.numpy()) * scale + beta]


@functools.lru_cache(maxsize=None)
def _passthrough_class():  # made on first use: this module imports no Keras until then
    import keras

    class Passthrough(keras.layers.Layer):
        """Where a batch norm was folded into the convolution before it."""

        def call(self, inputs, training=None, mask=None):
            return inputs

    return Passthrough

