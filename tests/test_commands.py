"""Every command, as a user meets it: ``--help`` at once, and the same failure giving the same exit
status and one line (no traceback) in each (the table of koalarization/errors.py). Fast: no
training, no Inception; the model is an empty ``.keras`` file, which every command refuses only
after it has checked its inputs and its output."""

import os
import subprocess
import sys
import time

import pytest

from koalarization import cli, errors
from koalarization.colorize import files as colorize
from koalarization.colorize.config import ColorizeConfig
from koalarization.demo import DemoConfig
from koalarization.evaluate.config import EvaluateConfig
from koalarization.export import savedmodel as export
from koalarization.export.config import ExportConfig
from koalarization.train import trainer
from koalarization.train.config import TrainConfig
from koalarization.video import films
from koalarization.video.config import VideoConfig
from tfrecords_builder.config import BuildConfig

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COMMANDS = {  # module run by `python -m`: its config (docs/commands.md has one section and one table each)
    "tfrecords_builder": BuildConfig,
    "koalarization.train": TrainConfig,
    "koalarization.export": ExportConfig,
    "koalarization.colorize": ColorizeConfig,
    "koalarization.video": VideoConfig,
    "koalarization.evaluate": EvaluateConfig,
    "koalarization.demo": DemoConfig,
}
HELP_SECONDS = 2.5


@pytest.mark.parametrize("module", sorted(COMMANDS))
def test_help_is_quick_and_imports_no_tensorflow(module):
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", module, "--help"], capture_output=True, text=True, cwd=ROOT, timeout=60)
    seconds = time.perf_counter() - start
    assert done.returncode == 0 and f"usage: {COMMANDS[module].PROG}" in done.stdout, done.stderr[-2000:]
    imported = {line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")}
    assert "tensorflow" not in imported and "keras" not in imported
    assert seconds < HELP_SECONDS, f"{module} --help took {seconds:.2f} s"


def test_docs_tables_are_the_configs_own():
    """docs/commands.md holds each command's options table as options_markdown makes it now, and the exit-status table."""
    text = open(os.path.join(ROOT, "docs", "commands.md")).read()
    for module, config in COMMANDS.items():
        assert f"python -m {module}" in text, module
        assert cli.options_markdown(config) in text, f"docs/commands.md: the table of {module} is out of date (see docs/commands.md's last lines)"
    for status, name in ((1, "SomeInputsFailed"), (2, "UsageError"), (3, "OutputError"), (4, "InUseError"), (5, "DamagedError"), (130, "")):
        assert f"| {status} |" in text and name in text


def _library_mains():
    """The command mains, as the console scripts run them (each __main__ calls the same cli.command)."""
    from koalarization.evaluate import scoring
    from tfrecords_builder import builder

    return {"colorize": colorize.main, "video": films.main, "evaluate": scoring.main, "build": builder.main, "train": trainer.main, "export": export.main}


def _one_error_line(capsys):
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and err[0].startswith("error: ") and "Traceback" not in err[0], err
    return err[0]


@pytest.fixture
def model(tmp_path):
    path = tmp_path / "m.keras"
    path.write_bytes(b"")  # passes the model check every command makes first; loading it would fail
    return str(path)


def test_a_missing_input_is_status_2_and_one_line_in_every_command(tmp_path, model, capsys):
    mains, missing = _library_mains(), str(tmp_path / "no_such")
    argv = {
        "colorize": [missing + ".png", "-o", str(tmp_path / "c"), "--model", model],
        "video": [missing + ".mp4", "-o", str(tmp_path / "v"), "--model", model],
        "evaluate": ["--images", missing + ".png", "-o", str(tmp_path / "e"), "--model", model],
        "build": ["--out", str(tmp_path / "r"), "--images", missing, "--inception-weights", "random"],
        "train": ["--records", missing, "--run-dir", str(tmp_path / "run")],
        "export": ["--model", missing + ".keras", "--out", str(tmp_path / "m" / "1")],
    }
    for name, args in argv.items():
        capsys.readouterr()
        assert mains[name](args) == errors.EXIT_USAGE, name
        assert missing in _one_error_line(capsys), name


def test_an_output_folder_that_is_a_file_is_status_3_in_every_command_that_writes(tmp_path, model, capsys):
    mains, photo, records = _library_mains(), tmp_path / "in.png", tmp_path / "records"
    photo.write_bytes(b"not decoded: the output is refused first")
    records.mkdir()
    (records / "manifest.json").write_text("{}")
    target = str(tmp_path / "file")
    open(target, "w").close()
    argv = {
        "colorize": [str(photo), "-o", target, "--model", model],
        "video": [str(tmp_path / "in.mp4"), "-o", target, "--model", model],
        "evaluate": ["--images", str(photo), "-o", target, "--model", model],
        "build": ["--out", target, "--images", str(photo), "--inception-weights", "random"],
        "train": ["--records", str(records), "--run-dir", target],
        "export": ["--model", model, "--out", target],
    }
    for name, args in argv.items():
        capsys.readouterr()
        assert mains[name](args) == errors.EXIT_OUTPUT, name
        assert target in _one_error_line(capsys), name


def test_a_bad_option_value_is_status_2_and_one_line(tmp_path, capsys):
    for module, argv in (("koalarization.colorize", ["x.png", "-o", "o", "--model", "m", "--working-size", "30"]),
                         ("koalarization.video", ["x.mp4", "-o", "o", "--model", "m", "--working-size", "30"]),
                         ("koalarization.export", ["--model", "m", "--out", "o", "--max-pixels", "-1"]),
                         ("koalarization.train", ["--records", "r", "--run-dir", "d", "--batch-size", "0"]),
                         ("tfrecords_builder", ["--out", "o", "--shard-size", "0"])):  # fmt: skip
        done = subprocess.run([sys.executable, "-m", module, *argv], capture_output=True, text=True, cwd=ROOT, timeout=60)
        lines = [line for line in done.stderr.splitlines() if "error:" in line]
        assert done.returncode == errors.EXIT_USAGE and len(lines) == 1 and "Traceback" not in done.stderr, (module, done.stderr)
