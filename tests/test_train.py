"""`python -m koalarization.train`: a run that learns and leaves a complete run dir, resuming a
killed run, training without validation, the config and its presets, user errors. Kill safety,
Ctrl-C and locks: test_train_safety.py; replicas and workers: test_distribution.py."""

import csv
import dataclasses
import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
from conftest import write_synthetic_records

from koalarization.model.network import FusionLayer
from koalarization.train.trainer import PRESETS, TrainConfig, UserError, train
from koalarization import cli
from koalarization.train.trainer import main


def parse_config(argv):
    return cli.parse(TrainConfig, argv, PRESETS)


@pytest.fixture(scope="module")
def records16(tmp_path_factory):
    """16 train + 4 val synthetic photos at 32x32, 16-d embeddings, built with 'random' weights."""
    out = str(tmp_path_factory.mktemp("records16"))
    write_synthetic_records(out, n_train=16, n_val=4, image_size=32, seed=1, learnable=True)
    return out


def run_cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "koalarization.train", *args], capture_output=True, text=True, timeout=900
    )


def history_rows(run_dir):
    with open(os.path.join(run_dir, "history.csv")) as f:
        return list(csv.DictReader(f))


def test_cli_run_learns_and_fills_the_run_dir(records16, tmp_path):
    run_dir = str(tmp_path / "run")
    done = run_cli("--records", records16, "--run-dir", run_dir, "--preset", "smoke",
                   "--epochs", "3", "--learning-rate", "0.0003")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Training config:" in done.stdout and "batch_size: 4" in done.stdout  # printed, preset applied
    assert "RANDOM Inception-ResNet-v2 weights" in done.stderr  # records built with random weights
    assert "\x1b[" not in done.stdout and "\b" not in done.stdout  # a log file gets plain lines, no live bar
    assert "3/3 - " in done.stdout  # one line per epoch: steps and time

    with open(os.path.join(run_dir, "config.json")) as f:
        saved = json.load(f)
    assert saved["config"]["epochs"] == 3 and saved["config"]["learning_rate"] == 0.0003
    assert saved["config"]["steps_per_epoch"] == PRESETS["smoke"]["steps_per_epoch"]
    assert saved["records"]["embedding"]["weights"] == {"source": "random"}
    assert saved["records"]["examples"] == {"train": 16, "val": 4}

    rows = history_rows(run_dir)
    assert [int(r["epoch"]) for r in rows] == [0, 1, 2]
    val = [float(r["val_loss"]) for r in rows]
    assert val[-1] < val[0], val  # the validation loss falls

    for name in ("model.keras", "checkpoints/best.keras", "loss.png", "samples/epoch_001.png", "samples/epoch_003.png"):
        assert os.path.getsize(os.path.join(run_dir, name)) > 0, name
    assert not os.path.exists(os.path.join(run_dir, "backup"))  # removed once training finished
    for sub in ("train", "validation", "samples"):
        assert any(n.startswith("events.out.tfevents") for n in os.listdir(os.path.join(run_dir, "logs", sub))), sub

    panel = keras.utils.load_img(os.path.join(run_dir, "samples", "epoch_003.png"))
    assert panel.size == (3 * 32, 4 * 32)  # gray | prediction | truth, 4 val images
    model = keras.models.load_model(os.path.join(run_dir, "model.keras"))
    assert isinstance(model.get_layer("fusion"), FusionLayer)
    ab = model({"l": np.zeros((1, 32, 32, 1), "float32"), "embedding": np.zeros((1, 16), "float32")})
    assert tuple(ab.shape) == (1, 32, 32, 2)


class StopAfterFirstEpoch(keras.callbacks.Callback):
    """Stands in for a kill right after epoch 1 was saved; remembers the weights it saw."""

    def on_epoch_end(self, epoch, logs=None):
        self.weights = self.model.get_weights()
        raise KeyboardInterrupt("killed")


class WeightsAtStart(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.weights = self.model.get_weights()  # after BackupAndRestore (built-ins run first)


def test_killed_run_resumes_where_it_stopped(records16, tmp_path):
    config = TrainConfig.with_preset("smoke", records=records16, run_dir=str(tmp_path / "run"), epochs=3, steps_per_epoch=2)
    killer = StopAfterFirstEpoch()
    with pytest.raises(KeyboardInterrupt):
        train(config, callbacks=[killer])
    assert [int(r["epoch"]) for r in history_rows(config.run_dir)] == [0]

    messages, start = [], WeightsAtStart()
    result = train(config, callbacks=[start], log=lambda *a, **k: messages.append(" ".join(map(str, a))))
    assert any("Resuming from the backup after epoch 1" in m for m in messages)
    for restored, saved in zip(start.weights, killer.weights):
        np.testing.assert_array_equal(restored, saved)  # continued from the saved state, not a fresh model
    rows = history_rows(config.run_dir)
    assert [int(r["epoch"]) for r in rows] == [0, 1, 2]  # continued, not restarted; one header
    assert result.history["epoch"] == [0, 1, 2]
    assert os.path.exists(result.model_path)

    from koalarization.train.rundir import RunDirError  # an output kept: the table's 3

    with pytest.raises(RunDirError, match="finished run"):  # the same command again does not overwrite it
        train(config)
    with pytest.raises(RunDirError, match="different settings \\(batch_size\\)"):
        train(dataclasses.replace(config, batch_size=2))


def test_empty_val_split_trains_without_validation(tmp_path, monkeypatch):
    from koalarization import records

    records_dir = str(tmp_path / "records")
    write_synthetic_records(records_dir, n_train=6, n_val=0, image_size=32)
    reads = []
    read_manifest = records.read_manifest
    monkeypatch.setattr(records, "read_manifest", lambda path: reads.append(path) or read_manifest(path))
    messages = []
    config = TrainConfig.with_preset("smoke", records=records_dir, run_dir=str(tmp_path / "run"), steps_per_epoch=1, epochs=3)
    result = train(config, log=lambda *a, **k: messages.append(" ".join(map(str, a))))
    assert sum("training without validation" in m for m in messages) == 1  # said once
    assert result.history["epoch"] == [0, 1, 2] and "val_loss" not in result.history
    assert reads == [records_dir]  # the records are opened once for the whole run, not once per epoch
    assert os.path.exists(os.path.join(config.run_dir, "checkpoints", "best.keras"))
    assert os.path.exists(os.path.join(config.run_dir, "samples", "epoch_003.png"))  # panel from train images


def test_a_callback_that_stops_at_an_epoch_end_stops_before_the_next_epoch(tmp_path):
    """EarlyStopping-style: a stop asked for in on_epoch_end ends the run there, not one step into the next epoch."""
    records_dir = str(tmp_path / "records")
    write_synthetic_records(records_dir, n_train=6, n_val=0, image_size=32)
    steps = []

    class StopAfterFirst(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            steps.append(batch)

        def on_epoch_end(self, epoch, logs=None):
            self.model.stop_training = True

    config = TrainConfig.with_preset("smoke", records=records_dir, run_dir=str(tmp_path / "run"), steps_per_epoch=2, epochs=3)
    result = train(config, callbacks=[StopAfterFirst()], log=lambda *a, **k: None)
    assert result.history["epoch"] == [0] and steps == [0, 1]


def test_diverging_run_stops_with_a_clear_error(records16, tmp_path):
    config = TrainConfig(records=records16, run_dir=str(tmp_path / "run"), epochs=2, steps_per_epoch=3,
                         batch_size=2, learning_rate=1e30)
    with pytest.raises(UserError, match="the loss became nan in epoch 1; try a lower --learning-rate"):
        train(config)  # TerminateOnNaN stopped it
    assert not os.path.exists(os.path.join(config.run_dir, "model.keras"))


def test_presets_fill_defaults_and_flags_override(capsys):
    base = ["--records", "r", "--run-dir", "d"]
    paper = parse_config(base)
    assert (paper.epochs, paper.batch_size, paper.learning_rate, paper.precision, paper.distribution) == (
        100, 100, 0.001, "float32", "none")
    smoke = parse_config(base + ["--preset", "smoke", "--batch-size", "2", "--precision", "mixed_bfloat16"])
    assert smoke.batch_size == 2 and smoke.precision == "mixed_bfloat16"
    assert smoke.epochs == PRESETS["smoke"]["epochs"] and smoke.steps_per_epoch == PRESETS["smoke"]["steps_per_epoch"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        smoke.epochs = 5
    with pytest.raises(SystemExit) as exit_info:  # the config's own check, as argparse's one line
        parse_config(base + ["--batch-size", "0"])
    assert exit_info.value.code == 2 and "batch_size must be at least 1" in capsys.readouterr().err
    with pytest.raises(UserError, match="batch_size must be at least 1"):
        TrainConfig.with_preset("smoke", records="r", run_dir="d", batch_size=0)


def test_reader_mixing_flags_default_to_the_readers_defaults(capsys):
    from koalarization.records import dataset

    base = ["--records", "r", "--run-dir", "d"]
    default = parse_config(base)
    assert (default.shuffle_buffer, default.cycle_length) == (dataset.SHUFFLE_BUFFER, dataset.CYCLE_LENGTH)
    tuned = parse_config(base + ["--shuffle-buffer", "64", "--cycle-length", "2"])
    assert (tuned.shuffle_buffer, tuned.cycle_length) == (64, 2)
    with pytest.raises(SystemExit):
        parse_config(base + ["--shuffle-buffer", "0"])
    assert "shuffle_buffer must be at least 1" in capsys.readouterr().err


def test_help_and_unknown_flags(capsys):
    with pytest.raises(SystemExit) as exit_info:
        parse_config(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for field in dataclasses.fields(TrainConfig):  # every config field is a flag
        assert "--" + field.name.replace("_", "-") in text, field.name
    with pytest.raises(SystemExit) as exit_info:
        parse_config(["--records", "r", "--run-dir", "d", "--bogus"])
    assert exit_info.value.code == 2
    assert "unrecognized arguments: --bogus" in capsys.readouterr().err


def test_missing_records_is_a_one_line_error(tmp_path, capsys):
    missing = str(tmp_path / "no_records")
    assert main(["--records", missing, "--run-dir", str(tmp_path / "run"), "--preset", "smoke"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith("error: ") and missing in last and "manifest.json" in last
    assert not (tmp_path / "run").exists()  # a typo in --records leaves no empty run dir behind


def test_help_and_a_busy_run_dir_answer_before_tensorflow_is_imported(tmp_path):
    """``--help``, argument errors and the run-dir checks come before the slow imports."""
    code = (
        "import sys\n"
        "import koalarization.train.trainer as train\n"
        "for argv in (['--help'], ['--records', 'r']):\n"
        "    try:\n"
        "        train.main(argv)\n"
        "    except SystemExit:\n"
        "        pass\n"
        f"assert train.main(['--records', {str(tmp_path / 'records')!r}, '--run-dir', {str(tmp_path / 'file')!r}]) == 3\n"
        "print('tensorflow imported:', 'tensorflow' in sys.modules)\n"
    )
    (tmp_path / "file").write_text("not a folder")
    (tmp_path / "records").mkdir()
    (tmp_path / "records" / "manifest.json").write_text("{}")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "usage: python -m koalarization.train" in done.stdout
    assert "the following arguments are required: --run-dir" in done.stderr
    assert "tensorflow imported: False" in done.stdout


def test_a_full_disk_while_saving_is_one_line_and_leaves_no_part_file(tmp_path, monkeypatch, capsys):
    import errno

    records = str(tmp_path / "records")
    write_synthetic_records(records, n_train=4, n_val=2, image_size=16)
    real_save = keras.Model.save

    def full(self, path, *args, **kwargs):  # the disk fills up while best.keras is written
        with open(path, "wb") as f:
            f.write(b"PK\x03\x04 part of a zip")
        raise OSError(errno.ENOSPC, "No space left on device", path)

    monkeypatch.setattr(keras.Model, "save", full)
    run_dir = tmp_path / "run"
    code = main(["--records", records, "--run-dir", str(run_dir), "--preset", "smoke", "--epochs", "1", "--steps-per-epoch", "1", "--no-export"])
    monkeypatch.setattr(keras.Model, "save", real_save)
    err = capsys.readouterr().err
    assert code == 3 and "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith("error: ") and "no space left on the device" in last and "run the same command again to resume" in last
    leftovers = [name for _, _, names in os.walk(run_dir) for name in names if ".tmp-" in name]
    assert leftovers == []


def test_a_validation_that_costs_more_than_half_an_epoch_is_said(tmp_path):
    records_dir = str(tmp_path / "records")
    write_synthetic_records(records_dir, n_train=8, n_val=8, image_size=16)
    said = {}
    for bound in (None, 1):  # all 8 val examples (2 batches) after 1-step epochs; then --validation-steps 1
        messages = []
        config = TrainConfig.with_preset("smoke", records=records_dir, run_dir=str(tmp_path / f"run{bound}"), epochs=1,
                                         steps_per_epoch=1, batch_size=4, validation_steps=bound, export=False)  # fmt: skip
        train(config, log=lambda *a, **k: messages.append(" ".join(map(str, a))))
        said[bound] = [m for m in messages if m.startswith("Validation:")]
    assert said[None] == ["Validation: all 8 val examples (2 batches, forward only: about 67% of an epoch of 1 step) after every epoch; --validation-steps N bounds it."]
    assert said[1] == []
