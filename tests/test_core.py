"""Quick checks of the core data path: records written -> read back through load_dataset."""

import numpy as np

from koalarization.records.dataset import Records


def test_load_dataset_shapes_and_ranges(synthetic_records):
    ds = Records(synthetic_records).dataset("train", batch_size=4, shuffle=False)
    batches = list(ds)
    assert sum(int(b[1].shape[0]) for b in batches) == 8
    inputs, ab = batches[0]
    assert inputs["l"].shape == (4, 32, 32, 1) and inputs["l"].dtype.name == "float32"
    assert inputs["embedding"].shape == (4, 16)
    assert ab.shape == (4, 32, 32, 2)
    assert -1 <= np.min(inputs["l"]) and np.max(inputs["l"]) <= 1
    assert -1 <= np.min(ab) and np.max(ab) <= 1
