"""The record schema (koalarization.records): quantization, write -> read, size per example, manifests."""

import os

import numpy as np
import pytest
import tensorflow as tf
from skimage import color as skcolor

from koalarization import colors, records
from koalarization.records.dataset import Records


def _random_lab(size, seed=0):
    rgb = np.random.default_rng(seed).random((size, size, 3))
    return skcolor.rgb2lab(rgb).astype(np.float32)  # (S, S, 3), real in-gamut Lab


def test_quantization_error_within_half_a_unit():
    lab = _random_lab(224)
    l, ab = records.quantize_lab(lab)
    assert l.dtype == np.uint8 and l.shape == (224, 224)
    assert ab.dtype == np.int8 and ab.shape == (224, 224, 2)
    assert np.max(np.abs(l / records.L_QUANT - lab[..., 0])) <= 0.5
    assert np.max(np.abs(ab - lab[..., 1:])) <= 0.5


def test_quantization_clips_out_of_range_ab():
    lab = np.array([[[100.0, 140.0, -140.0]]], np.float32)
    l, ab = records.quantize_lab(lab)
    assert l[0, 0] == 255 and list(ab[0, 0]) == [127, -127]


def test_write_read_round_trip(tmp_path):
    size, dim = 32, 10
    rng = np.random.default_rng(1)
    labs = [_random_lab(size, seed=s) for s in range(3)]
    embeddings = rng.normal(size=(3, dim)).astype(np.float32)
    serialized = [
        records.serialize_example(f"photo/{i}.jpg", 100 + i, 200 + i, labs[i], embeddings[i]) for i in range(3)
    ]
    path = str(tmp_path / records.shard_name("train", 0))
    assert records.write_shard(path, iter(serialized)) == 3
    assert os.listdir(tmp_path) == [os.path.basename(path)]  # no temporary file left behind

    batch = next(iter(tf.data.TFRecordDataset(path).batch(3)))
    parsed = records.parse_examples(batch, size, dim)
    assert [k.decode() for k in parsed["key"].numpy()] == ["photo/0.jpg", "photo/1.jpg", "photo/2.jpg"]
    assert list(parsed["height"].numpy()) == [100, 101, 102] and list(parsed["width"].numpy()) == [200, 201, 202]
    np.testing.assert_array_equal(parsed["embedding"].numpy(), embeddings)
    l = colors.unscale_l(parsed["l"].numpy())[..., 0]  # (3, S, S)
    ab = colors.unscale_ab(parsed["ab"].numpy())  # (3, S, S, 2)
    for i in range(3):
        assert np.max(np.abs(l[i] - labs[i][..., 0])) <= 0.5 + 1e-4
        assert np.max(np.abs(ab[i] - labs[i][..., 1:])) <= 0.5 + 1e-4


def test_bytes_per_example_about_150_kb():
    size, dim = 224, 1001
    example = records.serialize_example("some/photo.jpg", 480, 640, _random_lab(size), np.zeros(dim, np.float32))
    float32_layout = size * size * 3 * 4 + dim * 4
    assert len(example) <= 0.27 * float32_layout
    assert 140_000 <= len(example) <= 160_000


def test_shard_names():
    assert records.shard_name("train", 3) == "train-00003.tfrecord"


def test_records_of_an_older_build_over_workers_are_refused_with_one_line(tmp_path):
    """--num-workers is gone (scale out on Beam): its manifest-wNN.json are not merged but refused, saying to rebuild."""
    embedding = {"model": "m", "weights": {"source": "random"}, "dim": 4, "input_size": 299}
    splits = {"train": {"examples": 3, "shards": ["train-w00-00000.tfrecord"]}, "val": {"examples": 0, "shards": []}}
    records.write_json_atomic(str(tmp_path / "manifest-w00.json"), records.make_manifest(32, embedding, splits, worker={"index": 0, "count": 2}))
    with pytest.raises(records.RecordsError, match=r"manifest-w00.json is of an older build split over --num-workers.*rebuild the records") as error:
        records.read_manifest(str(tmp_path))
    assert "\n" not in str(error.value)


def test_missing_manifest_names_the_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match=str(tmp_path)):
        records.read_manifest(str(tmp_path))


def test_load_dataset_of_synthetic_records(synthetic_records):
    inputs, ab = next(iter(Records(synthetic_records).dataset("val", batch_size=4, shuffle=False)))
    assert inputs["l"].shape == (4, 32, 32, 1) and ab.shape == (4, 32, 32, 2)
    assert Records(synthetic_records).num_examples("train") == 8


def test_a_shard_that_fails_halfway_leaves_nothing(tmp_path):
    lab = _random_lab(8)

    def examples():
        yield records.serialize_example("a", 8, 8, lab, np.zeros(4, np.float32))
        raise RuntimeError("disk full")

    path = str(tmp_path / records.shard_name("train", 0))
    with pytest.raises(RuntimeError, match="disk full"):
        records.write_shard(path, examples())
    assert os.listdir(tmp_path) == []  # neither a half shard under its name nor a temporary file


def test_short_epochs_reach_every_part_of_every_shard(tmp_path):
    """Training builds a new pipeline every epoch; with epochs shorter than the split, reading each shard
    from its first record would never get past its first few examples, however many epochs run."""
    from conftest import write_synthetic_records
    from koalarization.train.loop import epoch_seed

    write_synthetic_records(str(tmp_path), n_train=160, n_val=0, image_size=16, shards=4)  # train/i is at position i // 4 of shard i % 4

    def positions_read(random_starts, epochs=30, seed=0):
        seen = []
        for epoch in range(epochs):  # 4 batches of 4 per epoch: 16 of 160 examples
            ds = Records(str(tmp_path)).dataset("train", 4, repeat=True, seed=epoch_seed(seed, epoch), with_keys=True,
                                   shuffle_buffer=8, cycle_length=2, random_starts=random_starts)
            seen += [int(k.decode().split("/")[1]) // 4 for inputs, _ in ds.take(4) for k in inputs["key"].numpy()]
        return seen

    from_the_start, from_random_starts = positions_read(False), positions_read(True)
    assert max(from_the_start) < 15  # the failure this guards against: 30 epochs never past position 15 of 40
    assert max(from_random_starts) >= 35 and len(set(from_random_starts)) == 40  # every position of the shards is reached
    assert positions_read(True, epochs=3) == from_random_starts[: 3 * 16]  # a function of the seed: a resumed run reads the same
