"""Figures of the data stages: bytes per record example vs the float32 layout."""

import os
import tempfile

import numpy as np
import skimage.data

from benchmarks import figure
from koalarization import colors, records

EMBEDDING_DIM = 1000
PAPER_EMBEDDING_DIM = 1001  # the authors' float32 layout stored 1001-d TF-slim logits


def record_bytes(sizes, log=print):
    """Figure: bytes per example in a written shard vs ``224·224·3·4 + 1001·4`` (float32 Lab + logits)."""
    size = 224  # the layout being compared is the paper's; this figure is cheap at full size
    rng = np.random.default_rng(0)
    photos = [skimage.data.astronaut(), skimage.data.chelsea(), skimage.data.coffee(), skimage.data.rocket()]
    examples = []
    for i, photo in enumerate(photos):
        lab = colors.prepare_lab(photo.astype(np.float32) / 255.0, size).numpy()  # (224, 224, 3)
        h, w = photo.shape[:2]
        examples.append(records.serialize_example(f"skimage/{i}", h, w, lab, rng.normal(size=EMBEDDING_DIM)))
    with tempfile.TemporaryDirectory(prefix="bench-bytes-") as tmp:
        path = os.path.join(tmp, records.shard_name("train", 0))
        records.write_shard(path, examples)
        per_example = os.path.getsize(path) / len(examples)
    float32_layout = size * size * 3 * 4 + PAPER_EMBEDDING_DIM * 4
    return [
        figure(
            "record_bytes", "bytes per record example",
            ("bytes per example on disk (TFRecord framing included)", per_example, "B"),
            ("float32 layout 224·224·3·4 + 1001·4", float32_layout, "B"),
            goal=("<=", 0.27),
            note=f"{len(examples)} skimage photos at 224x224, {EMBEDDING_DIM}-d float32 embedding",
        )
    ]
