"""Run the three notebooks top to bottom at smoke size, in order, as CI does.

Each notebook's cell tagged ``parameters`` gets the test's values appended (as papermill injects
them): a tmp work dir shared by the three, 32x32 records, random Inception weights, two photos.
"""

import json
import os

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

NOTEBOOKS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "notebooks")


def run_notebook(name, parameters, timeout=600):
    """Execute ``notebooks/NAME`` with ``parameters`` injected; returns the executed notebook."""
    notebook = nbformat.read(os.path.join(NOTEBOOKS, name), as_version=4)
    tagged = [cell for cell in notebook.cells if "parameters" in cell.metadata.get("tags", [])]
    assert len(tagged) == 1, f"{name}: expected exactly one cell tagged 'parameters'"
    assert notebook.cells.index(tagged[0]) <= 2, f"{name}: the parameters cell should be at the top"
    injected = "\n".join(f"{key} = {value!r}" for key, value in parameters.items())
    tagged[0].source += f"\n# injected by tests/test_notebooks.py\n{injected}\n"
    # "python3" is the kernel spec of this venv; jupyter_client runs it with sys.executable.
    client = NotebookClient(
        notebook, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": NOTEBOOKS}}
    )
    try:
        client.execute()
    except CellExecutionError as error:
        pytest.fail(f"{name} failed:\n{str(error)[-3000:]}")
    return notebook


def outputs_of(notebook, output_type=None):
    return [
        output
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.outputs
        if output_type is None or output_type in output.get("data", {})
    ]


def text_of(notebook):
    parts = []
    for output in outputs_of(notebook):
        parts.append(output.get("text", "") or output.get("data", {}).get("text/plain", ""))
    return "".join(parts)


def test_notebooks_are_committed_without_outputs():
    for name in sorted(os.listdir(NOTEBOOKS)):
        if name.endswith(".ipynb"):
            notebook = nbformat.read(os.path.join(NOTEBOOKS, name), as_version=4)
            assert not outputs_of(notebook), f"{name}: commit it without outputs"


def test_notebooks_run_in_order(tmp_path):
    work = str(tmp_path / "work")

    first = run_notebook(
        "01_build_dataset.ipynb",
        {"work_dir": work, "image_size": 32, "inception_weights": "random", "val_fraction": 0.3, "limit": 6},
    )
    records_dir = os.path.join(work, "records")
    with open(os.path.join(records_dir, "manifest.json")) as f:
        manifest = json.load(f)
    assert manifest["image_size"] == 32 and manifest["embedding"]["weights"]["source"] == "random"
    assert manifest["splits"]["train"]["examples"] >= 1
    assert manifest["splits"]["train"]["examples"] + manifest["splits"]["val"]["examples"] == 6
    assert outputs_of(first, "image/png"), "01: the L/ab figure is missing"
    assert "top-5 is skipped" in text_of(first)  # random weights: said, not faked

    second = run_notebook("02_train.ipynb", {"work_dir": work})
    run_dir = os.path.join(work, "runs", "smoke")
    assert os.path.isfile(os.path.join(run_dir, "model.keras"))
    assert os.path.isfile(os.path.join(run_dir, "saved_model", "1", "saved_model.pb"))  # train exports at its end
    assert len(outputs_of(second, "image/png")) >= 3  # live panel, loss curves, first/last panels
    assert "epoch 2:" in text_of(second)

    third = run_notebook("03_colorize_and_evaluate.ipynb", {"work_dir": work, "max_photos": 2})
    with open(os.path.join(work, "evaluation", "metrics.json")) as f:
        report = json.load(f)
    assert report["examples"] == 2 and set(report["mean"]) == {"model", "gray", "mean_ab"}
    assert "train split" in report["mean_ab"]["from"]
    # the photos are the bundled samples the records were built from: each says whether it was trained on
    assert all(isinstance(img["seen_in_training"], bool) for img in report["images"]) and report["seen_in_training"] >= 0
    assert "were in the training split" in open(os.path.join(work, "evaluation", "metrics.md")).read()
    assert not os.path.exists(os.path.join(work, "export")), "03 should serve the run's own export, not export again"
    # the film: same frame count and size as the pan the notebook wrote, in colour now
    from koalarization.video import films

    film, colorized = (films.probe(os.path.join(work, *parts)) for parts in (("films", "pan.mp4"), ("colorized_films", "pan.mp4")))
    assert (colorized.frames, colorized.width, colorized.height) == (film.frames, film.width, film.height) == (24, 128, 96)
    assert os.path.isfile(os.path.join(work, "films", "strip.png"))
    last_cell_pngs = [o for o in third.cells[-1].outputs if "image/png" in o.get("data", {})]
    assert len(last_cell_pngs) == 2, "03: the served colorizations are missing"
