"""Training that survives what users do to it: kill -9 at every file write, a flipped backup,
Ctrl-C, a second trainer on the same run dir, a damaged config or shard, an export that fails.
Each kill is real (the process ends with os._exit inside the writer, tests/killpoint.py); then
the same command runs again and must end with the weights of a run that was never stopped."""

import csv
import os
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
from conftest import write_synthetic_records

from koalarization.model import network as _model  # noqa: F401  (registers FusionLayer for load_model)
from koalarization import errors, safeio
from koalarization.train.trainer import TrainConfig, UserError, train
from koalarization.train.trainer import main

KILLPOINT = os.path.join(os.path.dirname(__file__), "killpoint.py")
KILLED = 9


@pytest.fixture(scope="module")
def records12(tmp_path_factory):
    """12 train + 4 val synthetic photos at 32x32 in 2 shards per split."""
    out = str(tmp_path_factory.mktemp("records12"))
    write_synthetic_records(out, n_train=12, n_val=4, image_size=32, seed=3, learnable=True)
    return out


def flags(records_dir, run_dir, epochs=3):
    return ["--records", records_dir, "--run-dir", run_dir, "--epochs", str(epochs), "--steps-per-epoch", "1",
            "--validation-steps", "1", "--batch-size", "4", "--sample-images", "1", "--learning-rate", "0.003"]


def run_train(train_flags, kill="none"):
    """``python -m koalarization.train FLAGS`` (killed at ``kill``, see tests/killpoint.py)."""
    return subprocess.run([sys.executable, KILLPOINT, kill, "--", *train_flags], capture_output=True, text=True, timeout=600)


def weights(path):
    return keras.models.load_model(path).get_weights()


def history(run_dir):
    with open(os.path.join(run_dir, "history.csv")) as f:
        return list(csv.DictReader(f))


def flip(path, offset, size=4096):
    with open(path, "r+b") as f:
        f.seek(offset)
        block = f.read(size)
        f.seek(offset)
        f.write(bytes(b ^ 0xFF for b in block))


@pytest.fixture(scope="module")
def reference_run(records12, tmp_path_factory):
    """The same training, never stopped."""
    run_dir = str(tmp_path_factory.mktemp("reference") / "run")
    done = run_train(flags(records12, run_dir))
    assert done.returncode == 0, done.stderr[-3000:]
    return run_dir


def test_kill_at_every_write_then_the_same_command_finishes_with_the_same_weights(records12, reference_run, tmp_path):
    run_dir = str(tmp_path / "run")
    command = flags(records12, run_dir)
    backup = os.path.join(run_dir, "backup", "state.weights.h5")
    kills = [
        "config.json:1:during",  # before anything else exists
        "best.keras:1:during",  # epoch 1's best checkpoint, before its backup
        "history.csv:2:during",  # epoch 2's history row, after epoch 1's backup
        "state.weights.h5.next:1:during",  # the redone epoch 2's backup, half written
        "state.weights.h5:1:after",  # epoch 2's backup renamed into place, the rest of the rotation not done
    ]
    for kill in kills:
        done = run_train(command, kill)
        assert done.returncode == KILLED, (kill, done.returncode, done.stderr[-3000:])  # the kill point was reached
    assert safeio.verify(backup) and safeio.verify(backup + ".prev")  # epochs 2 and 1, both good

    flip(backup, offset=os.path.getsize(backup) // 2)  # 4 KB of the newest backup damaged
    done = run_train(command, "state.weights.h5.prev:1:after")  # killed in epoch 3's backup, mid-rotation
    assert done.returncode == KILLED, done.stderr[-3000:]
    damaged = [line for line in done.stdout.splitlines() if "damaged" in line]
    assert len(damaged) == 1 and backup in damaged[0], done.stdout[-3000:]  # said in one line...
    assert "Resuming from the backup after epoch 1." in done.stdout  # ...and the previous generation used

    done = run_train(command, "model.keras:1:during")  # the final model, half written
    assert done.returncode == KILLED, done.stderr[-3000:]
    assert "Resuming from the backup after epoch 3." in done.stdout  # the new generation, checked in

    done = run_train(command)  # the last rerun: finishes the run from the backup of the last epoch
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Resuming from the backup after epoch 3." in done.stdout
    assert not os.path.exists(os.path.join(run_dir, "backup"))  # finished
    assert not [n for n in os.listdir(run_dir) if safeio.TEMP_MARK in n]  # no leftovers of the killed writers

    for name in ("model.keras", os.path.join("checkpoints", "best.keras")):
        for got, want in zip(weights(os.path.join(run_dir, name)), weights(os.path.join(reference_run, name))):
            np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7, err_msg=name)
    rows, want_rows = history(run_dir), history(reference_run)
    assert [r["epoch"] for r in rows] == ["0", "1", "2"]  # every epoch's row, once
    for row, want in zip(rows, want_rows):
        assert float(row["loss"]) == pytest.approx(float(want["loss"]), rel=1e-5)
        assert float(row["val_loss"]) == pytest.approx(float(want["val_loss"]), rel=1e-5)

    done = run_train(command)  # and the finished run is not overwritten
    assert done.returncode == 3 and "holds a finished run" in done.stderr  # an output kept: the table's 3


class WorseAfterResume(keras.callbacks.Callback):
    """Ruins the model after every train step (every ab saturated at +1), so the resumed epoch's
    val loss is worse than the first epoch's."""

    def on_train_batch_end(self, batch, logs=None):
        last = self.model.get_layer("decoder_conv5")
        kernel, bias = last.get_weights()
        last.set_weights([kernel * 0.0, bias * 0.0 + 10.0])


class StopAfterFirstEpoch(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        raise KeyboardInterrupt


def test_best_checkpoint_keeps_the_best_so_far_across_a_resume(records12, tmp_path):
    config = TrainConfig(records=records12, run_dir=str(tmp_path / "run"), epochs=2, steps_per_epoch=1,
                         validation_steps=1, batch_size=4, sample_images=1, learning_rate=0.003, export=False)
    with pytest.raises(KeyboardInterrupt):
        train(config, callbacks=[StopAfterFirstEpoch()], log=lambda *a, **k: None)
    best = os.path.join(config.run_dir, "checkpoints", "best.keras")
    first_best = weights(best)
    result = train(config, callbacks=[WorseAfterResume()], log=lambda *a, **k: None)
    assert result.history["val_loss"][1] > result.history["val_loss"][0]  # the resumed epoch was worse...
    for got, want in zip(weights(best), first_best):
        np.testing.assert_array_equal(got, want)  # ...so best.keras is still epoch 1's model


def test_ctrl_c_keeps_the_run_and_says_how_to_resume(records12, tmp_path):
    run_dir = str(tmp_path / "run")
    proc = subprocess.Popen([sys.executable, "-m", "koalarization.train", *flags(records12, run_dir, epochs=1000)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        backup = os.path.join(run_dir, "backup", "state.weights.h5.sha256")
        for _ in range(6000):  # until the first epoch is backed up (or the process ended)
            if os.path.exists(backup) or proc.poll() is not None:
                break
            time.sleep(0.1)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err[-3000:]
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"interrupted: {run_dir} keeps the backup after epoch ") and "run the same command again" in last
    assert not os.path.exists(os.path.join(run_dir, ".lock"))  # released


def test_second_trainer_on_a_run_dir_gets_one_line_and_a_stale_lock_is_taken_over(records12, tmp_path, capsys, lock_holder):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    lock = run_dir / ".lock"
    sleeper = lock_holder(run_dir, "python -m koalarization.train")
    try:
        assert main(flags(records12, str(run_dir), epochs=1)) == errors.EXIT_IN_USE
        err = capsys.readouterr().err
        assert "Traceback" not in err and len(err.strip().splitlines()) == 1
        assert f"pid {sleeper.pid}" in err and str(run_dir) in err
    finally:
        sleeper.kill()
        sleeper.wait()
    # the owner is gone now: its lock is stale and the next trainer takes it over and trains
    assert main(flags(records12, str(run_dir), epochs=1) + ["--no-export"]) == 0
    out = capsys.readouterr().out
    assert "taking over the lock of a stopped process" in out
    assert os.path.exists(run_dir / "model.keras") and not lock.exists()


def test_unusable_run_dirs_are_one_line_errors(records12, tmp_path, capsys):
    a_file = tmp_path / "not_a_dir"
    a_file.write_text("x")
    assert main(flags(records12, str(a_file))) == errors.EXIT_OUTPUT
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1 and "is an existing file" in err

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "config.json").write_text('{"config": {"records": ')  # a config.json cut short
    assert main(flags(records12, str(run_dir))) == 5  # a damaged run: the table's 5
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert str(run_dir / "config.json") in err and "damaged run config" in err


def test_a_corrupted_record_names_its_shard(tmp_path, capsys):
    records_dir = str(tmp_path / "records")
    write_synthetic_records(records_dir, n_train=8, n_val=2, image_size=32, seed=4)
    shard = os.path.join(records_dir, "train-00001.tfrecord")
    flip(shard, offset=os.path.getsize(shard) // 2, size=64)
    code = main(flags(records_dir, str(tmp_path / "run"), epochs=2) + ["--steps-per-epoch", "4"])
    err = capsys.readouterr().err
    assert code == 5 and "Traceback" not in err  # damaged records: the table's 5
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"error: {shard}: damaged record (corrupted record at ") and "--resume" in last


def test_a_failing_export_leaves_a_complete_run(tmp_path, monkeypatch, capsys):
    from koalarization.model import inception as embedding
    from koalarization.export import savedmodel as saved_model

    records_dir = str(tmp_path / "records")  # Inception-sized embeddings: training exports at the end
    write_synthetic_records(records_dir, n_train=4, n_val=2, image_size=32, dim=embedding.EMBEDDING_DIM)

    def offline(*args, **kwargs):
        raise OSError("Inception-ResNet-v2 ImageNet weights: download failed (no network)")

    monkeypatch.setattr(saved_model, "export_from_path", offline)
    run_dir = str(tmp_path / "run")
    assert main(flags(records_dir, run_dir, epochs=1)) == 0
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    said = [line for line in captured.out.splitlines() if line.startswith("Not exported")]
    assert len(said) == 1 and "download failed" in said[0] and "the run is complete" in said[0]
    assert os.path.exists(os.path.join(run_dir, "model.keras")) and not os.path.exists(os.path.join(run_dir, "backup"))


def test_a_run_does_not_resume_on_records_rebuilt_in_place(tmp_path):
    """More photos (or another --val-fraction, other weights) under the same --records: refused, not
    continued quietly on other data."""
    records_dir = str(tmp_path / "records")
    write_synthetic_records(records_dir, n_train=12, n_val=4, image_size=32, seed=3)
    config = TrainConfig(records=records_dir, run_dir=str(tmp_path / "run"), epochs=2, steps_per_epoch=1,
                         validation_steps=1, batch_size=4, sample_images=1, export=False)
    with pytest.raises(KeyboardInterrupt):
        train(config, callbacks=[StopAfterFirstEpoch()], log=lambda *a, **k: None)
    write_synthetic_records(records_dir, n_train=16, n_val=4, image_size=32, seed=4)  # rebuilt with more photos
    with pytest.raises(UserError, match=r"run: this run started on other records than .*records holds now \(examples changed\)"):
        train(config, log=lambda *a, **k: None)
    write_synthetic_records(records_dir, n_train=12, n_val=4, image_size=32, seed=3)  # the records it started on
    assert len(train(config, log=lambda *a, **k: None).history["loss"]) == 2  # resumed and finished


def test_a_kill_inside_an_epoch_loses_only_the_steps_since_its_last_backup(records12, tmp_path):
    """Epochs of 4 steps with a backup every 2: killed right after epoch 1's step-2 backup, the same
    command goes on from step 3 (the first two steps' batches are read again, not trained on) and
    ends with the weights and history of a run never stopped."""
    command = flags(records12, str(tmp_path / "run"), epochs=2) + ["--steps-per-epoch", "4", "--backup-every-steps", "2"]
    reference = flags(records12, str(tmp_path / "reference"), epochs=2) + ["--steps-per-epoch", "4", "--backup-every-steps", "0"]
    done = run_train(reference)
    assert done.returncode == 0, done.stderr[-3000:]
    done = run_train(command, "state.weights.h5:1:after")  # the first backup of all: inside epoch 1
    assert done.returncode == KILLED, done.stderr[-3000:]
    done = run_train(command, "state.weights.h5:2:after")  # the resumed run's epoch-1 end... after step 2 of epoch 2
    assert done.returncode == KILLED, done.stderr[-3000:]
    assert "Resuming from the backup after step 2 of epoch 1." in done.stdout
    done = run_train(command)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Resuming from the backup after step 2 of epoch 2." in done.stdout
    run_dir, reference_dir = str(tmp_path / "run"), str(tmp_path / "reference")
    got, want = weights(os.path.join(run_dir, "model.keras")), weights(os.path.join(reference_dir, "model.keras"))
    assert len(got) == len(want)
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    rows, want_rows = history(run_dir), history(reference_dir)
    assert [row["epoch"] for row in rows] == [row["epoch"] for row in want_rows] == ["0", "1"]
    for row, want_row in zip(rows, want_rows):
        assert float(row["loss"]) == pytest.approx(float(want_row["loss"]), rel=1e-5)
