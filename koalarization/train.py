"""Train the colorizer on the records written by ``python -m tfrecords_builder``.

    python -m koalarization.train --records records/ --run-dir runs/smoke --preset smoke
    python -m koalarization.train --records records/ --run-dir runs/paper    # batch 100, Adam 1e-3, MSE
    python -m koalarization.train --records records/ --run-dir runs/gpus --distribution mirrored
    TF_CONFIG='{"cluster": {"worker": ["host1:12345", "host2:12345"]}, "task": {"type": "worker", "index": 0}}' \\
        python -m koalarization.train --records records/ --run-dir runs/multi --distribution multi_worker

From Python (the demo, the notebooks and the benchmarks)::

    result = train(TrainConfig.with_preset("smoke", records="records/", run_dir="runs/smoke"))
    result.model_path, result.history["val_loss"]

The run dir ends up holding ``config.json`` (this config plus the records' manifest facts),
``model.keras`` (the final model), ``checkpoints/best.keras``, ``logs/`` (TensorBoard: scalars
and a gray | prediction | truth panel of a fixed validation batch), ``history.csv``,
``samples/epoch_NNN.png`` (the same panels) and ``loss.png``. While training it also holds
``backup/`` and ``.lock``. Every file is written under a temporary name and renamed (the backup
in two generations with checksums, :mod:`koalarization.rundir`): a run killed at any instant,
or stopped with Ctrl-C, resumes after its last finished epoch when the same command runs again.

This module is the entry point and the config; it imports no TensorFlow, so ``--help``, argument
errors, a busy or unusable run dir are answered at once. The loop is :mod:`koalarization.loop`
(one ``tf.function`` step under ``strategy.run`` for every ``--distribution``; the loss is the
mean over the global batch). With ``multi_worker`` only the chief (task ``chief``, or ``worker``
0 when there is none) writes the run dir; the other workers restore from the chief's backup.
"""

import argparse
import dataclasses
import json
import os
import sys
from typing import Any, Optional

import koalarization
from koalarization import rundir, safeio

PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16", "auto")  # auto: koalarization.precision.training_policy
DISTRIBUTIONS = ("none", "mirrored", "multi_worker")
PRESETS = {
    "paper": {},  # the dataclass defaults are the paper's settings
    "smoke": {"epochs": 2, "steps_per_epoch": 3, "validation_steps": 2, "batch_size": 4},
}
EXIT_INTERRUPTED = 130  # Ctrl-C, as a shell reports SIGINT

class UserError(Exception):
    """An expected problem with the user's input: reported as one line, without a traceback."""


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    records: str  # records dir written by `python -m tfrecords_builder`
    run_dir: str  # where the model, checkpoints, logs and plots go
    preset: str = "paper"
    epochs: int = 100
    steps_per_epoch: Optional[int] = None  # None: one pass over the train split
    validation_steps: Optional[int] = None  # None: the whole val split
    batch_size: int = 100  # global batch, split over the replicas
    learning_rate: float = 0.001
    precision: str = "float32"
    distribution: str = "none"
    seed: int = 0
    sample_images: int = 4  # images in the gray | prediction | truth panel
    shuffle_buffer: int = 4096  # examples shuffled in memory (data.SHUFFLE_BUFFER; ~600 MB at 224x224)
    cycle_length: int = 16  # train shards read at once, round-robin (data.CYCLE_LENGTH)
    export: bool = True  # export RUN/saved_model/1 for TF Serving at the end (Inception records only)
    verbose: bool = False

    def __post_init__(self):
        if self.preset not in PRESETS:
            raise UserError(f"unknown preset {self.preset!r}; choose from {sorted(PRESETS)}")
        if self.precision not in PRECISIONS:
            raise UserError(f"unknown precision {self.precision!r}; choose from {PRECISIONS}")
        if self.distribution not in DISTRIBUTIONS:
            raise UserError(f"unknown distribution {self.distribution!r}; choose from {DISTRIBUTIONS}")
        for name in ("epochs", "batch_size", "sample_images", "steps_per_epoch", "validation_steps", "shuffle_buffer", "cycle_length"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise UserError(f"{name} must be at least 1, got {value}")
        if not self.learning_rate > 0:
            raise UserError(f"learning_rate must be positive, got {self.learning_rate}")

    @classmethod
    def with_preset(cls, preset="paper", **fields):
        """The preset's values as defaults, ``fields`` on top."""
        if preset not in PRESETS:
            raise UserError(f"unknown preset {preset!r}; choose from {sorted(PRESETS)}")
        return cls(preset=preset, **{**PRESETS[preset], **fields})


@dataclasses.dataclass
class TrainResult:
    config: TrainConfig
    run_dir: str
    model_path: Optional[str]  # run_dir/model.keras; None on a non-chief worker
    history: dict  # {"epoch": [...], "loss": [...], "val_loss": [...]} over all epochs, resumed ones too
    model: Any  # the trained keras.Model
    is_chief: bool = True
    replicas: int = 1  # replicas in sync under the strategy


def __getattr__(name):
    """The loop's pieces under their old names (``train.make_steps`` in the benchmarks), imported
    only when asked for: importing this module stays free of TensorFlow."""
    if name in ("make_steps", "distribute", "make_strategy", "per_example_mse"):
        from koalarization import loop

        return getattr(loop, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def is_chief_task(tf_config):
    """Whether the task in ``TF_CONFIG`` (JSON) writes the run dir: ``chief``, or ``worker`` 0
    of a cluster without a chief."""
    try:
        spec = json.loads(tf_config or "{}")
    except ValueError:
        raise UserError("TF_CONFIG is not valid JSON") from None
    task, cluster = spec.get("task", {}), spec.get("cluster", {})
    if task.get("type") in (None, "chief"):
        return True
    return task.get("type") == "worker" and int(task.get("index", 0)) == 0 and "chief" not in cluster


def _print(*args, **kwargs):
    print(*args, **kwargs, flush=True)


def train(config, callbacks=(), log=_print):
    """Train as ``config`` says; returns a :class:`TrainResult`. ``callbacks``: extra Keras
    callbacks, run after the built-in ones. The run dir is checked and locked before TensorFlow
    is imported."""
    multi_worker = config.distribution == "multi_worker"
    if multi_worker and not os.environ.get("TF_CONFIG"):
        raise UserError("--distribution multi_worker needs TF_CONFIG describing the cluster and this task")
    chief = not multi_worker or is_chief_task(os.environ.get("TF_CONFIG"))
    if not chief:
        return _train(config, chief, callbacks, log)
    safeio.check_output_dir(config.run_dir, inputs=[config.records], what="run dir")
    with safeio.DirLock(config.run_dir, "python -m koalarization.train", warn=log):
        rundir.clean(config.run_dir)
        try:
            rundir.check(config.run_dir, dataclasses.asdict(config))  # a different or finished run: refused
        except rundir.RunDirError as error:
            raise UserError(str(error)) from None
        return _train(config, chief, callbacks, log)


def _train(config, chief, callbacks, log):
    from koalarization import loop  # TensorFlow from here on

    strategy = loop.make_strategy(config.distribution)  # first: multi-worker collectives precede any TF op
    import keras
    import tensorflow as tf

    from koalarization import data, precision, records
    from koalarization.model import build_colorizer, compile_colorizer

    policy = precision.training_policy(config.precision)  # "auto" -> mixed_bfloat16 where bf16 is native
    manifest = records.read_manifest(config.records)
    n_train, n_val = data.num_examples(config.records, "train"), data.num_examples(config.records, "val")
    if n_train == 0:
        raise UserError(f"{config.records}: the train split is empty")
    log("Training config:\n" + "\n".join(f"  {k}: {v}" for k, v in dataclasses.asdict(config).items()))
    if config.precision == "auto":
        log(f"--precision auto: training in {policy} ({precision.native_bf16()[1]})")
    log(f"Records: {n_train} train / {n_val} val examples at {manifest['image_size']}px, embedding {manifest['embedding']}")
    loop.warn_random_embedding(manifest, log)
    if chief:
        rundir.write_config(config.run_dir, {
            "config": dataclasses.asdict(config), "records": loop.records_facts(manifest),
            "replicas": strategy.num_replicas_in_sync, "precision": policy,
            "versions": {"koalarization": koalarization.__version__, "keras": keras.__version__, "tensorflow": tf.__version__},
        })
    if n_val == 0:
        log("The val split is empty: training without validation.")

    run = rundir.Run(config.run_dir, chief, monitor="val_loss" if n_val else "loss", log=log)
    previous_policy = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(policy)
    try:
        keras.utils.set_random_seed(config.seed)
        with strategy.scope():
            model = build_colorizer(records.embedding_dim(manifest))
            compile_colorizer(model, config.learning_rate)
            model.optimizer.build(model.trainable_variables)
        model.stop_training = False
        history = loop.fit(model, strategy, config, run, n_train, n_val, callbacks, log)
    except FloatingPointError as error:
        log("")  # end the progress bar's line
        raise UserError(str(error)) from None
    except tf.errors.DataLossError as error:
        log("")
        raise UserError(loop.damaged_records_message(config, error)) from None
    finally:
        keras.mixed_precision.set_global_policy(previous_policy)

    model_path = None
    if chief:
        model_path = os.path.join(config.run_dir, rundir.MODEL)
        run.finish(model)
        from koalarization import plots

        plots.loss_curves(history, os.path.join(config.run_dir, "loss.png"))
        log(f"Saved the final model to {model_path}")
        if config.export:
            export_run(config.run_dir, manifest, log)
        run.close()  # the run is complete: its backup goes
    return TrainResult(config, config.run_dir, model_path, history, model, chief, strategy.num_replicas_in_sync)


def export_run(run_dir, manifest, log):
    """Export ``run_dir/saved_model/1`` for TF Serving, when the records hold Inception embeddings.
    A failure (e.g. no Inception weights offline) is one line: the run itself is complete."""
    from koalarization import embedding, saved_model

    facts = manifest["embedding"]
    if facts.get("dim") != embedding.EMBEDDING_DIM or facts.get("weights", {}).get("source") not in ("imagenet", "random", "file"):
        log(f"Not exporting a SavedModel: the records' embeddings come from {facts.get('model')!r}, not Inception-ResNet-v2.")
        return None
    out = os.path.join(run_dir, "saved_model", "1")
    try:
        return saved_model.export_from_path(saved_model.ExportConfig(model=run_dir, out=out, overwrite=True), log=log)
    except Exception as error:  # noqa: BLE001  (the model is saved; the export can be redone alone)
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0][:300]
        log(f"Not exported ({reason}); the run is complete. Export later: python -m koalarization.export --model {run_dir} --out {out} --overwrite")
        return None


# -- command line ------------------------------------------------------------------------------
def parse_config(argv=None):
    """Command line -> :class:`TrainConfig`: the preset's values unless a flag says otherwise."""
    parser = argparse.ArgumentParser(
        prog="python -m koalarization.train",
        description="Train the Deep Koalarization colorizer on records from `python -m tfrecords_builder`. "
        "Flags left out take the preset's value, then the paper's.",
    )
    parser.add_argument("--records", required=True, help="records dir (manifest.json and shards)")
    parser.add_argument("--run-dir", required=True, help="output dir; run the same command again to resume a killed run")
    parser.add_argument("--preset", choices=sorted(PRESETS), default="paper",
                        help="paper: 100 epochs, batch 100, lr 0.001; smoke: 2 epochs of 3 steps, batch 4 (minutes on a CPU)")
    parser.add_argument("--epochs", type=int, help="number of epochs (paper: 100)")
    parser.add_argument("--steps-per-epoch", type=int, help="train steps per epoch (default: one pass over the train split)")
    parser.add_argument("--validation-steps", type=int, help="val batches per epoch (default: the whole val split)")
    parser.add_argument("--batch-size", type=int, help="global batch size, split over the replicas (paper: 100)")
    parser.add_argument("--learning-rate", type=float, help="Adam learning rate (paper: 0.001)")
    parser.add_argument("--precision", choices=PRECISIONS, help="Keras dtype policy (default float32); auto: mixed_bfloat16 where the CPU (avx512_bf16 / amx_bf16) "
                        "or GPU (compute capability >= 8.0) has bf16 natively, else float32; config.json records the one used")
    parser.add_argument("--distribution", choices=DISTRIBUTIONS,
                        help="none (default): one device; mirrored: all local GPUs; multi_worker: the cluster in TF_CONFIG")
    parser.add_argument("--seed", type=int, help="seed of weight initialisation and shuffling (default 0)")
    parser.add_argument("--sample-images", type=int, help="images in the per-epoch sample panel (default 4)")
    parser.add_argument("--shuffle-buffer", type=int,
                        help="examples shuffled in memory (default 4096, ~600 MB; with shards mixed by the builder, "
                        "a batch of 100 from a class-sorted source spans most classes)")
    parser.add_argument("--cycle-length", type=int, help="train shards read at once, round-robin (default 16)")
    parser.add_argument("--export", action=argparse.BooleanOptionalAction, default=None,
                        help="export RUN/saved_model/1 for TF Serving at the end (default: yes, for records "
                        "with Inception embeddings); --no-export skips it")
    parser.add_argument("--verbose", action="store_true", help="show TensorFlow's start-up logs")
    args = vars(parser.parse_args(argv))
    preset = args.pop("preset")
    return TrainConfig.with_preset(preset, **{k: v for k, v in args.items() if v is not None})


def interrupted_line(run_dir):
    """What Ctrl-C leaves, in one line."""
    kept = rundir.backup_epoch(run_dir) if run_dir else 0
    if kept:
        return (f"interrupted: {run_dir} keeps the backup after epoch {kept} (and checkpoints/best.keras); "
                "run the same command again to resume")
    return f"interrupted before the first epoch was saved: run the same command again to start {run_dir or 'the run'} over"


def main(argv=None):
    config = None
    try:
        config = parse_config(argv)
        result = train(config)
    except KeyboardInterrupt:
        print(f"\n{interrupted_line(config.run_dir if config else None)}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except safeio.LockedError as error:
        print(f"error: {error}", file=sys.stderr)
        return safeio.EXIT_LOCKED
    except safeio.OutputPathError as error:
        print(f"error: {error}", file=sys.stderr)
        return safeio.EXIT_OUTPUT
    except (UserError, safeio.SafeIOError, FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if result.is_chief:
        print(f"Run dir: {result.run_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
