"""Training, as a library: :class:`TrainConfig`, :func:`train` and what a run leaves behind.

    from koalarization.train.trainer import TrainConfig, train
    result = train(TrainConfig.with_preset("smoke", records="records/", run_dir="runs/smoke"))
    result.model_path, result.history["val_loss"]

The command line is :mod:`koalarization.train` (``python -m koalarization.train``): it parses a
:class:`koalarization.train.config.TrainConfig` and calls :func:`run`; the demo and the notebooks call this module, so no command imports another.

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
from koalarization import cli, constants, errors, locks, safeio
from koalarization.train import rundir
from koalarization.train.config import DISTRIBUTIONS, PRECISIONS, PRESETS, TrainConfig, UserError  # noqa: F401  (the config train takes)


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
        rundir.check(config.run_dir, dataclasses.asdict(config))  # a different or finished run: refused (RunDirError)
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
    """A records folder without a manifest is one line (:class:`Records` reads it later, with TensorFlow)."""
    names = os.listdir(records_dir) if os.path.isdir(records_dir) else []
    if not any(n == constants.MANIFEST_FILE or (n.startswith("manifest-w") and n.endswith(".json")) for n in names):
        raise UserError(f"{records_dir}: no manifest.json here; build records first with `python -m tfrecords_builder --out {records_dir}`")


def _train(config, chief, callbacks, log):
    from koalarization.train import loop  # TensorFlow from here on

    strategy = loop.make_strategy(config.distribution)  # first: multi-worker collectives precede any TF op
    import keras
    import tensorflow as tf

    from koalarization import precision, records
    from koalarization.records.dataset import Records
    from koalarization.model.network import build_colorizer, compile_colorizer

    policy = precision.training_policy(config.precision)  # "auto" -> mixed_bfloat16 where bf16 is native
    recs = Records(config.records)  # the manifest read and checked once, for the whole run
    manifest = recs.manifest
    n_train, n_val = recs.num_examples("train"), recs.num_examples("val")
    if n_train == 0:
        raise UserError(f"{config.records}: the train split is empty")
    log("Training config:\n" + "\n".join(f"  {k}: {v}" for k, v in dataclasses.asdict(config).items()))
    if config.precision == "auto":
        log(f"--precision auto: training in {policy} ({precision.native_bf16()[1]})")
    log(f"Records: {n_train} train / {n_val} val examples at {manifest['image_size']}px, embedding {manifest['embedding']}")
    loop.warn_random_embedding(manifest, log)
    if chief:
        facts = recs.facts()
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
            model = build_colorizer(recs.embedding_dim, hints=config.hints)
            compile_colorizer(model, config.learning_rate, config.clipnorm)
            model.optimizer.build(model.trainable_variables)
        model.stop_training = False
        history = loop.fit(model, strategy, config, recs, run, callbacks, log)
    except (FloatingPointError, loop.WorkersDisagree) as error:
        log("")  # end the progress bar's line
        raise UserError(str(error)) from None
    except tf.errors.DataLossError as error:
        log("")
        raise records.RecordsError(loop.damaged_records_message([recs], error)) from None
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


def interrupted_line(run_dir):
    """What Ctrl-C leaves, in one line."""
    kept, step = rundir.backup_position(run_dir) if run_dir else (0, 0)
    if kept or step:
        where = f"step {step} of epoch {kept + 1}" if step else f"epoch {kept}"
        return (f"interrupted: {run_dir} keeps the backup after {where} (and checkpoints/best.keras); "
                "run the same command again to resume")  # fmt: skip
    return f"interrupted before the first backup was saved: run the same command again to start {run_dir or 'the run'} over"


def run(config):
    """The command ``python -m koalarization.train``: :func:`train`, then the run dir's name; exit status 0."""
    try:
        result = train(config)
    except KeyboardInterrupt:
        raise errors.Interrupted(interrupted_line(config.run_dir)) from None
    except OSError as error:  # a full disk, say, while saving: the last backup is whole (written atomically)
        if isinstance(error, (errors.KoalarizationError, FileNotFoundError)):
            raise
        where = error.filename or config.run_dir
        raise errors.OutputError(
            f"{safeio.describe_os_error(where, error)}; {safeio.what_to_do(error)} and run the same command again to resume"
        ) from None
    if result.is_chief:
        print(f"Run dir: {result.run_dir}")
    return 0


main = cli.command(TrainConfig, run, presets=PRESETS)  # main(argv=None): the command line -> its exit status
