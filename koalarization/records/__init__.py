"""The TFRecord schema and the manifest: one place, versioned.

One example per photo:

=============  =========================================  ==========================
feature        stored as                                  meaning
=============  =========================================  ==========================
``key``        bytes                                      source path or dataset id
``height``     int64                                      original height in pixels
``width``      int64                                      original width in pixels
``l``          bytes, uint8 224x224                       ``round(L * 2.55)``
``ab``         bytes, int8 224x224x2                      ``round(ab)`` clipped to ±127
``embedding``  bytes, float32 (D,)                        Inception-ResNet-v2 logits
=============  =========================================  ==========================

That is ~150 KB per example instead of ~600 KB as float32 lists; quantization error is at most
0.5/2.55 L units and 0.5 ab units. ``manifest.json`` beside the shards says how they were made.

Schema versions: 1 embedded Inception's view of ``L / 50 - 1``; 2 embeds the authors' input
(``colors.inception_input``: the luma of the gamma-encoded RGB), keys relative to the source
root, shards mixed by a hash of the key, gray photos left out. Records of another version are
refused with one line that says to rebuild them.
"""

import contextlib
import json
import os
import re

import numpy as np
from koalarization import quiet_tensorflow  # noqa: E402

quiet_tensorflow()
import tensorflow as tf

from koalarization import colors, errors, safeio, storage

from koalarization.constants import RECORDS_SCHEMA_VERSION as SCHEMA_VERSION  # noqa: E402
from koalarization.constants import MANIFEST_FILE as MANIFEST_NAME  # noqa: E402
L_QUANT = 2.55  # L in [0, 100] -> uint8 [0, 255]
AB_LIMIT = 127  # ab clipped to the int8 range used by the records
SPLITS = ("train", "val")


def quantize_lab(lab):
    """Lab float (H, W, 3) -> (l uint8 (H, W), ab int8 (H, W, 2)), numpy."""
    lab = np.asarray(lab, dtype=np.float32)
    l = np.clip(np.round(lab[..., 0] * L_QUANT), 0, 255).astype(np.uint8)
    ab = np.clip(np.round(lab[..., 1:]), -AB_LIMIT, AB_LIMIT).astype(np.int8)
    return l, ab


def _bytes(value):
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))


def _int(value):
    return tf.train.Feature(int64_list=tf.train.Int64List(value=[int(value)]))


def serialize_example(key, height, width, lab, embedding):
    """One photo -> a serialized ``tf.train.Example`` (bytes).

    ``lab`` is the letterboxed Lab image (S, S, 3) float; ``embedding`` the Inception logits (D,).
    """
    l, ab = quantize_lab(lab)
    features = {
        "key": _bytes(key.encode("utf-8") if isinstance(key, str) else bytes(key)),
        "height": _int(height),
        "width": _int(width),
        "l": _bytes(l.tobytes()),
        "ab": _bytes(ab.tobytes()),
        "embedding": _bytes(np.asarray(embedding, dtype="<f4").tobytes()),
    }
    return tf.train.Example(features=tf.train.Features(feature=features)).SerializeToString(deterministic=True)  # map keys sorted: the same bytes in every process


_FEATURES = {
    "key": tf.io.FixedLenFeature([], tf.string),
    "height": tf.io.FixedLenFeature([], tf.int64),
    "width": tf.io.FixedLenFeature([], tf.int64),
    "l": tf.io.FixedLenFeature([], tf.string),
    "ab": tf.io.FixedLenFeature([], tf.string),
    "embedding": tf.io.FixedLenFeature([], tf.string),
}


def parse_examples(serialized, image_size, embedding_dim):
    """A batch of serialized examples (B,) -> dict of decoded, *scaled* float tensors.

    ``l``: (B, S, S, 1) in [-1, 1]; ``ab``: (B, S, S, 2) in [-1, 1]; ``embedding``: (B, D);
    plus ``key``, ``height`` and ``width``. Works eagerly and inside ``tf.data``.
    """
    parsed = tf.io.parse_example(serialized, _FEATURES)
    size = image_size
    l = tf.reshape(tf.io.decode_raw(parsed["l"], tf.uint8), [-1, size, size, 1])
    ab = tf.reshape(tf.io.decode_raw(parsed["ab"], tf.int8), [-1, size, size, 2])
    embedding = tf.reshape(tf.io.decode_raw(parsed["embedding"], tf.float32, little_endian=True), [-1, embedding_dim])
    return {
        "key": parsed["key"],
        "height": parsed["height"],
        "width": parsed["width"],
        "l": colors.scale_l(tf.cast(l, tf.float32) / L_QUANT),
        "ab": colors.scale_ab(tf.cast(ab, tf.float32)),
        "embedding": embedding,
    }


# -- manifest ----------------------------------------------------------------------------------
def facts(manifest):
    """What a run's config.json records about the records it trained on (compared on resume and by evaluate)."""
    splits = {name: info.get("examples", 0) for name, info in manifest["splits"].items()}
    return json.loads(json.dumps({"image_size": manifest["image_size"], "embedding": manifest["embedding"], "examples": splits}))


def changed_facts(before, now):
    """The names of the :func:`facts` that differ between ``before`` and ``now``, joined ("" when none)."""
    return ", ".join(k for k in sorted(set(before) | set(now)) if before.get(k) != now.get(k))


def shard_name(split, index):
    """``train-00003.tfrecord``."""
    return f"{split}-{index:05d}.tfrecord"


def write_json_atomic(path, payload):
    """Write JSON to ``path`` atomically (``safeio.write_json``): a reader never sees half of it."""
    safeio.write_json(path, payload)


class RecordsError(errors.DamagedError):
    """Records that cannot be read as they are (damaged manifest, other schema); one line."""


def _read(path):
    try:
        return safeio.read_json(path, "records manifest", kind=dict)
    except safeio.DamagedFileError as error:
        raise RecordsError(f"{error}; rebuild the records with python -m tfrecords_builder") from None


def read_manifest(records_dir):
    """Read ``manifest.json`` from ``records_dir``.

    Raises ``FileNotFoundError`` when there is none, :class:`RecordsError` (a ``ValueError``) for a
    damaged one, records of another schema version or of an older build split over workers
    (``manifest-wNN.json``: scaling out is Apache Beam's now), each with one line that says what to do.
    """
    path = os.path.join(records_dir, MANIFEST_NAME)
    if not storage.exists(path):
        old = old_worker_manifests(records_dir)
        if old:
            raise RecordsError(
                f"{records_dir}: {old[0]} is of an older build split over --num-workers, which this koalarization no "
                f"longer reads; rebuild the records with python -m tfrecords_builder --out NEW_FOLDER and your sources "
                "(--beam-pipeline-options to build on many processes or machines)"
            )
        raise FileNotFoundError(
            f"{records_dir}: no {MANIFEST_NAME} here; build records first with "
            f"`python -m tfrecords_builder --out {records_dir}`"
        )
    manifest = _read(path)
    _check_version(path, manifest)
    return manifest


def old_worker_manifests(records_dir):
    """The ``manifest-wNN.json`` names in ``records_dir`` (of a build over workers, before Beam), sorted."""
    names = storage.listdir(records_dir) if storage.isdir(records_dir) else []
    return sorted(name for name in names if re.fullmatch(r"manifest-w\d+\.json", name))


def _check_version(path, manifest):
    version = manifest.get("schema_version") if isinstance(manifest, dict) else None
    if version != SCHEMA_VERSION:
        raise RecordsError(
            f"{path}: records of schema version {version}, but this koalarization reads version "
            f"{SCHEMA_VERSION} (Inception sees the authors' gray input since version 2); rebuild them "
            f"with python -m tfrecords_builder --out {os.path.dirname(path) or '.'} and your sources"
        )
    splits, embedding = manifest.get("splits"), manifest.get("embedding")
    wrong = (
        "image_size" if not isinstance(manifest.get("image_size"), int)
        else "embedding" if not (isinstance(embedding, dict) and isinstance(embedding.get("dim"), int))
        else "splits" if not (isinstance(splits, dict) and all(
            isinstance(v, dict) and isinstance(v.get("examples"), int) and isinstance(v.get("shards"), list) for v in splits.values()))
        else None
    )  # fmt: skip
    if wrong:
        raise RecordsError(f"{path}: damaged records manifest (its {wrong!r} is not what the builder writes); rebuild the records with python -m tfrecords_builder")


def embedding_dim(manifest):
    return int(manifest["embedding"]["dim"])


def make_manifest(image_size, embedding, splits, skipped=(), **extra):
    """The manifest dict. ``embedding``: ``{"model", "weights", "dim", "input_size"}``;
    ``splits``: ``{"train": {"examples": N, "shards": [...]}, "val": {...}}``."""
    return {
        "schema_version": SCHEMA_VERSION,
        "image_size": int(image_size),
        "embedding": embedding,
        "splits": splits,
        "skipped": list(skipped),
        **extra,
    }


def write_shard(path, serialized_examples, before_rename=None):
    """Write one shard under a temporary name (``safeio.atomic_path``) and rename it when complete,
    so a shard that exists under its final name is always whole; on an error the temporary file is
    removed. ``before_rename(count)`` runs when the temporary file is whole, before the rename (the
    Beam builder records the shard there). Returns the number of examples written."""
    count = 0
    with safeio.atomic_path(path) as tmp:
        with safeio.tensorflow_write_errors(path):
            writer = tf.io.TFRecordWriter(tmp)
        try:
            for serialized in serialized_examples:  # making the examples (decoding, embedding) raises its own errors
                with safeio.tensorflow_write_errors(path):
                    writer.write(serialized)
                count += 1
        except BaseException:
            with contextlib.suppress(Exception):  # the first error is the one to tell
                writer.close()
            raise
        with safeio.tensorflow_write_errors(path):  # a full disk may show only when the last bytes are flushed
            writer.close()
        if before_rename is not None:
            before_rename(count)
    return count
