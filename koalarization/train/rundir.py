"""The run dir of ``python -m koalarization.train``: its files, and how each one survives a kill.

    RUN/config.json                 the config, the records' facts, versions      (temp name + rename)
    RUN/history.csv                 epoch, loss, val_loss: rewritten whole every epoch (temp name + rename)
    RUN/checkpoints/best.keras      the best model so far                          (temp name + rename)
    RUN/backup/state.weights.h5     weights + optimizer state + {"epoch", "best", "history"}: two
                                    generations (``state.weights.h5``, ``.prev``), each with its SHA-256
    RUN/model.keras                 the final model                                (temp name + rename)
    RUN/.lock                       the trainer that owns the run dir (locks.DirLock)

The backup is written last at the end of every epoch: it is the commit (and every
``--backup-every-steps`` steps inside an epoch, with the step and the loss so far). Everything
else is rebuilt from it, so a kill at any instant leaves a run that the same command resumes:
after the last backed-up step, with the same best-so-far and the same history. A run is finished when
``model.keras`` exists and ``backup/`` is gone; ``backup/`` is removed only after ``model.keras``
(and the export) are whole, so a kill during the final writes is finished by the next run.

No TensorFlow here: the train CLI checks the run dir before the slow imports. The model is
passed in and only its ``save`` / ``save_weights`` / ``load_weights`` are called.
"""

import contextlib
import csv
import io
import json
import math
import os
import shutil
import tempfile

from koalarization import constants, errors, safeio

CONFIG = constants.CONFIG_FILE
HISTORY = "history.csv"
BEST = os.path.join("checkpoints", "best.keras")
MODEL = constants.MODEL_FILE
BACKUP_DIR = "backup"
BACKUP = os.path.join(BACKUP_DIR, "state.weights.h5")
STATE_ATTR = "koalarization_state"  # the backup's epoch/best/history, as JSON in an HDF5 attribute
HISTORY_KEYS = ("epoch", "loss", "val_loss")
UNCOMPARED = ("verbose", "backup_every_steps")  # config fields a resumed run may change
ADDED_LATER = {"hints": False, "clipnorm": None}  # fields newer than some runs: what a config.json without them meant


class RunDirError(errors.OutputError):
    """The run dir cannot be used as asked (another run's, a finished one): one line, no traceback."""


class DamagedRunDirError(RunDirError, errors.DamagedError):
    """A damaged file of the run dir (its config): one line naming it."""

    exit_status = errors.EXIT_DAMAGED


def clean(run_dir):
    """Remove the temporary files of killed writers (ours and Keras') in the run dir's folders."""
    for sub in ("", "checkpoints", BACKUP_DIR, "samples"):
        safeio.clean_temporaries(os.path.join(run_dir, sub))


def read_config(run_dir):
    """The saved config.json payload, or None when there is none; a damaged one is a RunDirError."""
    path = os.path.join(run_dir, CONFIG)
    if not os.path.exists(path):
        return None
    try:
        return safeio.read_json(path, "run config", kind=dict)
    except safeio.DamagedFileError as error:
        raise DamagedRunDirError(f"{error}; move it away to start this run over, or choose a new --run-dir") from None


def check(run_dir, config_fields):
    """Refuse a run dir that holds a different run or a finished one; True when there is a backup
    to resume from. ``config_fields``: the config as a dict (``verbose`` and how often a backup is
    written are not compared: neither changes what is trained)."""
    saved = read_config(run_dir)
    if saved is None:
        return False
    saved = saved.get("config", {})
    if not isinstance(saved, dict):
        raise DamagedRunDirError(f"{os.path.join(run_dir, CONFIG)}: damaged run config (its \"config\" is not an object); "
                          "move it away to start this run over, or choose a new --run-dir")  # fmt: skip
    differs = sorted(k for k in config_fields if k not in UNCOMPARED and saved.get(k, ADDED_LATER.get(k)) != config_fields[k])
    if differs:
        raise RunDirError(
            f"{run_dir}: holds a run with different settings ({', '.join(differs)}); "
            "resume it with the same flags or choose a new --run-dir"
        )
    if has_backup(run_dir):
        return True
    if os.path.exists(os.path.join(run_dir, MODEL)):
        raise RunDirError(f"{run_dir}: holds a finished run ({MODEL}); choose a new --run-dir")
    return False


def has_backup(run_dir):
    path = os.path.join(run_dir, BACKUP)
    return any(os.path.exists(p) for p in (path, path + ".next", path + ".prev"))


def backup_position(run_dir):
    """``(finished epochs, steps done of the next one)`` kept by the newest good backup ((0, 0)
    without one), read without loading weights."""
    state, _ = safeio.load_newest_good(os.path.join(run_dir, BACKUP), read_state, warn=lambda *_: None)
    return (state["epoch"], state.get("step", 0)) if state else (0, 0)


def write_config(run_dir, payload):
    safeio.write_json(os.path.join(run_dir, CONFIG), payload)


# -- history.csv -----------------------------------------------------------------------------------
def write_history(path, history):
    """``{"epoch": [...], "loss": [...], "val_loss": [...]}`` as CSV, written whole under a temp name."""
    keys = [k for k in HISTORY_KEYS if history.get(k)]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(keys)
    for row in zip(*(history[k] for k in keys)):
        writer.writerow(row)
    safeio.write_text(path, out.getvalue())


def read_history(path):
    """history.csv -> {column: [numbers]} (epochs as ints)."""
    if not os.path.exists(path):
        return {}
    with open(path) as f:
        rows = list(csv.DictReader(f))
    columns = {key: [row[key] for row in rows if row.get(key) not in (None, "", "NA")] for key in (rows[0] if rows else {})}
    return {key: [int(v) if key == "epoch" else float(v) for v in values] for key, values in columns.items() if values}


# -- models and backups ----------------------------------------------------------------------------
def save_model(model, path):
    """``model.save`` to a temporary ``.keras`` name in the same folder, then rename."""
    with safeio.atomic_path(path) as tmp:
        try:
            model.save(tmp + ".keras")  # Keras wants the suffix; the name still holds the temp mark
        except BaseException:  # a full disk: the part written would stay until the next run
            with contextlib.suppress(OSError):
                os.remove(tmp + ".keras")
            raise
        os.replace(tmp + ".keras", tmp)


def read_state(path):
    """The ``{"epoch", "best", "history"}`` stored in a backup file."""
    import h5py

    with h5py.File(path, "r") as f:
        return json.loads(f.attrs[STATE_ATTR])


def _write_backup(model, state, tmp):
    import h5py

    model.save_weights(tmp + ".weights.h5")  # weights and the optimizer's variables (Adam moments, step)
    with h5py.File(tmp + ".weights.h5", "a") as f:
        f.attrs[STATE_ATTR] = json.dumps(state)
    os.replace(tmp + ".weights.h5", tmp)


def _load_backup(model, path):
    """Weights from any generation's file (Keras reads only names ending in ``.weights.h5``)."""
    state = read_state(path)
    with tempfile.TemporaryDirectory(prefix="koalarization-restore-") as folder:
        link = os.path.join(folder, "state.weights.h5")
        os.symlink(os.path.abspath(path), link)
        model.load_weights(link)
    return state


class Run:
    """The files of one training run. Only the chief writes; other workers read the chief's backup.

    ``restore(model)`` -> where to go on from; ``save_progress`` every so many steps inside an
    epoch, ``end_epoch`` after each epoch and ``finish`` once at the end. ``history`` and ``best``
    live in the backup, so a resumed run continues both.
    """

    def __init__(self, run_dir, chief=True, monitor="val_loss", log=print):
        self.dir, self.chief, self.monitor, self.log = run_dir, chief, monitor, log
        self.history = {"epoch": [], "loss": []}
        self.best = math.inf

    def path(self, name):
        return os.path.join(self.dir, name)

    def restore(self, model):
        """Load the newest good backup into ``model`` (a damaged generation: one line, the previous
        one used). Returns ``(finished epochs, steps done of the next epoch, the sum of those steps'
        losses)``: ``(0, 0, 0.0)`` for a fresh run."""
        if not has_backup(self.dir):
            return 0, 0, 0.0
        state, used = safeio.load_newest_good(self.path(BACKUP), lambda p: _load_backup(model, p), warn=self.log)
        if state is None:
            self.log(f"{self.path(BACKUP_DIR)}: no usable backup; starting this run from epoch 1")
            return 0, 0, 0.0
        self.history = {k: list(v) for k, v in state["history"].items()}
        self.best = state["best"] if state["best"] is not None else math.inf
        if self.chief:
            write_history(self.path(HISTORY), self.history)  # drops a row of an epoch killed before its backup
        return state["epoch"], state.get("step", 0), state.get("loss_total", 0.0)

    def save_progress(self, model, epoch, step, loss_total):
        """Inside epoch ``epoch`` (0-based), after ``step`` of its steps (their losses summing to
        ``loss_total``): the backup, so that a kill loses at most the steps since."""
        if self.chief:
            self._backup(model, epoch=epoch, step=step, loss_total=loss_total)

    def _backup(self, model, **position):
        """The backup (two generations): the weights and optimizer, ``position`` (``epoch``, and inside
        an epoch ``step`` and ``loss_total``), the best value so far and the history."""
        os.makedirs(self.path(BACKUP_DIR), exist_ok=True)
        state = {**position, "best": self.best, "monitor": self.monitor, "history": self.history}
        safeio.save_two_generations(self.path(BACKUP), lambda tmp: _write_backup(model, state, tmp))

    def end_epoch(self, model, epoch, logs):
        """Record epoch ``epoch`` (0-based): history.csv, best.keras when it improved, then the backup."""
        self.history["epoch"].append(epoch)
        for key in ("loss", "val_loss"):
            if key in logs:
                self.history.setdefault(key, []).append(float(logs[key]))
        value = float(logs[self.monitor])
        improved = value < self.best
        if improved:
            self.best = value
        if not self.chief:
            return
        write_history(self.path(HISTORY), self.history)
        if improved:
            os.makedirs(os.path.dirname(self.path(BEST)), exist_ok=True)
            save_model(model, self.path(BEST))
        self._backup(model, epoch=epoch + 1)

    def finish(self, model):
        """Write model.keras; the caller removes the backup (``close``) once everything is written."""
        save_model(model, self.path(MODEL))

    def close(self):
        """The run is complete: remove the backup, in one rename (a kill while deleting it must not
        leave half a backup that the next run would try to resume from)."""
        doomed = safeio.temporary_name(self.path(BACKUP_DIR))  # cleaned by the next run if killed now
        with contextlib.suppress(FileNotFoundError):
            os.replace(self.path(BACKUP_DIR), doomed)
        shutil.rmtree(doomed, ignore_errors=True)
