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
``backup/``: a run killed and started again with the same command resumes after the last
finished epoch (Keras' ``BackupAndRestore``).

Design: ONE training loop for every ``--distribution``. Keras 3's ``fit`` breaks under
``MultiWorkerMirroredStrategy`` (keras-team/keras#20585, #20329), while a train step run with
``strategy.run`` works under every strategy. So the loop here is a small custom one: a
``tf.function`` train step under ``strategy.run`` (the default strategy when
``--distribution none``), driving the ecosystem's Keras callbacks (progress bar,
``ModelCheckpoint``, ``BackupAndRestore``, ``TensorBoard``, ``CSVLogger``, ``TerminateOnNaN``)
through ``keras.callbacks.CallbackList``, exactly as ``fit`` drives them. The loss is the paper's
MSE on scaled ab, averaged over the global batch (``tf.nn.compute_average_loss``); the Keras
optimizer sums gradients over replicas. Datasets are sharded by data (every worker reads every
shard and keeps its part), so any number of shards works with any number of workers. With
``multi_worker`` only the chief writes the run dir; the other workers write to a temporary dir
and restore from the chief's backup.
"""

import argparse
import csv
import dataclasses
import json
import math
import os
import sys
import tempfile
from typing import Optional

import koalarization
from koalarization import colors, data, records
from koalarization.model import build_colorizer, compile_colorizer

from koalarization import quiet_tensorflow  # noqa: E402

quiet_tensorflow()
import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")
DISTRIBUTIONS = ("none", "mirrored", "multi_worker")
PRESETS = {
    "paper": {},  # the dataclass defaults are the paper's settings
    "smoke": {"epochs": 2, "steps_per_epoch": 3, "validation_steps": 2, "batch_size": 4},
}


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
    export: bool = True  # export RUN/saved_model/1 for TF Serving at the end (Inception records only)
    verbose: bool = False

    def __post_init__(self):
        if self.preset not in PRESETS:
            raise UserError(f"unknown preset {self.preset!r}; choose from {sorted(PRESETS)}")
        if self.precision not in PRECISIONS:
            raise UserError(f"unknown precision {self.precision!r}; choose from {PRECISIONS}")
        if self.distribution not in DISTRIBUTIONS:
            raise UserError(f"unknown distribution {self.distribution!r}; choose from {DISTRIBUTIONS}")
        for name in ("epochs", "batch_size", "sample_images", "steps_per_epoch", "validation_steps"):
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
    model: keras.Model
    is_chief: bool = True
    replicas: int = 1  # replicas in sync under the strategy


# -- strategy ----------------------------------------------------------------------------------
def make_strategy(distribution):
    """``none``: the default strategy; ``mirrored``: all local GPUs (or all logical CPUs when
    there is no GPU); ``multi_worker``: the cluster described by ``TF_CONFIG``."""
    if distribution == "none":
        return tf.distribute.get_strategy()
    if distribution == "mirrored":
        devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
        return tf.distribute.MirroredStrategy([d.name for d in devices])
    if not os.environ.get("TF_CONFIG"):
        raise UserError("--distribution multi_worker needs TF_CONFIG describing the cluster and this task")
    return tf.distribute.MultiWorkerMirroredStrategy()


def is_chief(strategy):
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or resolver.task_type in (None, "chief"):
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return resolver.task_type == "worker" and resolver.task_id == 0 and not has_chief


# -- run dir -----------------------------------------------------------------------------------
def records_facts(manifest):
    """What config.json records about the training data."""
    splits = {name: info.get("examples", 0) for name, info in manifest["splits"].items()}
    return {"image_size": manifest["image_size"], "embedding": manifest["embedding"], "examples": splits}


def check_run_dir(config):
    """Refuse a run dir that holds a different run or a finished one; True when resuming."""
    path = os.path.join(config.run_dir, "config.json")
    if not os.path.exists(path):
        return False
    with open(path) as f:
        saved = json.load(f).get("config", {})
    current = dataclasses.asdict(config)
    differs = sorted(k for k in current if k != "verbose" and saved.get(k) != current[k])
    if differs:
        raise UserError(
            f"{config.run_dir}: holds a run with different settings ({', '.join(differs)}); "
            "resume it with the same flags or choose a new --run-dir"
        )
    resuming = os.path.exists(os.path.join(config.run_dir, "backup", "training_metadata.json"))
    if not resuming and os.path.exists(os.path.join(config.run_dir, "model.keras")):
        raise UserError(f"{config.run_dir}: holds a finished run (model.keras); choose a new --run-dir")
    return resuming


def read_history(path):
    """history.csv -> {column: [floats]}, without the all-"NA" val columns of a run without val."""
    if not os.path.exists(path):
        return {}
    with open(path) as f:
        rows = list(csv.DictReader(f))
    columns = {key: [row[key] for row in rows if row.get(key) not in (None, "", "NA")] for key in (rows[0] if rows else {})}
    return {key: [float(v) for v in values] for key, values in columns.items() if values}


def plot_loss(history, path):
    """Loss curves (train and, when there is one, val) as a PNG, without touching pyplot's state."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    fig = Figure(figsize=(6, 4))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    epochs = [e + 1 for e in history.get("epoch", [])]
    for key in ("loss", "val_loss"):
        if len(history.get(key, [])) == len(epochs) and epochs:
            ax.plot(epochs, history[key], marker="o", label=key)
    ax.set(xlabel="epoch", ylabel="MSE on scaled ab", title="Koalarization training")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    ax.legend()
    fig.savefig(path, dpi=100, bbox_inches="tight")


# -- callbacks ---------------------------------------------------------------------------------
def sample_panel(l, ab_pred, ab_true):
    """Rows of gray | prediction | truth, float RGB (n*S, 3*S, 3) in [0, 1]."""
    lum = colors.unscale_l(l)  # (n, S, S, 1) in [0, 100]

    def rgb(ab_scaled):
        return colors.lab_to_rgb(tf.concat([lum, colors.unscale_ab(ab_scaled)], axis=-1))  # (n, S, S, 3)

    gray = rgb(tf.zeros_like(ab_true))
    row = tf.concat([gray, rgb(tf.cast(ab_pred, tf.float32)), rgb(ab_true)], axis=2)  # (n, S, 3S, 3)
    return tf.clip_by_value(tf.reshape(row, (-1, row.shape[2], 3)), 0.0, 1.0)  # (n*S, 3S, 3)


class SamplePanels(keras.callbacks.Callback):
    """Every epoch: colorize a fixed batch, write the panel to TensorBoard and ``samples/``."""

    def __init__(self, inputs, ab, samples_dir, log_dir):
        super().__init__()
        self.inputs, self.ab, self.samples_dir = inputs, ab, samples_dir
        os.makedirs(samples_dir, exist_ok=True)
        self.writer = tf.summary.create_file_writer(log_dir)

    def on_epoch_end(self, epoch, logs=None):
        pred = self.model(self.inputs, training=False)  # (n, S, S, 2)
        panel = sample_panel(self.inputs["l"], pred, self.ab)  # (n*S, 3S, 3)
        with self.writer.as_default():
            tf.summary.image("gray | prediction | truth", panel[None], step=epoch + 1)
        self.writer.flush()
        png = tf.io.encode_png(tf.cast(tf.round(panel * 255.0), tf.uint8))
        tf.io.write_file(os.path.join(self.samples_dir, f"epoch_{epoch + 1:03d}.png"), png)


class WorkerBackup(keras.callbacks.BackupAndRestore):
    """For non-chief workers: restore from the chief's backup, write own backups elsewhere."""

    def __init__(self, chief_backup_dir, own_backup_dir):
        super().__init__(own_backup_dir)
        self.chief = keras.callbacks.BackupAndRestore(chief_backup_dir)

    def on_train_begin(self, logs=None):
        self.chief.set_model(self.model)
        self.chief.on_train_begin(logs)


def make_callbacks(out_dir, monitor, resuming, chief, run_dir):
    try:
        import tensorboard  # noqa: F401  (tf.summary needs it)
    except ImportError:
        raise UserError("TensorBoard is not installed (needed for the logs): pip install tensorboard") from None
    backup = os.path.join(out_dir, "backup")
    restore = keras.callbacks.BackupAndRestore(backup) if chief else WorkerBackup(os.path.join(run_dir, "backup"), backup)
    os.makedirs(os.path.join(out_dir, "checkpoints"), exist_ok=True)
    return [
        keras.callbacks.TerminateOnNaN(),
        restore,
        keras.callbacks.ModelCheckpoint(os.path.join(out_dir, "checkpoints", "best.keras"), monitor=monitor, save_best_only=True),
        keras.callbacks.TensorBoard(os.path.join(out_dir, "logs"), write_graph=False),
        keras.callbacks.CSVLogger(os.path.join(out_dir, "history.csv"), append=resuming),
    ]


# -- the training loop -------------------------------------------------------------------------
def per_example_mse(pred, ab):
    return tf.reduce_mean(tf.square(tf.cast(pred, tf.float32) - ab), axis=[1, 2, 3])  # (B,)


def make_steps(model, strategy):
    """``train_step(iterator) -> mean loss`` and ``eval_step(batch) -> (loss sum, count)``."""
    optimizer = model.optimizer
    variables = model.trainable_variables
    total = tf.distribute.ReduceOp.SUM

    def replica_train(inputs, ab):
        with tf.GradientTape() as tape:
            pred = model(inputs, training=True)  # (b, S, S, 2)
            loss = tf.nn.compute_average_loss(per_example_mse(pred, ab))  # sum / global batch
            scaled = optimizer.scale_loss(loss)  # loss scaling under mixed_float16
        optimizer.apply_gradients(zip(tape.gradient(scaled, variables), variables))  # all-reduced
        return loss

    def replica_eval(inputs, ab):
        errors = per_example_mse(model(inputs, training=False), ab)  # (b,)
        return tf.reduce_sum(errors), tf.cast(tf.shape(errors)[0], tf.float32)

    @tf.function
    def train_step(iterator):
        return strategy.reduce(total, strategy.run(replica_train, args=next(iterator)), axis=None)

    @tf.function(reduce_retracing=True)
    def eval_step(batch):
        loss_sum, count = strategy.run(replica_eval, args=batch)
        return strategy.reduce(total, loss_sum, axis=None), strategy.reduce(total, count, axis=None)

    return train_step, eval_step


def distribute(strategy, dataset):
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return strategy.experimental_distribute_dataset(dataset.with_options(options))


def warn_random_embedding(manifest, log):
    weights = manifest["embedding"].get("weights", {})
    if weights.get("source") == "random":
        bar = "!" * 78
        log(
            f"{bar}\n!! WARNING: these records were built with RANDOM Inception-ResNet-v2 weights.\n"
            "!! The embedding carries no ImageNet semantics: the model can learn only from\n"
            "!! luminance. Rebuild the records with ImageNet weights for real results.\n"
            f"{bar}",
            file=sys.stderr,
        )


def _print(*args, **kwargs):
    print(*args, **kwargs, flush=True)


def train(config, callbacks=(), log=_print):
    """Train as ``config`` says; returns a :class:`TrainResult`. ``callbacks``: extra Keras
    callbacks, run after the built-in ones."""
    strategy = make_strategy(config.distribution)  # first: multi-worker collectives precede any TF op
    chief = is_chief(strategy)
    manifest = records.read_manifest(config.records)
    n_train, n_val = data.num_examples(config.records, "train"), data.num_examples(config.records, "val")
    if n_train == 0:
        raise UserError(f"{config.records}: the train split is empty")
    log("Training config:\n" + "\n".join(f"  {k}: {v}" for k, v in dataclasses.asdict(config).items()))
    log(f"Records: {n_train} train / {n_val} val examples at {manifest['image_size']}px, embedding {records_facts(manifest)['embedding']}")
    warn_random_embedding(manifest, log)
    resuming = check_run_dir(config)

    workdir = None if chief else tempfile.TemporaryDirectory(prefix="koalarization-worker-")
    out_dir = config.run_dir if chief else workdir.name
    os.makedirs(out_dir, exist_ok=True)
    payload = {"config": dataclasses.asdict(config), "records": records_facts(manifest),
               "replicas": strategy.num_replicas_in_sync, "versions": {"koalarization": koalarization.__version__,
               "keras": keras.__version__, "tensorflow": tf.__version__}}
    records.write_json_atomic(os.path.join(out_dir, "config.json"), payload)
    if n_val == 0:
        log("The val split is empty: training without validation.")

    previous_policy = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(config.precision)
    try:
        keras.utils.set_random_seed(config.seed)
        with strategy.scope():
            model = build_colorizer(records.embedding_dim(manifest))
            compile_colorizer(model, config.learning_rate)
            model.optimizer.build(model.trainable_variables)
        model.stop_training = False
        history = _fit(model, strategy, config, manifest, n_train, n_val, out_dir, resuming, chief, list(callbacks), log)
    finally:
        keras.mixed_precision.set_global_policy(previous_policy)

    model_path = None
    if chief:
        model_path = os.path.join(config.run_dir, "model.keras")
        model.save(model_path)
        plot_loss(history, os.path.join(config.run_dir, "loss.png"))
        log(f"Saved the final model to {model_path}")
        if config.export:
            export_run(config.run_dir, manifest, log)
    if workdir is not None:
        workdir.cleanup()
    return TrainResult(config, config.run_dir, model_path, history, model, chief, strategy.num_replicas_in_sync)


def export_run(run_dir, manifest, log):
    """Export ``run_dir/saved_model/1`` for TF Serving, when the records hold Inception embeddings."""
    from koalarization import embedding, export

    facts = manifest["embedding"]
    if facts.get("dim") != embedding.EMBEDDING_DIM or facts.get("weights", {}).get("source") not in ("imagenet", "random", "file"):
        log(f"Not exporting a SavedModel: the records' embeddings come from {facts.get('model')!r}, not Inception-ResNet-v2.")
        return None
    out = os.path.join(run_dir, "saved_model", "1")
    return export.export_from_path(export.ExportConfig(model=run_dir, out=out, overwrite=True), log=log)


def _fit(model, strategy, config, manifest, n_train, n_val, out_dir, resuming, chief, extra, log):
    steps = config.steps_per_epoch or max(1, math.ceil(n_train / config.batch_size))
    monitor = "val_loss" if n_val else "loss"
    builtin = make_callbacks(out_dir, monitor, resuming, chief, config.run_dir)
    sample_split = "val" if n_val else "train"
    sample_ds = data.load_dataset(config.records, sample_split, config.sample_images, shuffle=False)
    sample_inputs, sample_ab = next(iter(sample_ds))
    panels = SamplePanels(sample_inputs, sample_ab, os.path.join(out_dir, "samples"), os.path.join(out_dir, "logs", "samples"))
    callback_list = keras.callbacks.CallbackList(
        builtin + [panels] + extra, add_progbar=chief, model=model, verbose=1, epochs=config.epochs, steps=steps
    )
    callback_list.on_train_begin()
    initial_epoch = model._initial_epoch or 0  # set by BackupAndRestore, as fit reads it
    if initial_epoch:
        log(f"Resuming from the backup after epoch {initial_epoch}.")

    train_ds = data.load_dataset(config.records, "train", config.batch_size, repeat=True, seed=config.seed + initial_epoch)
    iterator = iter(distribute(strategy, train_ds))
    val_ds = None
    if n_val:
        val_ds = data.load_dataset(config.records, "val", config.batch_size, shuffle=False)
        if config.validation_steps:
            val_ds = val_ds.take(config.validation_steps)
        val_ds = distribute(strategy, val_ds)
    train_step, eval_step = make_steps(model, strategy)

    logs = {}
    for epoch in range(initial_epoch, config.epochs):
        callback_list.on_epoch_begin(epoch)
        total = 0.0
        for step in range(steps):
            callback_list.on_train_batch_begin(step)
            total += float(train_step(iterator))
            logs = {"loss": total / (step + 1)}
            callback_list.on_train_batch_end(step, logs)
            if model.stop_training:
                break
        if model.stop_training and not math.isfinite(logs["loss"]):
            callback_list.on_train_end(logs)
            log("")  # end the progress bar's line
            raise UserError(f"the loss became {logs['loss']} in epoch {epoch + 1}; try a lower --learning-rate")
        if val_ds is not None:
            callback_list.on_test_begin()
            loss_sum, count = 0.0, 0.0
            for batch in val_ds:
                batch_sum, batch_count = eval_step(batch)
                loss_sum, count = loss_sum + float(batch_sum), count + float(batch_count)
            logs["val_loss"] = loss_sum / max(count, 1.0)
            callback_list.on_test_end({"loss": logs["val_loss"]})
        callback_list.on_epoch_end(epoch, logs)
        if model.stop_training:
            break
    callback_list.on_train_end(logs)
    return read_history(os.path.join(out_dir, "history.csv"))


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
    parser.add_argument("--precision", choices=PRECISIONS, help="Keras dtype policy (default float32; mixed_* on GPUs/TPUs)")
    parser.add_argument("--distribution", choices=DISTRIBUTIONS,
                        help="none (default): one device; mirrored: all local GPUs; multi_worker: the cluster in TF_CONFIG")
    parser.add_argument("--seed", type=int, help="seed of weight initialisation and shuffling (default 0)")
    parser.add_argument("--sample-images", type=int, help="images in the per-epoch sample panel (default 4)")
    parser.add_argument("--export", action=argparse.BooleanOptionalAction, default=None,
                        help="export RUN/saved_model/1 for TF Serving at the end (default: yes, for records "
                        "with Inception embeddings); --no-export skips it")
    parser.add_argument("--verbose", action="store_true", help="show TensorFlow's start-up logs")
    args = vars(parser.parse_args(argv))
    preset = args.pop("preset")
    return TrainConfig.with_preset(preset, **{k: v for k, v in args.items() if v is not None})


def main(argv=None):
    try:
        config = parse_config(argv)
        result = train(config)
    except (UserError, FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if result.is_chief:
        print(f"Run dir: {result.run_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
