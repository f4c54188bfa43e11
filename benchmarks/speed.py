"""Figures of ``colorize`` and serving against their own two networks: throughput of the command
over 20 photos of 1024x768, and time to the first colorized photo (run dir and SavedModel) in a
fresh process. ``savedmodel_latency`` (the served bytes -> bytes call) is in :mod:`benchmarks.pipeline`.

Inception-ResNet-v2 with random weights and a random colorizer at 224 (the speed does not depend
on the weights); the hidden ``--smoke`` size uses a tiny stand-in embedder instead.
"""

import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import tensorflow as tf

from benchmarks import figure, interleaved_medians
from benchmarks.flops import EMBEDDING_DIM
from benchmarks.photos import jpeg_bytes
from benchmarks.pipeline import COLORIZE_WITH_STAND_IN, STAND_IN_SOURCE, _embedder_name, embedder, model_sources
from koalarization import images
from koalarization.colorize import files as colorizing
from koalarization.model import network as model
from koalarization.model.colorizer import Colorizer

PHOTO = (768, 1024)  # (height, width)
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _plan(sizes):
    """(photos, batch size, rounds) of the throughput figure."""
    if not sizes.real_inception:
        return 4, 2, 1
    return (20, 8, 3) if sizes.rounds >= 2 else (8, 4, 1)


def write_photos(folder, count, height=PHOTO[0], width=PHOTO[1]):
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(count):
        with open(os.path.join(folder, f"photo-{i:03d}.jpg"), "wb") as f:
            f.write(jpeg_bytes(rng, height, width))
    return folder


def colorize_throughput(sizes, log=print):
    """Figure: ``colorize`` images/s (read JPEG -> write PNG, model already loaded) vs its own two
    networks back to back on the same photos at the same batch size."""
    count, batch, rounds = _plan(sizes)
    network = model.build_colorizer(EMBEDDING_DIM)
    colorizer = Colorizer.from_keras(network, embedder(sizes.real_inception), sizes.colorizer_size)
    with tempfile.TemporaryDirectory(prefix="bench-colorize-") as tmp:
        photos = write_photos(os.path.join(tmp, "photos"), count)
        paths = sorted(os.path.join(photos, name) for name in os.listdir(photos))
        prepared = [colorizer.prepare(images.read_image(path, as_tensor=True)) for path in paths]
        network.save(os.path.join(tmp, "model.keras"))  # colorize_files names its model (the Colorizer is given)
        config = colorizing.ColorizeConfig(
            inputs=(photos,), out_dir=os.path.join(tmp, "out"), model=os.path.join(tmp, "model.keras"), batch_size=batch, overwrite=True
        )
        networks = colorizer.compiled["networks"]

        def command():
            summary = colorizing.colorize_files(config, colorizer=colorizer, log=lambda _: None)
            assert len(summary.colorized) == count, summary

        def networks_alone():
            for start in range(0, count, batch):
                part = prepared[start : start + batch]
                networks(tf.stack([p[0] for p in part]), tf.stack([p[1] for p in part])).numpy()

        log(f"colorize: {count} JPEGs of {PHOTO[1]}x{PHOTO[0]}, batch {batch}, {_embedder_name(sizes)}")
        command()  # warm up: every step traced
        networks_alone()
        t_command, t_networks = interleaved_medians([command, networks_alone], rounds)
    return [
        figure(
            "colorize_throughput", f"colorize images/s, {count} photos of {PHOTO[1]}x{PHOTO[0]}",
            ("colorize_files: read JPEG, networks, recombine, write PNG (model loaded)", count / t_command, "img/s"),
            ("embed + colorize_lab alone, same photos, same batch size", count / t_networks, "img/s"),
            goal=(">=", 0.9),
            note=(
                f"batch {batch} (the command sends its first photo alone), median of {rounds} alternating runs, "
                f"{_embedder_name(sizes)}; {1000 * t_command / count:.0f} ms vs {1000 * t_networks / count:.0f} ms per photo"
            ),
        )
    ]


NETWORKS_ONCE = """
import sys, time
from koalarization.model.colorizer import Colorizer
from koalarization import images
colorizer = Colorizer.load(sys.argv[1], inception=stand_in, log=lambda _: None)
colorizer.predict_prepared([colorizer.prepare(images.read_image(sys.argv[2], as_tensor=True))]).numpy()
"""


def _wall(argv):
    start = time.perf_counter()
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"{' '.join(argv[:4])} ...: exit {done.returncode}: {done.stderr.strip().splitlines()[-1:]}")
    return time.perf_counter() - start


def first_photo(sizes, log=print):
    """Figures: ``python -m koalarization.colorize`` on one 1024x768 JPEG in a fresh process, run dir and
    SavedModel, vs a fresh process that only loads the same models and makes one network call on
    that photo (Python's start and imports on both sides; ``--quick``: once each, else twice)."""
    # --smoke: the run dir records random Inception weights; its processes are given the stand-in
    # (built in the script, as the command's ``inception``); the SavedModel side has it inside.
    run, saved, _ = model_sources(sizes.real_inception, sizes.colorizer_size)
    repeats = 2 if sizes.rounds >= 2 else 1
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-first-") as tmp:
        photo = os.path.join(write_photos(os.path.join(tmp, "in"), 1), "photo-000.jpg")
        for key, name, path in (("first_photo_run_dir", "run dir", run), ("first_photo_saved_model", "SavedModel", saved)):
            log(f"first photo: {name}, {repeats} fresh process(es) each side")
            stand_in = not sizes.real_inception and path == run
            args = [photo, "-o", os.path.join(tmp, key), "--model", path, "--overwrite"]
            command = [sys.executable, *(("-c", COLORIZE_WITH_STAND_IN) if stand_in else ("-m", "koalarization.colorize")), *args]
            alone = [sys.executable, "-c", (STAND_IN_SOURCE if stand_in else "stand_in = None\n") + NETWORKS_ONCE, path, photo]
            t_command, t_alone = interleaved_medians([lambda c=command: _wall(c), lambda a=alone: _wall(a)], repeats)
            rows.append(
                figure(
                    key, f"time to the first colorized photo, {name}",
                    (f"python -m koalarization.colorize on one {PHOTO[1]}x{PHOTO[0]} JPEG, fresh process", t_command, "s"),
                    ("fresh process: import, load the models, one network call on that photo", t_alone, "s"),
                    goal=("<=", 1.5),
                    note=f"wall time of whole processes (Python start and imports included on both sides), median of {repeats}"
                    + ("" if sizes.real_inception else f"; {_embedder_name(sizes)} in the SavedModel, given to the run dir's processes"),
                )
            )
    return rows


def speed_figures(sizes, log=print):
    """Both figures above; one that cannot be measured becomes an 'error' row and the other goes on."""
    from benchmarks import error_figure

    rows = []
    for keys, function in ((("colorize_throughput",), colorize_throughput), (("first_photo_run_dir", "first_photo_saved_model"), first_photo)):
        try:
            rows += function(sizes, log=log)
        except Exception as error:  # noqa: BLE001
            log(f"{', '.join(keys)}: {type(error).__name__}: {error}")
            rows += [error_figure(key, key.replace("_", " "), error) for key in keys]
    return rows
