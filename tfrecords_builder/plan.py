"""The shard plan: which split, which shard and which position every key gets, and the build's fingerprint.

A pure function of the keys and the settings, the same for the one-machine runner
(:mod:`tfrecords_builder.builder`) and the Beam pipeline (:mod:`tfrecords_builder.beam`), so both
write the same records. Each key's split comes from its SHA-1 (a photo always lands in the same
split, whatever the order or the machine), and each split's keys are ordered by another hash of
the key (``sources.order_of``) before they are cut into shards of ``shard_size``: every shard is
a uniform mix of its split, as TFDS does (a TFDS source keeps its own order, already shuffled).

Cheap enough for the driver of an ImageNet build: 1,281,167 keys are planned in seconds, the
positions held as numpy arrays (``python -m benchmarks`` measures it).
"""

import dataclasses
import hashlib
import json
import os

import numpy as np

from koalarization.constants import MANIFEST_FILE, RECORDS_SCHEMA_VERSION as SCHEMA_VERSION

SPLITS = ("train", "val")


@dataclasses.dataclass(frozen=True)
class Shard:
    split: str
    name: str
    positions: np.ndarray  # int64 indices into source.keys, in the order written


def shard_name(split, index):
    """``train-00003.tfrecord`` (``koalarization.records.shard_name``)."""
    return f"{split}-{index:05d}.tfrecord"


def _unit(key):
    return int.from_bytes(hashlib.sha1(key.encode("utf-8")).digest()[:8], "big") / 2.0**64


def split_of(key, val_fraction):
    """'val' or 'train', from the first 8 bytes of SHA-1(key) read as a number in [0, 1)."""
    return "val" if _unit(key) < val_fraction else "train"


def order_of(key):
    """The sort key that mixes a source: SHA-256 of the key (independent of the split's SHA-1)."""
    return hashlib.sha256(b"order:" + key.encode("utf-8")).digest()


def plan_shards(keys, config, shuffled=False):
    """Every shard of the build: each split's keys ordered by :func:`order_of` (kept in source order
    when the source is ``shuffled`` already), cut into ``config.shard_size`` pieces."""
    val = np.fromiter((_unit(key) < config.val_fraction for key in keys), dtype=bool, count=len(keys))
    shards = []
    for split, chosen in (("train", ~val), ("val", val)):
        positions = np.flatnonzero(chosen).astype(np.int64)
        if not shuffled and len(positions):
            digests = [order_of(keys[p]) for p in positions.tolist()]
            positions = positions[np.asarray(sorted(range(len(digests)), key=digests.__getitem__), dtype=np.int64)]
        for index, start in enumerate(range(0, len(positions), config.shard_size)):
            shards.append(Shard(split, shard_name(split, index), positions[start : start + config.shard_size]))
    return shards


def fingerprint(config, description, embedder_info, plan, keys):
    """SHA-1 of what decides the bytes of the records: the settings, the source, the embedder and
    every shard's keys in order. ``--resume`` goes on only from a build of the same fingerprint."""
    settings = [SCHEMA_VERSION, config.image_size, config.val_fraction, config.shard_size, 1, config.keep_gray]
    same = {k: v for k, v in embedder_info.items() if k != "precision" or v == "bfloat16"}  # float32 builds resume as before
    digest = hashlib.sha1(json.dumps([settings, description, same]).encode())
    for shard in plan:
        digest.update(b"\0" + shard.name.encode())
        digest.update("\n".join(keys[p] for p in shard.positions.tolist()).encode("utf-8", "surrogateescape"))
    return digest.hexdigest()


def task_path(work_dir, name):
    return os.path.join(work_dir, f"{name}.task.json")


def write_tasks(work_dir, shards, keys, paths=None, tfds=None):
    """One small JSON per shard in ``work_dir``: its positions, keys and payloads (a file source's
    ``paths``, or a TFDS source's ``(name, split, data_dir, feature)``), which a Beam worker reads;
    the pipeline's elements are only the shard names."""
    from koalarization import safeio

    for shard in shards:
        positions = [int(p) for p in shard.positions]
        task = {"keys": [keys[p] for p in positions], "positions": positions}
        task |= {"paths": [paths[p] for p in positions]} if paths is not None else {"tfds": list(tfds)}
        safeio.write_json(task_path(work_dir, shard.name), task)


MANIFEST_NAME = MANIFEST_FILE
