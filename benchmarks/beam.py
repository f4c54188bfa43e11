"""Figures of the builder on Apache Beam: the DirectRunner with 2 worker processes against the
one-machine builder on the same photos, and what the driver of an ImageNet-sized build pays to plan it.

The Beam build and the local build each start from nothing (each process builds Inception-ResNet-v2
with random weights once), so both times include loading the model: the Beam side pays it in each
worker, in parallel. The plan is made in a child process that imports no TensorFlow, for
1,281,167 synthetic keys (ImageNet train's size): the shard plan, the build's fingerprint and the
1,282 task files the workers read.
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


def stand_in(x):
    """A picklable embedder that costs nothing (``--smoke`` only)."""
    return np.asarray(x)[:, ::60, ::60, 0].reshape(len(x), -1)


_PLAN_CHILD = r"""
import json, os, resource, sys, tempfile, time
from types import SimpleNamespace
from tfrecords_builder import plan
n = int(sys.argv[1])
keys = [f"n{i % 1000:08d}/n{i % 1000:08d}_{i}.JPEG" for i in range(n)]
paths = ["/data/imagenet/train/" + key for key in keys]
config = SimpleNamespace(val_fraction=0.0, shard_size=1000, image_size=224, keep_gray=False)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
start = time.perf_counter()
shards = plan.plan_shards(keys, config)
fingerprint = plan.fingerprint(config, "images /data/imagenet/train", {"model": "m"}, shards, keys)
planned = time.perf_counter() - start
with tempfile.TemporaryDirectory() as work:
    plan.write_tasks(work, shards, keys, paths)
    size = sum(os.path.getsize(os.path.join(work, f)) for f in os.listdir(work))
seconds = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"seconds": seconds, "plan_seconds": planned, "peak_mb": peak, "keys_mb": before, "shards": len(shards), "task_mb": size / 2**20}))
"""


def plan_cost(count=IMAGENET_TRAIN):
    """Seconds and peak memory (MB) of a fresh process that plans ``count`` keys (see ``_PLAN_CHILD``)."""
    done = subprocess.run([sys.executable, "-c", _PLAN_CHILD, str(count)], capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def beam_figures(sizes, log=print):
    from tfrecords_builder.builder import build
    from tfrecords_builder.config import BuildConfig

    count, batch = sizes.beam_images, sizes.builder_batch
    embedder = None if sizes.real_inception else stand_in
    with tempfile.TemporaryDirectory(prefix="bench-beam-") as tmp:
        photos = write_jpegs(os.path.join(tmp, "photos"), count)
        shard = max(1, count // 8)  # 8 shards: 4 for each worker

        def run(name, options):
            config = BuildConfig(out=os.path.join(tmp, name), images=(photos,), inception_weights="random", batch_size=batch,
                                 val_fraction=0.0, shard_size=shard, beam_pipeline_options=options)  # fmt: skip
            start = time.perf_counter()
            build(config, embedder=embedder, progress=False)
            return time.perf_counter() - start

        log(f"beam: {count} JPEGs of 500x375 in 8 shards, batch {batch}, local builder then DirectRunner with 2 processes")
        local = run("local", None)
        on_beam = run("beam", TWO_PROCESSES)
    log(f"beam: plan of {IMAGENET_TRAIN} synthetic keys in a child process")
    cost = plan_cost()
    what = "Inception-ResNet-v2 (random weights)" if sizes.real_inception else "a stand-in embedder (--smoke)"
    return [
        figure(
            "beam_build", "builder on Beam (DirectRunner, 2 processes) vs the local builder",
            ("Beam DirectRunner, 2 worker processes", count / on_beam, "img/s"),
            ("local builder, one process", count / local, "img/s"),
            goal=(">=", 0.85),
            note=f"{count} JPEGs of 500x375, {what}, batch {batch}, 8 shards; each side's time includes building Inception "
            f"(the Beam side once per worker, and starting the workers); {os.cpu_count()} cores for both",
        ),
        figure(
            "beam_plan_seconds", f"plan of {IMAGENET_TRAIN:,} keys (ImageNet train): seconds",
            ("plan + fingerprint + task files", cost["seconds"], "s"), ("goal", PLAN_SECONDS_GOAL, "s"), goal=("<=", 1.0),
            note=f"{cost['shards']} shards of 1000; the plan and fingerprint alone {cost['plan_seconds']:.1f} s; "
            f"{cost['task_mb']:.0f} MB of task files (keys and paths) written",
        ),
        figure(
            "beam_plan_memory", f"plan of {IMAGENET_TRAIN:,} keys (ImageNet train): peak memory",
            ("peak RSS of the planning process", cost["peak_mb"], "MB"), ("goal", PLAN_MEMORY_GOAL_MB, "MB"), goal=("<=", 1.0),
            note=f"of which {cost['keys_mb']:.0f} MB are the 1.28 M keys and paths themselves (no TensorFlow in that process; "
            "the builder's driver also imports TensorFlow, a few hundred MB more)",
        ),
    ]
