"""Peak-memory figures, each measured on a fresh Python process.

TensorFlow's allocations are invisible to ``tracemalloc``, so the child reports the kernel's peak
resident set size of its own address space (``VmHWM`` in ``/proc/self/status``) when it exits.
Not ``ru_maxrss`` from ``wait4``: that keeps the parent's resident size at the moment of the fork,
so every child of a big benchmark process would seem as big as its parent.
"""

import os
import subprocess
import sys
import tempfile

import numpy as np

from benchmarks import figure
from benchmarks.photos import jpeg_bytes, write_jpegs

MB = 1024 * 1024
LIMIT_BYTES = 4 * 1024**3  # colorizing a 6000x4000 photo must stay under 4 GB
BOMB_LIMIT_BYTES = 2 * 1024**3  # serving a 20000x20000 1-bit PNG must be refused under 2 GB
BYTES_PER_PIXEL_GOAL = 40  # memory of the photo itself, above the model's own (issue 11)
LARGEST_DEFAULT = (10000, 10000)  # the largest photo under the default --max-pixels (100 million)

# Runs the builder over a folder with a stand-in embedder (mean colour x a fixed matrix): the
# memory that could grow with the dataset is the builder's, not Inception's fixed ~250 MB.
BUILDER_SCRIPT = """
import sys
import numpy as np
from tfrecords_builder.config import BuildConfig
from tfrecords_builder.builder import build
photos, out, batch = sys.argv[1], sys.argv[2], int(sys.argv[3])  # argv[0] is the script
matrix = np.random.default_rng(0).normal(size=(3, 1000)).astype(np.float32)
embed = lambda x: np.asarray(x).mean(axis=(1, 2)) @ matrix  # (B, 299, 299, 3) -> (B, 1000)
build(BuildConfig(out=out, images=(photos,), inception_weights="random", batch_size=batch), embedder=embed, progress=False)
"""


# Runs a module as ``python -m`` would (or a script with -c) and writes its VmHWM (kB) at exit.
PEAK_WRAPPER = """
import atexit, os, runpy, sys
def report():
    with open("/proc/self/status") as f:
        peak_kb = next(line.split()[1] for line in f if line.startswith("VmHWM:"))
    with open(os.environ["BENCH_PEAK_FILE"], "w") as f:
        f.write(peak_kb)
atexit.register(report)
kind, target, sys.argv = sys.argv[1], sys.argv[2], sys.argv[2:]
if kind == "module":
    runpy.run_module(target, run_name="__main__", alter_sys=True)
else:
    exec(compile(target, "<benchmark>", "exec"), {"__name__": "__main__"})
"""


# Loads a SavedModel and calls serving_default on one file; "refused" for an InvalidArgumentError.
SERVE_SCRIPT = """
import sys
import tensorflow as tf
model, image = sys.argv[1], sys.argv[2]
serve = tf.saved_model.load(model).signatures["serving_default"]
try:
    png = serve(image_bytes=tf.constant([open(image, "rb").read()]))["colorized_bytes"][0]
    print("served", len(png.numpy()), "bytes of PNG")
except tf.errors.InvalidArgumentError as error:
    print("refused:", next((l for l in str(error).splitlines() if "assertion failed" in l), "InvalidArgumentError"))
"""


def peak_rss(kind, target, args, log_path):
    """Run module or script ``target`` with ``args`` in a fresh Python; return its peak RSS in bytes."""
    peak_file = log_path + ".peak"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "BENCH_PEAK_FILE": peak_file}
    with open(log_path, "w") as log:
        code = subprocess.call([sys.executable, "-c", PEAK_WRAPPER, kind, target, *args], stdout=log, stderr=subprocess.STDOUT, env=env)
    if code or not os.path.exists(peak_file):
        with open(log_path) as f:
            tail = f.read().strip().splitlines()[-1:] or ["(no output)"]
        name = target if kind == "module" else "the benchmark's script"
        raise RuntimeError(f"{name} exited with {code}: {tail[0]}")
    with open(peak_file) as f:
        return int(f.read()) * 1024


def builder_memory(sizes, log=print):
    """Figure: the builder's peak memory on many images vs on few (it must not grow with the dataset)."""
    large, small = sizes.memory_images
    batch = 32
    with tempfile.TemporaryDirectory(prefix="bench-buildmem-") as tmp:
        peaks = {}
        for count in (large, small):
            log(f"builder peak memory: {count} JPEGs of 500x375 in a fresh process")
            photos = write_jpegs(os.path.join(tmp, f"photos-{count}"), count, seed=count)
            args = [photos, os.path.join(tmp, f"records-{count}"), str(batch)]
            peaks[count] = peak_rss("script", BUILDER_SCRIPT, args, os.path.join(tmp, f"log-{count}.txt"))
    return [
        figure(
            "builder_memory", f"builder peak memory, {large} images",
            (f"peak RSS, {large} images", peaks[large] / MB, "MB"), (f"peak RSS, {small} images", peaks[small] / MB, "MB"),
            goal=("<=", 1.1),
            note=(
                f"500x375 JPEGs, batch {batch}, default shard size, a stand-in embedder (mean colour x a "
                f"1000-d matrix) so that only the builder's own memory is compared; each in a fresh process"
            ),
        )
    ]


def colorize_memory(sizes, log=print):
    """Figure: peak memory of ``python -m koalarization.colorize`` on one big photo, vs the 4 GB limit."""
    import keras

    from koalarization.model import network as model

    height, width = sizes.colorize_shape
    with tempfile.TemporaryDirectory(prefix="bench-colorizemem-") as tmp:
        model_path = os.path.join(tmp, "model.keras")
        model.build_colorizer(1000).save(model_path)
        keras.backend.clear_session()
        rng = np.random.default_rng(0)
        big = os.path.join(tmp, "big.jpg")
        with open(big, "wb") as f:
            f.write(jpeg_bytes(rng, height, width))
        small = os.path.join(tmp, "small.jpg")
        with open(small, "wb") as f:
            f.write(jpeg_bytes(rng, 224, 224))

        def colorize(photo, name):
            log(f"colorize {name} photo in a fresh process")
            args = [photo, "-o", os.path.join(tmp, name), "--model", model_path, "--inception-weights", "random"]
            if not sizes.real_inception:  # --smoke: the command with the tiny stand-in as its Inception
                from benchmarks.pipeline import COLORIZE_WITH_STAND_IN

                return peak_rss("script", COLORIZE_WITH_STAND_IN, args, os.path.join(tmp, f"log-{name}.txt"))
            return peak_rss("module", "koalarization.colorize", args, os.path.join(tmp, f"log-{name}.txt"))

        peak = colorize(big, f"{width}x{height}")
        baseline = colorize(small, "224x224") if sizes.colorize_baseline else None
        largest = None
        if baseline:  # full run: the largest photo under the default --max-pixels, too
            path = os.path.join(tmp, "largest.jpg")
            with open(path, "wb") as f:
                f.write(jpeg_bytes(rng, *LARGEST_DEFAULT))
            largest = colorize(path, "largest")
    note = "python -m koalarization.colorize with " + ("Inception-ResNet-v2 (random weights)" if sizes.real_inception else "a tiny stand-in embedder (--smoke)") + " in a fresh process"
    if baseline:
        note += (
            f"; the same command on a 224x224 photo peaks at {baseline / MB:.0f} MB, so the photo itself costs "
            f"{(peak - baseline) / MB:.0f} MB ({(peak - baseline) / (height * width):.0f} bytes per pixel)"
        )
    rows = [
        figure(
            "colorize_memory", f"colorize a {width}x{height} photo: peak memory",
            (f"peak RSS, one {width}x{height} JPEG", peak / MB, "MB"), ("limit 4 GB", LIMIT_BYTES / MB, "MB"),
            goal=("<=", 1.0),
            note=note,
        )
    ]
    if largest:
        h, w = LARGEST_DEFAULT
        rows[0]["note"] += (
            f"; the largest photo under the default --max-pixels, {w}x{h}, peaks at {largest / MB:.0f} MB: "
            f"{(largest - baseline) / (h * w):.1f} bytes per pixel above the model (goal: under {BYTES_PER_PIXEL_GOAL})"
        )
    return rows



def serving_memory(sizes, log=print):
    """Figures: serving_default's peak memory on a decompression bomb (refused) and per pixel of the
    largest photo under the default ``--max-pixels``, above the model's own memory (a 224x224 photo)."""
    import keras

    from benchmarks.pipeline import embedder
    from koalarization.model import colorizer
    from koalarization.export import savedmodel as saved_model
    from koalarization.model import network as model

    height, width = LARGEST_DEFAULT if sizes.colorize_baseline else sizes.colorize_shape
    with tempfile.TemporaryDirectory(prefix="bench-servemem-") as tmp:
        log("exporting a SavedModel for the serving memory figures")
        network = model.build_colorizer(1000)
        saved_model.export_saved_model(colorizer.Colorizer.from_keras(network, embedder(False)), os.path.join(tmp, "1"), "random")
        keras.backend.clear_session()
        rng = np.random.default_rng(0)
        files = {"small": (224, 224), "big": (height, width)}
        for name, (h, w) in files.items():
            with open(os.path.join(tmp, f"{name}.jpg"), "wb") as f:
                f.write(jpeg_bytes(rng, h, w))
        from PIL import Image

        Image.new("1", (20000, 20000)).save(os.path.join(tmp, "bomb.png"))  # 48 KB of PNG, 400 million pixels
        peaks, said = {}, {}
        for name in ("small", "big", "bomb"):
            photo = os.path.join(tmp, f"{name}.png" if name == "bomb" else f"{name}.jpg")
            log(f"serving_default on the {name} photo in a fresh process")
            log_path = os.path.join(tmp, f"log-{name}.txt")
            peaks[name] = peak_rss("script", SERVE_SCRIPT, [os.path.join(tmp, "1"), photo], log_path)
            with open(log_path) as f:
                said[name] = (f.read().strip().splitlines() or ["(nothing)"])[-1]
    if not said["bomb"].startswith("refused"):
        raise RuntimeError(f"the 20000x20000 PNG was not refused: {said['bomb']}")
    per_pixel = (peaks["big"] - peaks["small"]) / (height * width)
    return [
        figure(
            "serving_bomb_memory", "serving a 20000x20000 1-bit PNG (48 KB): refused, peak memory",
            ("peak RSS, refused with InvalidArgumentError", peaks["bomb"] / MB, "MB"),
            ("limit 2 GB", BOMB_LIMIT_BYTES / MB, "MB"),
            goal=("<=", 1.0),
            note=f"the model alone (a 224x224 JPEG) peaks at {peaks['small'] / MB:.0f} MB; the error: {said['bomb'][9:160]}",
        ),
        figure(
            "serving_bytes_per_pixel", f"serving_default on a {width}x{height} JPEG: bytes per pixel above the model",
            (f"(peak - peak at 224x224) / pixels, {width}x{height}", per_pixel, "B/px"),
            ("goal 40 bytes per pixel", BYTES_PER_PIXEL_GOAL, "B/px"),
            goal=("<=", 1.0),
            note=(
                f"peak {peaks['big'] / MB:.0f} MB vs {peaks['small'] / MB:.0f} MB for a 224x224 JPEG, each in a fresh process "
                "with only TensorFlow; a tiny stand-in embedder (Inception's memory does not grow with the photo)"
                + ("; the largest photo under the default --max-pixels" if (height, width) == LARGEST_DEFAULT else "")
            ),
        ),
    ]
