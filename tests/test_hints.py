"""The colour-hints variant (issue 26, an addition to the paper) learns to use its hints: after a
short ``train --hints`` run (300 steps), on held-out photos, 10 simulated hints cut the ab error of
none by at least 15%, and near each hint (its patch and 4 px around) the output is closer to the
hint than without hints.

NOT YET the issue's bar (10 hints at most halve the error; within 10 Lab units near a hint): this
network (no batch norm, 8 plain encoder convolutions) learns to carry hints slowly. Measured on the
photos below at 32 px, batch 32, Adam 3e-4: the ab error with 10 hints went 38.0, 34.9, 34.2, 34.0,
31.3, 25.3 after 100..700 steps, against 46 without (0.55 at 700 steps, ~6 minutes of this shared
CPU); the issue's bar needs a longer run than the suite can pay for.

The photos are made so that only the hints can tell their colours, as the fusion test of
test_model.py makes only the embedding tell them: random luminance texture, and two regions split
by a random line, each of a random colour (a*, b* in +-60). Without hints the best a model can do
is a constant colour; with them it must carry each hint's colour over its region. Other doors
(CLI, serving, refusals): test_hints_doors.py.
"""

import os

import keras
import numpy as np

from koalarization import colors, records
from koalarization.model import hints
from koalarization.train.trainer import TrainConfig, train

SIZE = 32  # working size: the encoder's 4x4 grid (16 px learned more slowly per step, and a step costs about as much)
DIM = 4
STEPS = 300
LEARNING_RATE = 3e-4  # 1e-3 kills this network on colours L cannot predict (every ReLU of a layer off: a constant output)


def two_colour_photo(rng, size=SIZE):
    """Lab (size, size, 3): L a random texture in [25, 85]; ab two random colours on the two sides of a random line."""
    y, x = np.mgrid[0:size, 0:size] / size
    f, phase = rng.uniform(1, 4, 2), rng.uniform(0, 2 * np.pi, 2)
    texture = 0.5 * np.sin(2 * np.pi * f[0] * x + phase[0]) * np.cos(2 * np.pi * f[1] * y + phase[1]) + 0.3 * rng.uniform(-1, 1, (size, size))
    l = 55 + 30 * np.clip(texture, -1, 1)
    angle = rng.uniform(0, 2 * np.pi)
    side = np.cos(angle) * (x - 0.5) + np.sin(angle) * (y - 0.5) > rng.uniform(-0.25, 0.25)
    ab = np.where(side[..., None], rng.uniform(-60, 60, 2), rng.uniform(-60, 60, 2))
    return np.concatenate([l[..., None], ab], axis=-1).astype(np.float32)


def write_records(out, n_train=2048, n_val=64, seed=0):
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(seed)
    splits = {}
    for split, n in (("train", n_train), ("val", n_val)):
        examples = [records.serialize_example(f"{split}/{i}", SIZE, SIZE, two_colour_photo(rng), np.zeros(DIM)) for i in range(n)]
        names = [records.shard_name(split, 0)]
        records.write_shard(os.path.join(out, names[0]), examples)
        splits[split] = {"examples": n, "shards": names}
    embedding = {"model": "none", "weights": {"source": "random"}, "dim": DIM, "input_size": SIZE}
    records.write_json_atomic(os.path.join(out, records.MANIFEST_NAME), records.make_manifest(SIZE, embedding, splits))


def held_out(n=64, seed=99):
    rng = np.random.default_rng(seed)
    lab = np.stack([two_colour_photo(rng) for _ in range(n)])
    return np.asarray(colors.scale_l(lab[..., :1])), np.asarray(colors.scale_ab(lab[..., 1:]))


def test_the_hints_variant_learns_to_follow_hints(tmp_path):
    write_records(str(tmp_path / "records"))
    config = TrainConfig(
        records=str(tmp_path / "records"), run_dir=str(tmp_path / "run"), epochs=1, steps_per_epoch=STEPS, batch_size=32,
        learning_rate=LEARNING_RATE, hints=True, validation_steps=1, sample_images=1, backup_every_steps=0, export=False,
    )  # fmt: skip
    train(config, log=lambda *args, **kwargs: None)
    model = keras.saving.load_model(str(tmp_path / "run" / "model.keras"), safe_mode=True)
    l, ab = held_out()

    def predict(hint_input):
        return keras.ops.convert_to_numpy(model({"l": l, "embedding": np.zeros((len(l), DIM), np.float32), "hints": np.asarray(hint_input)}))

    def ab_error(predicted):  # mean Euclidean ab error, Lab units
        return float(np.mean(np.linalg.norm((predicted - ab) * colors.AB_SCALE, axis=-1)))

    without = ab_error(predict(hints.no_hints(len(l), SIZE)))
    ten, (rows, cols, sizes, values) = hints.simulate_count(ab, [5, 5], 10)
    with_ten = predict(ten)
    assert ab_error(with_ten) <= 0.85 * without, (ab_error(with_ten), without)

    def near(predicted):  # per hint: the distance of the output's mean ab over its patch and 4 px around to the hint
        distances = []
        for i, k in np.ndindex(rows.shape):
            top, left, size = int(rows[i, k]), int(cols[i, k]), int(sizes[i, k])
            region = predicted[i, max(top - 4, 0) : top + size + 4, max(left - 4, 0) : left + size + 4]
            distances.append(np.linalg.norm((region.reshape(-1, 2).mean(axis=0) - values.numpy()[i, k]) * colors.AB_SCALE))
        return float(np.median(distances))

    assert near(with_ten) <= 0.85 * near(predict(hints.no_hints(len(l), SIZE))), near(with_ten)
