"""What the benchmarks ran on: CPU model, cores, library versions, bf16 support, load."""

import os
import platform
import sys

# CPU flags meaning native bfloat16 arithmetic (x86: AVX512-BF16 or AMX; Arm: the BF16 extension).
BF16_FLAGS = ("avx512_bf16", "amx_bf16", "bf16")


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
    cpuinfo = _cpuinfo() if cpuinfo is None else cpuinfo
    for line in cpuinfo.splitlines():
        if line.split(":")[0].strip() in ("flags", "Features"):
            return sorted(set(line.split(":", 1)[1].split()) & set(BF16_FLAGS))
    return []


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
