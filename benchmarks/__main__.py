"""Run the benchmarks and write ``OUT/<mode>.json`` and ``OUT/<mode>.md``.

    python -m benchmarks                       # full run, under 30 minutes on 2 cores
    python -m benchmarks --quick               # ~7 minutes on 2 cores: smaller sizes, fewer repeats
    python -m benchmarks --only record_bytes,input_pipeline --out /tmp/bench
    python -m benchmarks --gpu-jax             # GPU + JAX, no TensorFlow: bf16 train step, batch 100 at 224

Every figure is the ratio of two measurements of the same run; the table gives both, the ratio,
the goal and pass / fail / report (or n/a where the goal does not apply to the machine, with the
reason). The exit status is 1 when a figure could not be measured at all.
"""

import argparse
import dataclasses
import datetime
import os
import sys
import time

from benchmarks import error_figure, machine, report
from koalarization import FROZEN_WEIGHTS_VARIABLE  # light: no TensorFlow


@dataclasses.dataclass(frozen=True)
class Sizes:
    """How big each measurement is; the presets are FULL, QUICK and SMOKE (a one-minute check of the harness)."""

    train_size: int  # image side of the timed train steps
    train_batch: int
    warmup_steps: int  # untimed steps before each timed stretch (>= 1)
    timed_steps: int  # timed steps per stretch
    rounds: int  # stretches per side, alternating the two sides
    task_images: int  # synthetic learning task of the bf16 loss check
    task_size: int
    task_steps: int
    matmul_size: int
    matmul_repeats: int
    builder_images: int  # builder throughput vs Inception forward
    builder_batch: int
    beam_images: int  # photos of the Beam vs local builder figure: >= 200 for the goal (full run), fewer a harness check
    real_inception: bool  # False: a tiny stand-in embedder (SMOKE only)
    memory_images: tuple  # builder peak memory: (large, small) image counts
    colorize_shape: tuple  # (height, width) of the big photo to colorize
    colorize_baseline: bool  # also colorize a 224x224 photo, to tell the photo's memory from the rest
    export_repeats: int  # SavedModel bytes -> bytes calls
    colorizer_size: int  # working size of the random colorizer of the colorize, SavedModel and video figures (the paper's 224; --smoke less)
    jax_batch: int  # --gpu-jax train step
    jax_size: int
    jax_steps: int
    jax_matmul_size: int  # side of the bf16 matmul that measures the card's rate


FULL = Sizes(
    train_size=224, train_batch=8, warmup_steps=1, timed_steps=3, rounds=2,
    task_images=16, task_size=32, task_steps=96, matmul_size=2048, matmul_repeats=7,
    builder_images=64, builder_batch=16, beam_images=600, real_inception=True, memory_images=(1000, 200),
    colorize_shape=(4000, 6000), colorize_baseline=True, export_repeats=5, colorizer_size=224, jax_batch=100, jax_size=224, jax_steps=10,
    jax_matmul_size=8192,
)
QUICK = dataclasses.replace(
    FULL, train_size=96, train_batch=4, timed_steps=3, rounds=1, task_images=8, task_size=16, task_steps=48,
    matmul_size=1024, matmul_repeats=5, builder_images=16, builder_batch=8, beam_images=16, memory_images=(300, 60),
    colorize_baseline=False, export_repeats=3,
    jax_batch=4, jax_size=64, jax_steps=3, jax_matmul_size=1024,
)
SMOKE = dataclasses.replace(
    QUICK, train_size=32, train_batch=2, timed_steps=1, task_steps=4,
    matmul_size=256, matmul_repeats=2, builder_images=4, builder_batch=2, real_inception=False,
    memory_images=(12, 4), colorize_shape=(400, 600), export_repeats=1, colorizer_size=64,
    jax_batch=2, jax_size=32, jax_steps=1, jax_matmul_size=256,
)

# (keys, titles, "module:function") of every figure, in table order.
FIGURES = (
    (("builder_throughput",), ("builder images/s",), "pipeline:builder_throughput"),
    (("input_pipeline",), ("training images/s reading records",), "training:input_pipeline"),
    (
        ("mixed_bfloat16", "bf16_loss", "train_gflops", "train_gflops_bf16"),
        (
            "mixed_bfloat16 train step", "mixed_bfloat16 training loss vs float32 (same seed)",
            "training achieved GFLOP/s (float32)", "training achieved GFLOP/s (mixed_bfloat16)",
        ),
        "training:precision_and_flops",
    ),
    (("builder_bf16", "embedding_bf16"), ("builder images/s, bfloat16 vs float32 embedding", "bf16 embeddings vs float32"), "precision:builder_figures"),
    (("colorize_bf16", "colorize_bf16_accuracy"), ("colorize images/s, bfloat16 vs float32", "bf16 colorizations vs float32"), "precision:colorize_figures"),
    (("savedmodel_bf16", "savedmodel_batch"), ("SavedModel bytes -> bytes, bfloat16 vs float32", "SavedModel images/s, batch 8 vs batch 1"), "precision:savedmodel_figures"),
    (("record_bytes",), ("bytes per record example",), "stages:record_bytes"),
    (
        ("png_encoder", "png_encoder_threads"),
        ("PNG encoder, 1024x768, one thread: pngfile vs Pillow", "PNG encoder, 1024x768, two threads side by side, time per photo: pngfile vs Pillow"),
        "png:png_figures",
    ),
    (("savedmodel_latency",), ("SavedModel, one 1024x768 JPEG, bytes in -> bytes out",), "pipeline:savedmodel_latency"),
    (("colorize_throughput", "first_photo_run_dir", "first_photo_saved_model"), ("colorize images/s, 20 photos of 1024x768", "time to the first colorized photo, run dir", "time to the first colorized photo, SavedModel"), "speed:speed_figures"),
    (("builder_memory",), ("builder peak memory",), "memory:builder_memory"),
    (
        ("beam_build", "beam_plan_seconds", "beam_plan_memory"),
        (
            "builder on Beam (DirectRunner, 2 processes) vs the local builder",
            "Beam build's plan of 1,281,167 keys (ImageNet train; --quick a tenth): seconds",
            "Beam build's plan of 1,281,167 keys (ImageNet train; --quick a tenth): peak memory",
        ),
        "beam:beam_figures",
    ),
    (("colorize_memory",), ("colorize a 6000x4000 photo: peak memory",), "memory:colorize_memory"),
    (("video_speed", "video_memory"), ("video frames/s vs the same frames as photos", "video peak memory"), "video:video_figures"),
    (
        ("serving_bomb_memory", "serving_bytes_per_pixel"),
        ("serving a 20000x20000 1-bit PNG: refused, peak memory", "serving_default: bytes per pixel above the model"),
        "memory:serving_memory",
    ),
)
ALL_KEYS = tuple(k for keys, _, _ in FIGURES for k in keys)
# Figures of the commands that never train: measured in a child process that runs as those commands
# do (koalarization.inference_only_command: oneDNN packs the weights once). The training figures
# stay in this process, where that setting must be absent: TensorFlow reads it once per process.
INFERENCE_ONLY = {
    "pipeline:builder_throughput", "precision:builder_figures", "precision:colorize_figures", "precision:savedmodel_figures",
    "pipeline:savedmodel_latency", "speed:speed_figures", "memory:builder_memory", "memory:colorize_memory",
    "video:video_figures", "memory:serving_memory", "beam:beam_figures",
}  # fmt: skip
CHILD = "KOALARIZATION_BENCHMARKS_INFERENCE"  # set in that child process


@dataclasses.dataclass(frozen=True)
class BenchConfig:
    out: str = "benchmarks/results"
    quick: bool = False
    smoke: bool = False
    only: tuple = ()
    gpu_jax: bool = False
    verbose: bool = False

    @property
    def mode(self):
        size = "smoke" if self.smoke else "quick" if self.quick else "full"
        return f"gpu-jax-{size}" if self.gpu_jax else size

    @property
    def sizes(self):
        return SMOKE if self.smoke else QUICK if self.quick else FULL


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Measure every stage against its own limit; write OUT/<mode>.json and OUT/<mode>.md.",
    )
    parser.add_argument("--out", default=BenchConfig.out, help="folder for the results (default: %(default)s)")
    parser.add_argument("--quick", action="store_true", help="smaller sizes and fewer repeats: ~7 minutes on 2 cores")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes and a stand-in embedder: a check of the harness itself, what the test suite runs (its numbers mean nothing)")
    parser.add_argument(
        "--only", default="", help=f"comma-separated figure keys to run (default: all): {', '.join(ALL_KEYS)}"
    )
    parser.add_argument(
        "--gpu-jax", action="store_true",
        help="GPU machine with JAX and no TensorFlow: the train step with Keras on JAX, batch 100 at 224x224 in "
        "bf16, against the card's measured bf16 matmul rate (with --quick: batch 4 at 64x64, runs on CPU JAX)",
    )
    parser.add_argument("--verbose", action="store_true", help="show TensorFlow's start-up logs")
    args = parser.parse_args(argv)
    only = tuple(k.strip() for k in args.only.split(",") if k.strip())
    unknown = sorted(set(only) - set(ALL_KEYS))
    if unknown:
        parser.error(f"--only: unknown figure {', '.join(unknown)}; choose from {', '.join(ALL_KEYS)}")
    try:  # fail now, not after half an hour of measuring
        os.makedirs(args.out, exist_ok=True)
    except OSError as error:
        parser.error(f"--out {args.out}: cannot create the folder: {error.strerror}")
    return BenchConfig(args.out, args.quick, args.smoke, only, args.gpu_jax, args.verbose)


def run_figures(config, log):
    """Every selected figure; one that fails to measure becomes an 'error' row and the rest go on.
    The inference-only ones run in one child process (see ``INFERENCE_ONLY``)."""
    selected = [f for f in FIGURES if not config.only or set(f[0]) & set(config.only)]
    if os.environ.get(CHILD):
        return _measure(config, selected, log)
    if os.environ.get(FROZEN_WEIGHTS_VARIABLE):
        raise SystemExit(f"error: unset {FROZEN_WEIGHTS_VARIABLE}: the training figures must run without it (the benchmarks set it for the inference figures)")
    here = [f for f in selected if f[2] not in INFERENCE_ONLY]
    child = [f for f in selected if f[2] in INFERENCE_ONLY]
    rows = _measure(config, here, log) + (_measure_in_child(config, child, log) if child else [])
    order = {key: i for i, key in enumerate(ALL_KEYS)}
    return sorted(rows, key=lambda row: order.get(row["key"], len(order)))


def _measure_in_child(config, selected, log):
    """``selected`` measured by ``python -m benchmarks --only ...`` with the commands' environment."""
    import json
    import subprocess
    import tempfile

    wanted = [k for keys, _, _ in selected for k in keys if not config.only or k in config.only]
    log(f"inference figures in a child process with {FROZEN_WEIGHTS_VARIABLE}=1, as the commands run: {', '.join(wanted)}")
    with tempfile.TemporaryDirectory(prefix="bench-inference-") as out:
        argv = [sys.executable, "-m", "benchmarks", "--only", ",".join(wanted), "--out", out]
        argv += [flag for flag, on in (("--quick", config.quick), ("--smoke", config.smoke), ("--verbose", config.verbose)) if on]
        done = subprocess.run(argv, env={**os.environ, FROZEN_WEIGHTS_VARIABLE: "1", CHILD: "1"})
        try:
            with open(os.path.join(out, f"{config.mode}.json")) as f:
                return json.load(f)["figures"]
        except (OSError, ValueError, KeyError) as error:
            failure = RuntimeError(f"the child process exited {done.returncode} without results ({type(error).__name__})")
            return [error_figure(k, t, failure) for keys, titles, _ in selected for k, t in zip(keys, titles) if k in wanted]


def _measure(config, selected, log):
    import importlib

    from tqdm import tqdm

    rows = []
    for keys, titles, target in tqdm(selected, desc="benchmarks", unit="figure", file=sys.stdout):
        module_name, function_name = target.split(":")
        try:
            module = importlib.import_module(f"benchmarks.{module_name}")
            rows += getattr(module, function_name)(config.sizes, log=log)
        except Exception as error:  # a figure that cannot be measured must not stop the others
            log(f"{', '.join(keys)}: {type(error).__name__}: {error}")
            rows += [error_figure(k, t, error) for k, t in zip(keys, titles)]
    return [r for r in rows if not config.only or r["key"] in config.only]


def main(argv=None):
    config = parse_args(argv)
    print(f"benchmarks: {config}")
    if config.gpu_jax:
        os.environ["KERAS_BACKEND"] = "jax"  # before keras is imported anywhere
    else:
        import koalarization

        koalarization.quiet_tensorflow()
    if config.smoke:
        import benchmarks

        benchmarks.ROUNDS_CAP = 2
    start = time.time()
    log = lambda message: print(f"  {message}", flush=True)  # noqa: E731
    info = machine.describe("jax" if config.gpu_jax else "tensorflow")
    if config.gpu_jax:
        from benchmarks import gpu_jax

        rows = gpu_jax.run(config.sizes, log=log)
    else:
        rows = run_figures(config, log)
    info["load_average_end"] = machine.load_average()
    if not config.gpu_jax:
        info["inference_environment"] = f"{FROZEN_WEIGHTS_VARIABLE}=1 (as colorize, video, evaluate, export and the builder run)"
    results = {
        "mode": config.mode,
        "command": "python -m benchmarks " + " ".join(sys.argv[1:] if argv is None else argv),
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "seconds": time.time() - start,
        "sizes": dataclasses.asdict(config.sizes),
        "machine": info,
        "figures": rows,
    }
    paths = report.write(results, config.out)
    print(report.markdown(results))
    print(f"wrote {paths[0]} and {paths[1]}")
    return 1 if any(r["status"] == "error" for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
