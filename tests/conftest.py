"""Shared fixtures: small synthetic records so that tests of training, colorizing and evaluation
do not need to run Inception or the builder."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
import pytest

import koalarization

koalarization.quiet_tensorflow()
from koalarization import colors, records  # noqa: E402

SMALL_DIM = 16  # embedding size of the synthetic records


def synthetic_photo(rng, height=48, width=64):
    """A smooth random colour picture, float sRGB in [0, 1]: two colour gradients and a blob."""
    y, x = np.mgrid[0:height, 0:width] / max(height, width)
    c0, c1, c2 = rng.random((3, 3))
    img = c0 * (1 - x[..., None]) + c1 * x[..., None]
    blob = np.exp(-(((y - rng.random()) ** 2 + (x - rng.random()) ** 2) / 0.05))[..., None]
    img = img * (1 - blob) + c2 * blob
    return img.astype(np.float32)


def learnable_photo(rng, height=48, width=64):
    """A synthetic photo whose colour a colorizer can
    learn it quickly and its validation loss must fall: random luminance, one warm tint (a*=30, b*=20)
    everywhere, as in an old sepia photo collection."""
    gray = synthetic_photo(rng, height, width).mean(axis=-1)
    l = 25.0 + 60.0 * (gray - gray.min()) / (np.ptp(gray) + 1e-6)  # (H, W) in [25, 85]
    lab = np.stack([l, np.full_like(l, 30.0), np.full_like(l, 20.0)], axis=-1)
    return colors.lab_to_rgb(lab).numpy()


def write_synthetic_records(out_dir, n_train=8, n_val=4, image_size=32, dim=SMALL_DIM, seed=0, shards=2, learnable=False):
    """Records in the builder's schema from synthetic photos, with a random 'embedding'.

    ``learnable=True`` uses :func:`learnable_photo` (colour determined by luminance)."""
    rng = np.random.default_rng(seed)
    make_photo = learnable_photo if learnable else synthetic_photo
    os.makedirs(out_dir, exist_ok=True)
    splits = {}
    for split, n in (("train", n_train), ("val", n_val)):
        examples = []
        for i in range(n):
            rgb = make_photo(rng)
            lab = colors.prepare_lab(rgb, image_size).numpy()
            examples.append(records.serialize_example(f"{split}/{i}", rgb.shape[0], rgb.shape[1], lab, rng.normal(size=dim)))
        names = []
        for s in range(shards if n else 0):
            name = records.shard_name(split, s)
            records.write_shard(os.path.join(out_dir, name), examples[s::shards])
            names.append(name)
        splits[split] = {"examples": n, "shards": names}
    embedding = {"model": "synthetic", "weights": {"source": "random"}, "dim": dim, "input_size": image_size}
    manifest = records.make_manifest(image_size, embedding, splits)
    records.write_json_atomic(os.path.join(out_dir, records.MANIFEST_NAME), manifest)
    return manifest


@pytest.fixture(scope="session")
def synthetic_records(tmp_path_factory):
    """A records dir of 8 train + 4 val synthetic photos at 32x32 with 16-d embeddings."""
    out = tmp_path_factory.mktemp("synthetic_records")
    write_synthetic_records(str(out))
    return str(out)


HOLD_LOCK = (
    "import sys, time; from koalarization.locks import DirLock; "
    "DirLock(sys.argv[1], sys.argv[2], name=sys.argv[3]).acquire(); print('locked', flush=True); time.sleep(600)"
)


@pytest.fixture
def lock_holder():
    """``hold(folder, command, name=".lock")``: a live process that holds ``folder``'s lock (the first
    writer, as a second one meets it); killed at the end if the test did not kill it."""
    import subprocess
    import sys

    held = []

    def hold(folder, command, name=".lock"):
        process = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(folder), command, name], stdout=subprocess.PIPE, text=True)
        held.append(process)
        assert process.stdout.readline() == "locked\n"
        return process

    yield hold
    for process in held:
        process.kill()
        process.wait()
