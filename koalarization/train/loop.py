"""The training loop of ``python -m koalarization.train``: one ``tf.function`` step under
``strategy.run`` for every ``--distribution``.

Keras 3's ``fit`` breaks under ``MultiWorkerMirroredStrategy`` (keras-team/keras#20585, #20329),
so the loop is a small custom one driving the standard Keras callbacks (progress bar,
``TensorBoard``, ``TerminateOnNaN``) as ``fit`` would; the run dir's files (history, best
checkpoint, backup) are written by :mod:`koalarization.train.rundir`, kill-safe.

- The loss is the paper's MSE on scaled ab, averaged over the GLOBAL batch: each replica divides
  its sum by the true number of examples in the whole step (all-reduced), so any number of
  replicas and any uneven split of a batch give the single-device mean and gradient.
- A replica whose part of a batch is empty (a last batch smaller than the number of replicas,
  or a worker whose files ran out first) skips the model: convolutions on zero examples fail
  under oneDNN ("input depth must be evenly divisible by filter depth").
- Every epoch reads the train split shuffled by ``(seed, epoch)``, so a resumed run sees the same
  batches as one that was never stopped and ends with the same weights. With ``--hints`` (the
  colour-hints variant, :mod:`koalarization.model.hints`) each batch also gets simulated clicks
  seeded by ``(seed, epoch)`` and its position in the epoch, drawn alike after a resume.
"""

import math
import os
import re
import sys

from koalarization import quiet_tensorflow  # noqa: E402

quiet_tensorflow()
import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from koalarization import plots, records, safeio  # noqa: E402
from koalarization.records.dataset import Records
from koalarization.model import hints

VAL_HINTS_SEED = -1  # --hints: the val split's (and the sample panel's) simulated clicks, the same every epoch

SUM = tf.distribute.ReduceOp.SUM
HEARTBEAT_TIMEOUT_MS = 120_000  # a worker busy on a loaded machine is not a dead one


# -- strategy ----------------------------------------------------------------------------------
def make_strategy(distribution):
    """``none``: the default strategy; ``mirrored``: all local GPUs (or all logical CPUs when
    there is no GPU); ``multi_worker``: the cluster described by ``TF_CONFIG`` (tasks ``chief``
    and/or ``worker``)."""
    if distribution == "none":
        return tf.distribute.get_strategy()
    if distribution == "mirrored":
        devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
        return tf.distribute.MirroredStrategy([d.name for d in devices])
    configure_coordination()
    return tf.distribute.MultiWorkerMirroredStrategy()


def configure_coordination():
    """The coordination service MultiWorkerMirroredStrategy would start, with heartbeat and
    registration timeouts that a worker on a loaded machine (or slow to import TensorFlow) meets."""
    from tensorflow.python.eager import context
    from tensorflow.compiler.xla.tsl.protobuf import coordination_config_pb2

    resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
    cluster = resolver.cluster_spec()
    if context.context().coordination_service is not None or resolver.task_type not in ("chief", "worker"):
        return
    jobs = [coordination_config_pb2.CoordinatedJob(name=job, num_tasks=cluster.num_tasks(job))
            for job in ("chief", "worker") if job in cluster.jobs]
    leader = f"/job:{'chief' if 'chief' in cluster.jobs else 'worker'}/replica:0/task:0"
    context.context().configure_coordination_service(
        service_type="standalone", service_leader=leader, coordinated_jobs=jobs,
        heartbeat_timeout_in_ms=HEARTBEAT_TIMEOUT_MS, cluster_register_timeout_in_ms=10 * HEARTBEAT_TIMEOUT_MS,
        shutdown_barrier_timeout_in_ms=10 * HEARTBEAT_TIMEOUT_MS,
    )


def num_workers(strategy):
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or resolver.task_type is None:
        return 1
    jobs = resolver.cluster_spec().as_dict()
    return sum(len(jobs.get(job, [])) for job in ("chief", "worker"))


def distribute(strategy, dataset, shards=None):
    """``dataset`` split over the strategy's replicas. Several workers each read only their own
    files (FILE auto-shard) when the ``shards`` files split evenly over them, else every worker
    reads everything and keeps its part (DATA). Uneven FILE sharding would bias the epoch: 10 shards
    over 4 workers give 3/3/2/2, and the workers with 2 repeat theirs half as often again."""
    options = tf.data.Options()
    use_files = _files_split_evenly(shards, num_workers(strategy))
    policy = tf.data.experimental.AutoShardPolicy
    options.experimental_distribute.auto_shard_policy = policy.FILE if use_files else policy.DATA
    return strategy.experimental_distribute_dataset(dataset.with_options(options))


def _files_split_evenly(shards, workers):
    return shards is not None and workers > 1 and shards % workers == 0


def shard_policy_line(strategy, shards):
    workers = num_workers(strategy)
    if _files_split_evenly(shards, workers):
        return f"Input: {shards} train shards over {workers} workers: FILE auto-shard, each worker reads only its own shards."
    return (
        f"Input: {shards} train shards over {workers} workers: DATA auto-shard, every worker reads all shards and keeps "
        "its part (FILE needs a number of shards divisible by the workers)."
    )


# -- the steps ---------------------------------------------------------------------------------
def per_example_mse(pred, ab):
    return tf.reduce_mean(tf.square(tf.cast(pred, tf.float32) - ab), axis=[1, 2, 3])  # (B,)


def make_steps(model, strategy):
    """``train_step(iterator) -> mean loss`` over the global batch, and ``eval_step(batch) ->
    (loss sum, example count)`` summed over all replicas."""
    optimizer = model.optimizer
    variables = model.trainable_variables
    # Keras' LossScaleOptimizer looks for inf/NaN in each replica's own gradients, before they are
    # summed: a replica whose share overflowed in float16 would skip the step while the others take
    # it, and the copies of the weights would drift apart (then NaN). Every replica must decide alike.
    agree_on_overflow = isinstance(optimizer, keras.optimizers.LossScaleOptimizer) and strategy.num_replicas_in_sync > 1

    def count(ab):
        return tf.cast(tf.shape(ab)[0], tf.float32)

    def replica_train(inputs, ab, global_count):
        def gradients():
            with tf.GradientTape() as tape:
                pred = model(inputs, training=True)  # (b, S, S, 2)
                loss = tf.reduce_sum(per_example_mse(pred, ab)) / global_count  # this replica's share of the global mean
                scaled = optimizer.scale_loss(loss)  # loss scaling under mixed_float16
            grads = tape.gradient(scaled, variables)
            return [loss] + [tf.zeros(v.shape, v.dtype) if g is None else g for g, v in zip(grads, variables)]

        def nothing():  # this replica's part of the batch is empty
            return [tf.constant(0.0)] + [tf.zeros(v.shape, v.dtype) for v in variables]

        loss, *grads = tf.cond(tf.shape(ab)[0] > 0, gradients, nothing)
        if agree_on_overflow:
            grads = overflow_everywhere_if_anywhere(grads)
        optimizer.apply_gradients(zip(grads, variables))  # summed over replicas
        return loss

    def replica_eval(inputs, ab):
        def errors():
            return tf.reduce_sum(per_example_mse(model(inputs, training=False), ab))

        return tf.cond(tf.shape(ab)[0] > 0, errors, lambda: tf.constant(0.0)), count(ab)

    @tf.function
    def train_step(iterator):
        inputs, ab = next(iterator)
        global_count = strategy.reduce(SUM, strategy.run(count, args=(ab,)), axis=None)  # true size, not nominal
        return strategy.reduce(SUM, strategy.run(replica_train, args=(inputs, ab, global_count)), axis=None)

    @tf.function(reduce_retracing=True)
    def eval_step(batch):
        loss_sum, n = strategy.run(replica_eval, args=batch)
        return strategy.reduce(SUM, loss_sum, axis=None), strategy.reduce(SUM, n, axis=None)

    return train_step, eval_step


def overflow_everywhere_if_anywhere(grads):
    """In a replica context: the gradients, or (when any replica's gradients hold an inf or NaN) inf
    on every replica, so that the loss-scale optimizer of each skips the step and lowers its scale alike."""
    finite = tf.reduce_all([tf.reduce_all(tf.math.is_finite(g)) for g in grads])
    overflowed = tf.distribute.get_replica_context().all_reduce(SUM, 1.0 - tf.cast(finite, tf.float32))  # replicas that overflowed
    return tf.cond(overflowed > 0, lambda: [g + tf.constant(float("inf"), g.dtype) for g in grads], lambda: list(grads))


def evaluate(eval_step, dataset):
    """Mean per-example loss over a distributed dataset."""
    loss_sum, count = 0.0, 0.0
    for batch in dataset:
        batch_sum, batch_count = eval_step(batch)
        loss_sum, count = loss_sum + float(batch_sum), count + float(batch_count)
    return loss_sum / max(count, 1.0)


def epoch_seed(seed, epoch):
    """The train split's shuffle seed of one epoch: the same whether or not the run was resumed."""
    return seed * 1_000_003 + epoch


# -- callbacks ---------------------------------------------------------------------------------
class SamplePanels(keras.callbacks.Callback):
    """Every epoch: colorize a fixed batch, write the panel to TensorBoard and ``samples/``."""

    def __init__(self, inputs, ab, samples_dir, log_dir):
        super().__init__()
        self.inputs, self.ab, self.samples_dir = inputs, ab, samples_dir
        os.makedirs(samples_dir, exist_ok=True)
        self.writer = tf.summary.create_file_writer(log_dir)

    def on_epoch_end(self, epoch, logs=None):
        pred = self.model(self.inputs, training=False)  # (n, S, S, 2)
        panel = plots.sample_panel(self.inputs["l"], pred, self.ab)  # (n*S, 3S, 3)
        with self.writer.as_default():
            tf.summary.image("gray | prediction | truth", panel[None], step=epoch + 1)
        self.writer.flush()
        png = tf.io.encode_png(tf.cast(tf.round(panel * 255.0), tf.uint8))
        safeio.write_bytes(os.path.join(self.samples_dir, f"epoch_{epoch + 1:03d}.png"), png.numpy())


def builtin_callbacks(config, recs, chief):
    if not chief:
        return [keras.callbacks.TerminateOnNaN()]  # the losses are all-reduced: every worker stops alike
    split = "val" if recs.num_examples("val") else "train"
    samples = recs.dataset(split, config.sample_images, shuffle=False)
    inputs, ab = next(iter(hints.with_simulated_hints(samples, VAL_HINTS_SEED) if config.hints else samples))
    logs = os.path.join(config.run_dir, "logs")
    return [
        keras.callbacks.TerminateOnNaN(),
        keras.callbacks.TensorBoard(logs, write_graph=False),
        SamplePanels(inputs, ab, os.path.join(config.run_dir, "samples"), os.path.join(logs, "samples")),
    ]


# -- damaged records ---------------------------------------------------------------------------
def find_damaged_shard(paths):
    """The first shard in ``paths`` that TensorFlow cannot read to its end, with the reason."""
    for path in paths:
        try:
            for _ in tf.data.TFRecordDataset(path):
                pass
        except (tf.errors.DataLossError, tf.errors.InvalidArgumentError) as error:
            return path, _reason(error)
    return None, None


def _reason(error):
    """TensorFlow's message without its graph-node prefix and op suffix: "corrupted record at 6516"."""
    text = re.sub(r"\{\{[^}]*\}\}\s*", "", error.message.splitlines()[0])
    return re.sub(r"\s*\[Op:.*$", "", text).strip()


def damaged_records_message(opened, error, first_split=None):
    """One line for a ``DataLossError`` met reading any of the :class:`Records` ``opened``: the damaged
    shard and what to do. Shards are read to their end to find it, ``first_split``'s first (the one being
    read, say)."""
    for recs in opened:
        splits = sorted(recs.splits, key=lambda split: split != first_split)
        shard, reason = find_damaged_shard([path for split in splits for path in recs.shards(split)])
        if shard is not None:
            return (f"{shard}: damaged record ({reason}); delete this shard and rebuild it with the command "
                    f"that built {recs.path} plus --resume")
    return f"{' or '.join(recs.path for recs in opened)}: a record could not be read ({_reason(error)})"


# -- the loop ----------------------------------------------------------------------------------

def progress_verbosity():
    """Keras' live progress bar (1) on a terminal or in a notebook; one plain line per epoch (2)
    when the output goes to a file or a pipe, where the live bar's colour codes and backspaces
    would fill the log (Keras 3 takes every POSIX stdout for a terminal)."""
    interactive = (hasattr(sys.stdout, "isatty") and sys.stdout.isatty()) or "ipykernel" in sys.modules
    return 1 if interactive else 2


class WorkersDisagree(RuntimeError):
    """The workers of one cluster would train from different states."""


def check_workers_resume_alike(strategy, epoch, position=None):
    """Every worker restores its own run dir: one that cannot see the chief's backup (a local path
    instead of shared storage) would start from epoch 0 while the others resume, and the replicas
    would apply the same gradients to different weights. One all-reduce (sum of the position and of
    its square over the replicas: all equal exactly when n * sum(p^2) == sum(p)^2) finds it on every
    worker. ``position``: the steps done in all, when the backup may be inside an epoch (default: the epoch)."""
    position = epoch if position is None else position
    value = tf.constant([float(position), float(position) ** 2, 1.0], tf.float64)
    total = strategy.reduce(tf.distribute.ReduceOp.SUM, strategy.run(lambda: tf.identity(value)), axis=None).numpy()
    if abs(total[2] * total[1] - total[0] ** 2) > 0.5:
        raise WorkersDisagree(
            f"the workers would resume from different epochs (this one from epoch {epoch}, step {position} in all; "
            f"the mean is step {total[0] / total[2]:g}): "
            "every worker needs --run-dir on storage all of them see, holding the same backup"
        )


def fit(model, strategy, config, recs, run, extra_callbacks, log):
    """Train on the opened records ``recs`` from the run's backup (or from scratch) to ``config.epochs``;
    returns the history. Raises ``FloatingPointError`` with a message when the loss became NaN or infinite."""
    n_train, n_val = recs.num_examples("train"), recs.num_examples("val")
    steps = config.steps_per_epoch or max(1, math.ceil(n_train / config.batch_size))
    train_shards = len(recs.shards("train"))
    several = num_workers(strategy) > 1
    if several:
        log(shard_policy_line(strategy, train_shards))
    initial_epoch, initial_step, carried = run.restore(model)
    if several:
        check_workers_resume_alike(strategy, initial_epoch, initial_epoch * steps + initial_step)
    if initial_step:
        log(f"Resuming from the backup after step {initial_step} of epoch {initial_epoch + 1}.")
    elif initial_epoch:
        log(f"Resuming from the backup after epoch {initial_epoch}.")
    callbacks = keras.callbacks.CallbackList(
        builtin_callbacks(config, recs, run.chief) + list(extra_callbacks),
        add_progbar=run.chief, model=model, verbose=progress_verbosity(), epochs=config.epochs, steps=steps,
    )
    train_step, eval_step = make_steps(model, strategy)
    val_ds = None
    if n_val:
        val_ds = recs.dataset("val", config.batch_size, shuffle=False)
        batches = math.ceil(n_val / config.batch_size)
        if config.validation_steps:
            val_ds = val_ds.take(config.validation_steps)
        elif batches / 3 > steps / 2:  # a val batch: forward only, ~1/3 of a train step
            log(f"Validation: all {n_val} val examples ({batches} batches, forward only: about {batches / 3 / steps:.0%} of "
                f"an epoch of {steps} step{'s' if steps > 1 else ''}) after every epoch; --validation-steps N bounds it.")  # fmt: skip
        if config.hints:  # the same clicks every epoch: val_loss stays comparable
            val_ds = hints.with_simulated_hints(val_ds, VAL_HINTS_SEED)
        val_ds = distribute(strategy, val_ds, len(recs.shards("val")))

    callbacks.on_train_begin()
    logs = {}
    for epoch in range(initial_epoch, config.epochs):
        callbacks.on_epoch_begin(epoch)
        first, total = (initial_step, carried) if epoch == initial_epoch else (0, 0.0)
        # The steps the backup already holds are not trained again: their batches are skipped before
        # they are parsed. One worker, or DATA auto-shard (every worker reads the same global batches and
        # keeps its part): one global batch a step. FILE auto-shard: each worker batches its own files at
        # the global size and TF's rebatch cuts each such batch into workers x replicas pieces, of which a
        # step takes one per replica, so a worker's batch lasts `workers` steps; the whole ones are skipped
        # unparsed, the rest of the last (first % workers steps) taken from the iterator.
        workers = num_workers(strategy)
        per_batch = workers if _files_split_evenly(train_shards, workers) else 1
        unparsed, taken = divmod(first, per_batch)
        if first:
            log(f"The backup holds this epoch's first {first} steps: {unparsed} of its input batches skipped unparsed"
                + (f", then {taken} step{'s' if taken > 1 else ''} read and dropped (a worker's own batch lasts {per_batch} steps)." if taken else "."))
        train_ds = recs.dataset(
            "train", config.batch_size, repeat=True, seed=epoch_seed(config.seed, epoch),
            shuffle_buffer=config.shuffle_buffer, cycle_length=config.cycle_length,
            random_starts=steps * config.batch_size < n_train,  # epochs shorter than the split: see Records.dataset
            skip_batches=unparsed,
        )
        if config.hints:  # simulated clicks, seeded by the epoch and the batch's position in it
            train_ds = hints.with_simulated_hints(train_ds, epoch_seed(config.seed, epoch), start=unparsed)  # its first batch: the epoch's batch `unparsed`
        iterator = iter(distribute(strategy, train_ds, train_shards))
        for _ in range(taken):
            next(iterator)
        for step in range(first, steps):
            callbacks.on_train_batch_begin(step)
            total += float(train_step(iterator))
            logs = {"loss": total / (step + 1)}
            callbacks.on_train_batch_end(step, logs)
            if model.stop_training:
                break
            if config.backup_every_steps and (step + 1) % config.backup_every_steps == 0 and step + 1 < steps:
                run.save_progress(model, epoch, step + 1, total)
        if model.stop_training and not math.isfinite(logs["loss"]):
            callbacks.on_train_end(logs)
            raise FloatingPointError(f"the loss became {logs['loss']} in epoch {epoch + 1}; try a lower --learning-rate")
        if val_ds is not None:
            callbacks.on_test_begin()
            logs["val_loss"] = evaluate(eval_step, val_ds)
            callbacks.on_test_end({"loss": logs["val_loss"]})
        run.end_epoch(model, epoch, logs)  # history.csv, best.keras, then the backup: the commit
        callbacks.on_epoch_end(epoch, logs)
        if model.stop_training:  # a callback's stop at the epoch's end (EarlyStopping): no step of the next epoch
            break
    callbacks.on_train_end(logs)
    return run.history


def warn_random_embedding(manifest, log):
    if manifest["embedding"].get("weights", {}).get("source") == "random":
        bar = "!" * 78
        log(
            f"{bar}\n!! WARNING: these records were built with RANDOM Inception-ResNet-v2 weights.\n"
            "!! The embedding carries no ImageNet semantics: the model can learn only from\n"
            "!! luminance. Rebuild the records with ImageNet weights for real results.\n"
            f"{bar}",
            file=sys.stderr,
        )
