"""The tf.data input pipeline over the records written by ``python -m tfrecords_builder``.

    recs = Records("records/")  # the manifest read and checked once
    for inputs, ab in recs.dataset("train", batch_size=100):  # inputs: {"l": (B,224,224,1), "embedding": (B,D)}; ab: (B,224,224,2)
        ...

Shards are read in parallel (interleave), examples are shuffled, batched, then parsed a whole
batch at a time (one ``parse_example`` call per batch is much cheaper than one per example), and
the next batches are prefetched while the model trains, as the tf.data performance guide advises.

How well a batch mixes: the builder already orders each split by a hash of the key before
cutting shards, so every shard is a uniform sample of the split, whatever order the photos had on
disk (ImageNet's folders are one class each). On top of that, the shard order is shuffled every
epoch (with ``seed``), ``cycle_length`` shards are read round-robin, and a buffer of
``shuffle_buffer`` examples is shuffled: a batch of 32 from a build of 40 class folders holds
photos of ~22 classes, as a uniform draw would (``tests/test_records.py`` checks >= 16). The
buffer holds serialized examples, ~150 KB each at 224x224: the default 4096 costs ~600 MB.

The folder may be a URL (``Records("gs://bucket/records")``): the manifest and the shards' presence
go through :mod:`koalarization.storage`, the shards through ``tf.data``, which reads TensorFlow's
filesystems itself.
"""

import os

from koalarization import quiet_tensorflow  # noqa: E402

quiet_tensorflow()
import tensorflow as tf

from koalarization import records, storage


SHUFFLE_BUFFER = 4096  # examples shuffled in memory (~600 MB of serialized 224x224 examples)
CYCLE_LENGTH = 16  # shards read at once, round-robin


class Records:
    """A records folder, opened once: its manifest is read and checked here, and nowhere else.

        recs = Records("records/")
        recs.splits, recs.num_examples("train"), recs.shards("val"), recs.image_size, recs.embedding_dim
        for inputs, ab in recs.dataset("train", batch_size=100): ...

    A folder without a manifest raises ``FileNotFoundError``; records of another schema version or a
    damaged manifest raise ``records.RecordsError`` (status 5), each with one line.
    """

    def __init__(self, records_dir):
        self.path = os.fspath(records_dir)
        self.manifest = records.read_manifest(self.path)
        self.image_size = int(self.manifest["image_size"])
        self.embedding_dim = records.embedding_dim(self.manifest)
        self.embedding = self.manifest["embedding"]

    def __repr__(self):
        counts = ", ".join(f"{split} {self.num_examples(split)}" for split in self.splits)
        return f"Records({self.path!r}: {counts} at {self.image_size}px)"

    @property
    def splits(self):
        """The split names, as the manifest lists them."""
        return tuple(self.manifest["splits"])

    def num_examples(self, split):
        """How many examples ``split`` holds (0 for a split the records do not have)."""
        return int(self.manifest["splits"].get(split, {}).get("examples", 0))

    def shards(self, split):
        """The shard files of ``split``, checked to exist."""
        if split not in self.manifest["splits"]:
            raise ValueError(f"{self.path}: no split {split!r}; the records have {sorted(self.splits)}")
        paths = [os.path.join(self.path, name) for name in self.manifest["splits"][split]["shards"]]
        missing = [p for p in paths if not storage.exists(p)]
        if missing:
            raise FileNotFoundError(f"{self.path}: shards listed in the manifest are missing: {missing[:3]}")
        return paths

    def facts(self):
        """What a run's config.json records about these records (:func:`records.facts`)."""
        return records.facts(self.manifest)

    def parse(self, serialized):
        """A batch of serialized examples -> dict of tensors (:func:`records.parse_examples`)."""
        return records.parse_examples(serialized, self.image_size, self.embedding_dim)

    def dataset(
        self,
        split,
        batch_size,
        shuffle=True,
        repeat=False,
        seed=None,
        with_keys=False,
        shuffle_buffer=SHUFFLE_BUFFER,
        cycle_length=CYCLE_LENGTH,
        random_starts=False,
        skip_batches=0,
    ):
        """Batches ``({"l": (B,S,S,1), "embedding": (B,D)}, ab (B,S,S,2))``, all float32, l and ab in [-1, 1].

        ``with_keys=True`` adds ``key``, ``height`` and ``width`` to the inputs dict (for evaluation).
        ``shuffle_buffer``: examples in the shuffle buffer (used when ``shuffle``); ``cycle_length``:
        shards read at once. An empty split gives an empty dataset.

        ``random_starts=True`` (with ``seed``; training with epochs shorter than the split): each shard is
        read once from a position drawn from the seed, on to its end, then from its start. A new pipeline per epoch
        that reads every shard from its first record would otherwise only ever see the first few hundred
        examples of each shard, however many epochs run.

        ``skip_batches``: the first batches are dropped before they are parsed (a run resumed inside an
        epoch goes on with the batch it would have trained on next, without decoding those before it).
        """
        if shuffle_buffer < 1 or cycle_length < 1:
            raise ValueError(f"shuffle_buffer and cycle_length must be at least 1, got {shuffle_buffer} and {cycle_length}")
        paths = self.shards(split)

        files = tf.data.Dataset.from_tensor_slices(tf.constant(paths, dtype=tf.string))
        read = tf.data.TFRecordDataset
        if random_starts and paths:
            if seed is None:
                raise ValueError("random_starts needs a seed (the same one on every worker and after a resume)")
            files = files.enumerate()  # (shard index, path): each shard gets its own start
            per_shard = max(1, -(-self.num_examples(split) // len(paths)))  # the builder's shard size

            def read(index, path):
                start = tf.random.stateless_uniform([], [seed, index], 0, per_shard, dtype=tf.int64)
                shard = tf.data.TFRecordDataset(path)
                return shard.skip(start).concatenate(shard.take(start))  # each record once, from start round to it

        if shuffle and paths:
            files = files.shuffle(len(paths), seed=seed, reshuffle_each_iteration=True)
        ds = files.interleave(
            read,
            cycle_length=max(1, min(len(paths), cycle_length)),
            num_parallel_calls=tf.data.AUTOTUNE,
            # A seeded order must be reproducible: multi-worker training shards the batches by position,
            # so every worker has to see the same order for the parts to be disjoint.
            deterministic=(not shuffle) or seed is not None,
        )
        if shuffle:
            ds = ds.shuffle(buffer_size=shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
        if repeat:
            ds = ds.repeat()
        ds = ds.batch(batch_size, drop_remainder=False)
        if skip_batches:
            ds = ds.skip(skip_batches)  # serialized batches: skipped unparsed

        def to_inputs_targets(serialized):
            example = self.parse(serialized)
            inputs = {"l": example["l"], "embedding": example["embedding"]}
            if with_keys:
                inputs.update(key=example["key"], height=example["height"], width=example["width"])
            return inputs, example["ab"]

        ds = ds.map(to_inputs_targets, num_parallel_calls=tf.data.AUTOTUNE)
        return ds.prefetch(tf.data.AUTOTUNE)
