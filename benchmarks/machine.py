"""What the benchmarks ran on: CPU model, cores, library versions, bf16 support, load."""

import os
import platform
import sys

from koalarization import precision

BF16_FLAGS = precision.CPU_BF16_FLAGS  # native bfloat16 arithmetic (x86: AVX512-BF16 or AMX; Arm: BF16)


def _cpuinfo():
    try:
        with open("/proc/cpuinfo") as f:
            return f.read()
    except OSError:
        return ""


def cpu_model(cpuinfo=None):
    cpuinfo = _cpuinfo() if cpuinfo is None else cpuinfo
    for line in cpuinfo.splitlines():
        if line.split(":")[0].strip() in ("model name", "Hardware", "Model"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def bf16_flags(cpuinfo=None):
    """The CPU flags of the first core that mean native bf16 (empty: bf16 is emulated)."""
    return precision.cpu_bf16_flags(cpuinfo)


def bf16_native():
    """True where the bf16 goals apply: koalarization's own ``auto`` decision (CPU flags or GPU)."""
    return precision.native_bf16()[0]


def load_average():
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def describe(backend="tensorflow"):
    """A dict for the results: machine and software. ``backend="jax"`` never imports TensorFlow."""
    flags = bf16_flags()
    info = {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "bf16_supported": bool(flags),
        "bf16_flags": flags,
        "bf16_native": precision.native_bf16()[0],
        "bf16_reason": precision.native_bf16()[1],
        "python": sys.version.split()[0],
        "load_average_start": load_average(),
    }
    import keras

    info["keras"] = keras.__version__
    info["keras_backend"] = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        info["tensorflow"] = tf.__version__
        info["accelerators"] = [d.name for d in tf.config.list_physical_devices() if d.device_type != "CPU"]
    else:
        import jax

        info["jax"] = jax.__version__
        info["accelerators"] = [f"{d.platform}: {d.device_kind}" for d in jax.devices() if d.platform != "cpu"]
    return info
