"""Figures of the builder on Apache Beam: the DirectRunner with 2 worker processes against the
one-machine builder on the same photos, and what the driver of an ImageNet-sized build pays to plan it.

The Beam build and the local build each start from nothing (each process builds Inception-ResNet-v2
with random weights once), so both times include loading the model: the Beam side pays it in each
worker, in parallel, and starts the workers. The plan is made in a fresh child process that
imports no TensorFlow, for 1,281,167 synthetic keys (ImageNet train's size): the shard plan, the
build's fingerprint and the 1,282 task files the workers read. Its peak memory is the child's own
``VmHWM`` (``/proc/self/status``, a fresh address space after ``exec``): ``ru_maxrss`` would not do,
as Linux carries the parent's peak across ``fork`` + ``exec``.

``--quick`` keeps these rows to a few seconds: 16 photos, a stand-in embedder and the DirectRunner's
2 threads (no worker processes to start), and a plan of a tenth of the keys; their goals are judged
in the full run only (n/a).
"""

import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

from benchmarks import figure
from benchmarks.photos import write_jpegs

IMAGENET_TRAIN = 1_281_167
PLAN_SECONDS_GOAL, PLAN_MEMORY_GOAL_MB = 30.0, 1024.0
TWO_PROCESSES = "runner=DirectRunner,direct_num_workers=2,direct_running_mode=multi_processing"
PLAN_TITLE = "Beam build's plan of 1,281,167 keys (ImageNet train; --quick a tenth)"
TWO_THREADS = "runner=DirectRunner,direct_num_workers=2,direct_running_mode=multi_threading"


def stand_in(x):
    """A picklable embedder that costs nothing (``--quick`` and ``--smoke``)."""
    return np.asarray(x)[:, ::60, ::60, 0].reshape(len(x), -1)


_PLAN_CHILD = r"""
import json, os, sys, tempfile, time
from types import SimpleNamespace
from tfrecords_builder import plan

def status_mb(field):  # this process's own figure (a fresh address space: exec resets VmHWM)
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":")) / 1024

n = int(sys.argv[1])
start = time.perf_counter()
keys = [f"n{i % 1000:08d}/n{i % 1000:08d}_{i}.JPEG" for i in range(n)]
paths = ["/data/imagenet/train/" + key for key in keys]
keys_mb = status_mb("VmRSS")
config = SimpleNamespace(val_fraction=0.0, shard_size=1000, image_size=224, keep_gray=False)
started = time.perf_counter()
shards = plan.plan_shards(keys, config)
fingerprint = plan.fingerprint(config, "images /data/imagenet/train", {"model": "m"}, shards, keys)
planned = time.perf_counter() - started
with tempfile.TemporaryDirectory() as work:
    plan.write_tasks(work, shards, keys, paths)
    size = sum(os.path.getsize(os.path.join(work, f)) for f in os.listdir(work))
seconds = time.perf_counter() - started
print(json.dumps({"seconds": seconds, "plan_seconds": planned, "peak_mb": status_mb("VmHWM"), "keys_mb": keys_mb,
                  "shards": len(shards), "task_mb": size / 2**20}))
"""


def plan_cost(count=IMAGENET_TRAIN):
    """Seconds and peak memory (MB) of a fresh process that plans ``count`` keys (see ``_PLAN_CHILD``)."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    done = subprocess.run([sys.executable, "-c", _PLAN_CHILD, str(count)], capture_output=True, text=True, check=True, cwd=root)
    return json.loads(done.stdout.strip().splitlines()[-1])


def beam_figures(sizes, log=print):
    from tfrecords_builder.builder import build
    from tfrecords_builder.config import BuildConfig

    full = sizes.beam_images >= 200
    count, batch = sizes.beam_images, sizes.builder_batch
    embedder = None if full and sizes.real_inception else stand_in
    options = TWO_PROCESSES if full else TWO_THREADS
    with tempfile.TemporaryDirectory(prefix="bench-beam-") as tmp:
        photos = write_jpegs(os.path.join(tmp, "photos"), count)
        shard = max(1, count // 8)  # 8 shards: 4 for each worker

        def run(name, beam_options):
            config = BuildConfig(out=os.path.join(tmp, name), images=(photos,), inception_weights="random", batch_size=batch,
                                 val_fraction=0.0, shard_size=shard, beam_pipeline_options=beam_options)  # fmt: skip
            start = time.perf_counter()
            build(config, embedder=embedder, progress=False)
            return time.perf_counter() - start

        log(f"beam: {count} JPEGs of 500x375 in 8 shards, batch {batch}, the local builder then the DirectRunner ({options})")
        local = run("local", None)
        on_beam = run("beam", options)
    keys = IMAGENET_TRAIN if full else IMAGENET_TRAIN // 10
    log(f"beam: plan of {keys} synthetic keys in a fresh child process")
    cost = plan_cost(keys)
    what = "Inception-ResNet-v2 (random weights)" if embedder is None else "a stand-in embedder"
    quick = "" if full else " --quick: a check of the harness (2 threads, no worker processes); the goal is judged in the full run. "
    side = "Beam DirectRunner, 2 worker processes" if full else "Beam DirectRunner, 2 threads"
    return [
        figure(
            "beam_build", "builder on Beam (DirectRunner, 2 processes) vs the local builder",
            (side, count / on_beam, "img/s"), ("local builder, one process", count / local, "img/s"),
            goal=(">=", 0.85), applicable=full,
            note=f"{quick}{count} JPEGs of 500x375, {what}, batch {batch}, 8 shards; each side's time includes building "
            f"the embedder (the Beam side once per worker, and starting the workers); {os.cpu_count()} cores for both",
        ),
        figure(
            "beam_plan_seconds", PLAN_TITLE + ": seconds",
            ("plan + fingerprint + task files", cost["seconds"], "s"), ("goal", PLAN_SECONDS_GOAL, "s"), goal=("<=", 1.0),
            applicable=full,
            note=f"{quick}{keys:,} keys in {cost['shards']} shards of 1000; the plan and fingerprint alone {cost['plan_seconds']:.1f} s; "
            f"{cost['task_mb']:.0f} MB of task files (keys and paths) written",
        ),
        figure(
            "beam_plan_memory", PLAN_TITLE + ": peak memory",
            ("peak memory (VmHWM) of the planning process", cost["peak_mb"], "MB"), ("goal", PLAN_MEMORY_GOAL_MB, "MB"),
            goal=("<=", 1.0), applicable=full,
            note=f"{quick}measured in a fresh child process, which imports no TensorFlow; {cost['keys_mb']:.0f} MB of it "
            "are the interpreter and the keys and paths themselves (the builder's driver also imports TensorFlow, a few hundred MB more)",
        ),
    ]
