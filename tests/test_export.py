"""`python -m koalarization.export`: a SavedModel that TF Serving (and a bare `tensorflow`) can run.

The real Inception-ResNet-v2 (random weights) is built and exported ONCE for this module; the
SavedModel is then loaded once, in a subprocess that cannot import keras or koalarization.
"""

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage import color
from test_colorize import stand_in_embedder, tinted_colorizer, write_run_dir

from koalarization.export import savedmodel as saved_model
from koalarization import errors, images, safeio
from koalarization.model import colorizer
from koalarization.model import inception as embedding
from koalarization.export import savedmodel as export

PYTHON = sys.executable
SAVED_MODEL_CLI = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
TRAINING_CONFIG = {"epochs": 3, "records": {"image_size": 224, "embedding": {"model": "inception_resnet_v2", "weights": {"source": "random"}}}}

# Runs in a fresh process where importing keras or koalarization fails: the SavedModel must not
# need them. It plays TF Serving's REST front end: JSON request -> b64-decoded bytes -> signature
# -> JSON response with b64 PNGs (the `_bytes` suffix of the output name asks for that).
SERVE_SCRIPT = r"""
import base64, json, sys
for name in ("keras", "tf_keras", "koalarization"):
    sys.modules[name] = None  # any import of them now raises ImportError
import tensorflow as tf

model_dir, request_path, response_path = sys.argv[1:]
model = tf.saved_model.load(model_dir)
serve = model.signatures["serving_default"]
request = json.load(open(request_path))
image_bytes = tf.constant([base64.b64decode(instance["image_bytes"]["b64"]) for instance in request["instances"]])
outputs = serve(image_bytes=image_bytes)["colorized_bytes"].numpy()
json.dump({"predictions": [{"b64": base64.b64encode(png).decode()} for png in outputs]}, open(response_path, "w"))
try:
    serve(image_bytes=tf.constant([b"this is not an image"]))
    not_an_image = "no error"
except tf.errors.InvalidArgumentError as error:
    not_an_image = "InvalidArgumentError: " + next(line for line in str(error).splitlines() if "assertion failed" in line)
ab = model.signatures["colorize_lab"](l=tf.zeros([2, 32, 48, 1]), embedding=tf.zeros([2, 1000]))["ab"]
emb = model.signatures["embed"](inception_input=tf.zeros([1, 299, 299, 3]))["embedding"]
print(json.dumps({
    "signatures": sorted(model.signatures),
    "not_an_image": not_an_image,
    "ab_shape": ab.shape.as_list(),
    "embedding_shape": emb.shape.as_list(),
    "loaded_keras_or_koalarization": sorted(
        m for m, mod in sys.modules.items() if mod is not None and m.split(".")[0] in ("keras", "tf_keras", "koalarization")
    ),
}))
"""


@pytest.fixture(scope="module")
def inception():
    return embedding.build_inception("random")


@pytest.fixture(scope="module")
def exported(tmp_path_factory, inception):
    out = tmp_path_factory.mktemp("models") / "koalarization" / "1"
    return saved_model.export_saved_model(tinted_colorizer(1000), out, "random", inception=inception, config=TRAINING_CONFIG)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """Encoded images of different sizes, formats and modes, as a client would send them."""
    root = tmp_path_factory.mktemp("requests")
    rng = np.random.default_rng(0)

    def smooth(height, width):  # a mid-tone colour with a horizontal ramp, uint8 (H, W, 3)
        ramp = rng.random(3) * 0.5 + 0.25 + np.linspace(0, 0.2, width)[None, :, None]  # (1, W, 3)
        return np.repeat(np.round(np.clip(ramp, 0, 1) * 255).astype(np.uint8), height, axis=0)

    files = {
        "colour.jpg": (Image.fromarray(smooth(37, 53)), {"quality": 95}),
        "gray.png": (Image.fromarray(smooth(20, 9)[..., 0]), {}),
        "one.png": (Image.fromarray(np.array([[[200, 90, 40]]], np.uint8)), {}),
        "wide.bmp": (Image.fromarray(smooth(8, 120)), {}),
        "frame.gif": (Image.fromarray(smooth(30, 30)).convert("P"), {}),
        "deep16.png": (Image.fromarray((np.linspace(8000, 50000, 12 * 10).reshape(12, 10)).astype(np.uint16)), {}),
    }
    paths = []
    for name, (image, options) in files.items():
        image.save(root / name, **options)
        paths.append(str(root / name))
    return paths


@pytest.fixture(scope="module")
def served(exported, inputs, tmp_path_factory):
    """The REST round trip through a process that only has tensorflow."""
    root = tmp_path_factory.mktemp("rest")
    request = {"instances": [{"image_bytes": {"b64": base64.b64encode(Path(p).read_bytes()).decode()}} for p in inputs]}
    (root / "request.json").write_text(json.dumps(request))
    result = subprocess.run(
        [PYTHON, "-c", SERVE_SCRIPT, exported, str(root / "request.json"), str(root / "response.json")],
        capture_output=True,
        text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    report["response"] = json.loads((root / "response.json").read_text())
    return report


def test_saved_model_runs_without_keras_or_koalarization(served):
    assert served["loaded_keras_or_koalarization"] == []
    assert {"serving_default", "colorize_lab", "embed"} <= set(served["signatures"])


def test_rest_payload_gives_pngs_of_the_input_sizes_with_their_luminance(served, inputs, tmp_path):
    predictions = served["response"]["predictions"]
    assert len(predictions) == len(inputs)
    for path, prediction in zip(inputs, predictions):
        png = base64.b64decode(prediction["b64"])
        assert png.startswith(b"\x89PNG"), path
        (tmp_path / "out.png").write_bytes(png)
        colorized = np.asarray(Image.open(tmp_path / "out.png").convert("RGB")) / 255.0
        original = images.read_image(path)
        assert colorized.shape == original.shape, path
        l_in, l_out = color.rgb2lab(original)[..., 0], color.rgb2lab(colorized)[..., 0]
        assert np.abs(l_in - l_out).mean() <= 1.0, path
        assert np.hypot(*np.moveaxis(color.rgb2lab(colorized)[..., 1:], -1, 0)).mean() > 10, f"{path}: no colour added"


def test_bytes_that_are_not_an_image_raise_invalid_argument(served):
    assert served["not_an_image"].startswith("InvalidArgumentError")
    assert "image_bytes[0]: not an image this server decodes" in served["not_an_image"]  # names the element
    assert "got unknown" in served["not_an_image"]


def test_second_signature_takes_l_and_embedding(served):
    assert served["ab_shape"] == [2, 32, 48, 2]
    assert served["embedding_shape"] == [1, 1000]


def test_saved_model_cli_lists_the_signatures(exported):
    result = subprocess.run([SAVED_MODEL_CLI, "show", "--all", "--dir", exported], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    for name in ("serving_default", "colorize_lab", "embed"):
        assert f"signature_def['{name}']" in result.stdout
    serving = result.stdout.split("signature_def['serving_default']")[1].split("Method name")[0]
    assert "inputs['image_bytes']" in serving and "outputs['colorized_bytes']" in serving
    assert serving.count("DT_STRING") == 2


def test_export_records_config_and_inception_weights(exported):
    info = json.load(open(os.path.join(exported, colorizer.EXPORT_INFO_NAME)))
    assert info["inception"]["weights"] == embedding.describe_weights("random")
    assert info["inception"]["dim"] == 1000 and info["working_size"] == 224
    assert info["config"] == TRAINING_CONFIG
    assert os.path.isfile(os.path.join(exported, "saved_model.pb"))


def test_colorizer_for_other_embeddings_is_refused(inception, tmp_path):
    with pytest.raises(colorizer.ModelError, match="expects 16-d embeddings.*gives 1000-d"):
        saved_model.export_saved_model(tinted_colorizer(16), tmp_path / "1", "random", inception=inception)
    assert not os.path.exists(tmp_path / "1")


def test_cli_exports_a_run_dir_into_a_version_folder(tmp_path, monkeypatch, capsys):
    requested = []

    def fake_build_inception(weights="imagenet"):
        requested.append(weights)
        return stand_in_embedder(16)

    monkeypatch.setattr(embedding, "build_inception", fake_build_inception)
    monkeypatch.setattr(embedding, "EMBEDDING_DIM", 16)  # the stand-in's size
    run_dir = write_run_dir(tmp_path / "run", tinted_colorizer(16))  # its config says: random Inception weights
    out = tmp_path / "models" / "koalarization" / "1"
    assert export.main(["--model", run_dir, "--out", str(out)]) == 0
    assert requested == ["random"]
    assert os.listdir(out.parent) == ["1"]  # the staging folder is gone
    info = json.load(open(out / colorizer.EXPORT_INFO_NAME))
    assert info["inception"]["weights"]["source"] == "random" and info["working_size"] == 64  # training size
    assert info["config"]["records"]["embedding"]["dim"] == 16

    assert export.main(["--model", run_dir, "--out", str(out)]) == 3  # an output kept without --overwrite: the table's 3
    assert "already exists" in capsys.readouterr().err
    assert export.main(["--model", run_dir, "--out", str(out), "--overwrite"]) == 0
    before = sorted(os.listdir(run_dir))
    for other in (run_dir, str(tmp_path)):  # --overwrite never replaces a folder that is not an export (here: the run)
        assert export.main(["--model", run_dir, "--out", other, "--overwrite"]) == 3
        assert "not a SavedModel (no saved_model.pb), so not replaced" in capsys.readouterr().err
    assert sorted(os.listdir(run_dir)) == before
    assert export.main(["--model", str(out), "--out", str(tmp_path / "2")]) == 2
    assert "already a SavedModel" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        export.main(["--model", run_dir, "--out", str(out), "--bogus"])


# An export killed by a real kill (os._exit) at a chosen point, with the stand-in embedder of the
# in-process tests. Where Linux swaps two names atomically ("swap"), the kill comes right after the
# swap, before the old model is deleted. Without that swap ("two-renames": safeio._exchange made to
# fail), tests/killpoint.py kills at a rename onto "1": "1:1:before" with the new model staged and the
# old one already set aside, "1:1:after" right after the new one took the name.
KILLED_EXPORT = r"""
import os, sys
sys.path[:0] = [sys.argv[1]]
import killpoint
from test_colorize import stand_in_embedder
from koalarization import safeio
from koalarization.model import inception as embedding
from koalarization.export import savedmodel as export
embedding.build_inception = lambda weights="imagenet": stand_in_embedder(16)
embedding.EMBEDDING_DIM = 16
how, kill_at = sys.argv[2].split("@")
if how == "two-renames":
    safeio._exchange = lambda a, b: False
    killpoint.install(kill_at)
else:
    safeio._remove_tree = lambda path: os._exit(killpoint.KILLED)
sys.exit(export.main(sys.argv[3:]))
"""


def test_a_killed_export_never_costs_the_model_it_was_replacing(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(embedding, "build_inception", lambda weights="imagenet": stand_in_embedder(16))
    monkeypatch.setattr(embedding, "EMBEDDING_DIM", 16)
    run_dir = write_run_dir(tmp_path / "run", tinted_colorizer(16))
    out = tmp_path / "models" / "koalarization" / "1"

    def max_pixels_of_the_export():
        return json.load(open(out / colorizer.EXPORT_INFO_NAME))["max_pixels"]

    def killed_export(kill_at, max_pixels):
        done = subprocess.run(
            [PYTHON, "-c", KILLED_EXPORT, os.path.dirname(__file__), kill_at, "--model", run_dir, "--out", str(out),
             "--max-pixels", str(max_pixels), "--overwrite"],
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert done.returncode == 9, done.stderr[-2000:]

    def left_beside():
        return sorted(name.split("-")[0] for name in os.listdir(out.parent))

    assert export.main(["--model", run_dir, "--out", str(out), "--max-pixels", "1000000"]) == 0  # the model in service

    # Swapped in one step, killed before the old model is deleted: the new one is in place, whole.
    killed_export("swap@", 2000000)
    assert max_pixels_of_the_export() == 2000000 and left_beside() == [".1.tmp", ".lock", "1"]
    capsys.readouterr()
    assert export.main(["--model", run_dir, "--out", str(out)]) == 3  # cleans up, then refuses to overwrite
    assert "already exists" in capsys.readouterr().err and os.listdir(out.parent) == ["1"]

    # Two renames, killed between them: the old model is set aside, the new one staged.
    killed_export("two-renames@1:1:before", 3000000)
    assert not out.exists() and left_beside() == [".1.aside", ".1.tmp", ".lock"]
    # The next export puts the old model back before anything else, and refuses to overwrite it.
    assert export.main(["--model", run_dir, "--out", str(out)]) == 3
    assert "already exists" in capsys.readouterr().err
    assert max_pixels_of_the_export() == 2000000
    assert os.listdir(out.parent) == ["1"]  # the killed export's staging folder is gone too
    import tensorflow as tf

    assert "serving_default" in tf.saved_model.load(str(out)).signatures

    # Two renames, killed right after the new model took the name: it is whole; the old one goes next time.
    killed_export("two-renames@1:1:after", 3000000)
    assert max_pixels_of_the_export() == 3000000
    assert export.main(["--model", run_dir, "--out", str(out)]) == 3
    assert os.listdir(out.parent) == ["1"] and max_pixels_of_the_export() == 3000000


def test_a_second_export_into_the_same_folder_stops_with_one_line(tmp_path, monkeypatch, capsys, lock_holder):
    monkeypatch.setattr(embedding, "build_inception", lambda weights="imagenet": stand_in_embedder(16))
    monkeypatch.setattr(embedding, "EMBEDDING_DIM", 16)
    run_dir = write_run_dir(tmp_path / "run", tinted_colorizer(16))
    out = tmp_path / "models" / "1"
    with lock_holder(out.parent, "python -m koalarization.export", ".lock-1") as other:  # a live exporter
        try:
            assert export.main(["--model", run_dir, "--out", str(out)]) == errors.EXIT_IN_USE
            err = capsys.readouterr().err.strip()
            assert err.count("\n") == 0 and f"pid {other.pid}" in err and "in use by python -m koalarization.export" in err
            assert not out.exists()
        finally:
            other.kill()
    other.wait()
    assert export.main(["--model", run_dir, "--out", str(out)]) == 0  # the lock of a stopped process is taken over
    assert sorted(os.listdir(out.parent)) == ["1"]


def test_a_full_disk_while_writing_the_model_is_one_line_and_keeps_the_old_one(tmp_path, monkeypatch, capsys):
    import tensorflow as tf

    monkeypatch.setattr(embedding, "build_inception", lambda weights="imagenet": stand_in_embedder(16))
    monkeypatch.setattr(embedding, "EMBEDDING_DIM", 16)
    run_dir = write_run_dir(tmp_path / "run", tinted_colorizer(16))
    out = tmp_path / "models" / "1"
    assert export.main(["--model", run_dir, "--out", str(out), "--max-pixels", "1000000"]) == 0
    capsys.readouterr()

    def full(module, path, **kwargs):  # TensorFlow's own writer meets a full disk half-way
        os.makedirs(os.path.join(path, "variables"), exist_ok=True)
        raise tf.errors.ResourceExhaustedError(None, None, f"{path}/variables/variables.data-00000-of-00001; No space left on device")

    monkeypatch.setattr(tf.saved_model, "save", full)
    assert export.main(["--model", run_dir, "--out", str(out), "--overwrite"]) == errors.EXIT_OUTPUT
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"error: {out}: no space left on the device") and line.endswith(f"{out} is as it was")
    assert os.listdir(out.parent) == ["1"] and json.load(open(out / colorizer.EXPORT_INFO_NAME))["max_pixels"] == 1000000
