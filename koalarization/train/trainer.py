"""Training, as a library: :class:`TrainConfig`, :func:`train` and what a run leaves behind.

    from koalarization.train.trainer import TrainConfig, train
    result = train(TrainConfig.with_preset("smoke", records="records/", run_dir="runs/smoke"))
    result.model_path, result.history["val_loss"]

The command line is :mod:`koalarization.train` (``python -m koalarization.train``), a thin parser
over this module; the demo and the notebooks call this module, so no command imports another.

The run dir ends up holding ``config.json`` (this config plus the records' manifest facts),
``model.keras`` (the final model), ``checkpoints/best.keras``, ``logs/`` (TensorBoard: scalars
and a gray | prediction | truth panel of a fixed validation batch), ``history.csv``,
``samples/epoch_NNN.png`` (the same panels) and ``loss.png``. While training it also holds
``backup/`` and ``.lock``. Every file is written under a temporary name and renamed (the backup
in two generations with checksums, :mod:`koalarization.train.rundir`): a run killed at any instant,
or stopped with Ctrl-C, resumes after its last finished epoch when the same command runs again.

Importing this module imports no TensorFlow, so a busy or unusable run dir is answered at once.
The loop is :mod:`koalarization.train.loop` (one ``tf.function`` step under ``strategy.run`` for every
``--distribution``; the loss is the mean over the global batch). With ``multi_worker`` only the
chief (task ``chief``, or ``worker`` 0 when there is none) writes the run dir; the other workers
restore from the chief's backup.
"""

import dataclasses
import json
import os
from typing import Any, Optional

import koalarization
from koalarization import constants, locks, safeio
from koalarization.train import rundir

PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16", "auto")  # auto: koalarization.precision.training_policy
DISTRIBUTIONS = ("none", "mirrored", "multi_worker")
PRESETS = {
    "paper": {},  # the dataclass defaults are the paper's settings
    "smoke": {"epochs": 2, "steps_per_epoch": 3, "validation_steps": 2, "batch_size": 4},
}
EXIT_INTERRUPTED = safeio.EXIT_INTERRUPTED

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
    backup_every_steps: int = 1000  # a backup inside an epoch every so many steps (0: at epoch ends only)
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
        if self.backup_every_steps < 0:
            raise UserError(f"backup_every_steps must be 0 or more, got {self.backup_every_steps}")
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
    _check_records_folder(config.records)  # before the run dir is made: a typo leaves nothing behind
    safeio.check_output_dir(config.run_dir, inputs=[config.records], what="run dir")
    with locks.DirLock(config.run_dir, "python -m koalarization.train", warn=log):
        rundir.clean(config.run_dir)
        try:
            rundir.check(config.run_dir, dataclasses.asdict(config))  # a different or finished run: refused
        except rundir.RunDirError as error:
            raise UserError(str(error)) from None
        return _train(config, chief, callbacks, log)


def _check_same_records(config, facts):
    """A resumed run goes on with the records it started on: records rebuilt in place (more photos, another
    --val-fraction, other Inception weights) would quietly continue the old model on other data, and move
    photos it trained on into val."""
    from koalarization import records

    saved = rundir.read_config(config.run_dir) or {}
    before, now = saved.get("records"), json.loads(json.dumps(facts))
    if rundir.has_backup(config.run_dir) and before is not None and before != now:
        differs = records.changed_facts(before, now)
        raise UserError(
            f"{config.run_dir}: this run started on other records than {config.records} holds now ({differs} changed); "
            "resume it with the records it started on, or choose a new --run-dir"
        )


def _check_records_folder(records_dir):
    """A records folder without a manifest is one line (:func:`records.read_manifest` reads it later, with TensorFlow)."""
    names = os.listdir(records_dir) if os.path.isdir(records_dir) else []
    if not any(n == constants.MANIFEST_FILE or (n.startswith("manifest-w") and n.endswith(".json")) for n in names):
        raise UserError(f"{records_dir}: no manifest.json here; build records first with `python -m tfrecords_builder --out {records_dir}`")


def _train(config, chief, callbacks, log):
    from koalarization.train import loop  # TensorFlow from here on

    strategy = loop.make_strategy(config.distribution)  # first: multi-worker collectives precede any TF op
    import keras
    import tensorflow as tf

    from koalarization import precision, records
    from koalarization.records import dataset as data
    from koalarization.model.network import build_colorizer, compile_colorizer

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
        facts = records.facts(manifest)
        _check_same_records(config, facts)
        rundir.write_config(config.run_dir, {
            "config": dataclasses.asdict(config), "records": facts,
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
    except (FloatingPointError, loop.WorkersDisagree) as error:
        log("")  # end the progress bar's line
        raise UserError(str(error)) from None
    except tf.errors.DataLossError as error:
        log("")
        raise UserError(loop.damaged_records_message([config.records], error)) from None
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
    from koalarization.model import inception as embedding
    from koalarization.export import savedmodel as saved_model

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
