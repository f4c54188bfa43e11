"""Where photos come from: files and folders, a tensorflow-datasets dataset, or the bundled samples.

Every source is a list of stable, unique ``keys`` plus ``payloads(positions)``, an iterator of
``(position, payload)`` for the chosen positions in the order given (ascending for TFDS); the
payload is a file path (str) or the encoded image bytes, decoded later by
``koalarization.images.read_image``.

Files: a photo's key is its path relative to the folder (or glob prefix) it was found under (see
``koalarization.discovery``); each real file is read once, and byte-identical files are one
photo: the one whose key comes first in :func:`order_of` order is kept, the others are reported
as duplicates. ``--limit N`` takes the first N distinct photos in :func:`order_of` order: a
uniform sample of the whole tree (not its first folders), the same on every run and machine.
TFDS stores its examples already shuffled by a hash of their keys, so its first N are a uniform
sample and its order is kept.
"""

import collections
import concurrent.futures
import dataclasses
import hashlib
import os
from typing import Callable

import numpy as np

from koalarization import discovery, errors, safeio, storage
from tfrecords_builder.plan import order_of  # noqa: F401  (the order that mixes a source)

# The colour photographs bundled with scikit-image (grayscale ones such as camera, moon and page
# are left out) and matplotlib.
SKIMAGE_PHOTOS = (
    "astronaut.png",
    "chelsea.png",
    "coffee.png",
    "rocket.jpg",
    "motorcycle_left.png",
    "motorcycle_right.png",
    "hubble_deep_field.jpg",
    "retina.jpg",
)
MATPLOTLIB_PHOTOS = ("grace_hopper.jpg",)


class SourceError(errors.UsageError):
    """A source that cannot be used; the message says which and why, in one line."""


@dataclasses.dataclass
class Source:
    description: str
    keys: list
    _payloads: Callable  # positions (np.int64 array) -> iterator of (position, path str or bytes)
    shuffled: bool = False  # True: the source's own order is already a uniform mix (TFDS)
    duplicates: list = dataclasses.field(default_factory=list)  # {"path", "same_as", "reason"}
    problems: list = dataclasses.field(default_factory=list)  # {"path", "reason"}: not searched
    paths: list = None  # a file source's paths, by position (what a Beam task carries)
    tfds: tuple = None  # a TFDS source's (name, split, data_dir, feature): a Beam worker reads its slices (TfdsReader)

    def payloads(self, positions):
        return self._payloads(np.asarray(positions, dtype=np.int64))


def _is_utf8(text):
    try:
        text.encode("utf-8")
        return True
    except UnicodeEncodeError:  # a file name's undecodable bytes (surrogate escapes)
        return False


HEAD_BYTES = 4096  # files of one size are told apart by their first 4 KB before being read whole
HASH_THREADS = 8  # file reads overlap: on network or spinning storage, latency, not bandwidth, is the cost


def _digest(path, limit=None):
    """SHA-256 of the file (or of its first ``limit`` bytes); None when it cannot be read."""
    digest = hashlib.sha256()
    try:
        with storage.open(path, "rb") as f:  # a URL's too (koalarization.storage)
            if limit is not None:
                digest.update(f.read(limit))
            else:
                for block in iter(lambda: f.read(1 << 20), b""):
                    digest.update(block)
    except OSError:
        return None  # unreadable: never a duplicate; the build reports it
    return digest.digest()


def select_distinct(keys, sizes, paths, limit=None):
    """Positions of the first ``limit`` (all if None) byte-distinct files in :func:`order_of`
    order, ascending, and the duplicates left out as ``(position, position kept)``.

    Only files whose size equals another candidate's are read, first their first 4 KB (in a few
    threads), and whole only when those match too: most photos are never read here.
    """
    ranked = sorted(range(len(keys)), key=lambda i: order_of(keys[i]))
    # candidates: all, or (with a limit) the first ones in order plus room for some duplicates
    window = ranked if limit is None else ranked[: limit + limit // 10 + 16]
    count = collections.Counter(sizes[i] for i in window)
    needs_head = [i for i in window if count[sizes[i]] > 1]
    with concurrent.futures.ThreadPoolExecutor(HASH_THREADS) as pool:
        heads = dict(zip(needs_head, pool.map(lambda i: _digest(paths[i], HEAD_BYTES), needs_head)))
    fulls = {}

    def head_of(i):
        if i not in heads:
            heads[i] = _digest(paths[i], HEAD_BYTES)
        return heads[i]

    def full_of(i):
        if i not in fulls:
            fulls[i] = _digest(paths[i]) if sizes[i] > HEAD_BYTES else head_of(i)
        return fulls[i]

    chosen, duplicates = [], []
    by_size = {}  # size -> positions chosen with that size
    for i in ranked:
        if limit is not None and len(chosen) >= limit:
            break
        same_size = by_size.setdefault(sizes[i], [])
        twin = None
        if same_size and head_of(i) is not None:
            twin = next((j for j in same_size if head_of(j) == head_of(i) and full_of(j) == full_of(i)), None)
        if twin is not None:
            duplicates.append((i, twin))
            continue
        same_size.append(i)
        chosen.append(i)
    return sorted(chosen), duplicates


def sample_photo_paths():
    """Paths of the bundled colour photos that are on disk (skimage may fetch some lazily; only
    those already present are used, so this works offline)."""
    import matplotlib
    import skimage.data

    skimage_dir = os.path.dirname(skimage.data.__file__)
    matplotlib_dir = os.path.join(matplotlib.get_data_path(), "sample_data")
    candidates = [os.path.join(skimage_dir, n) for n in SKIMAGE_PHOTOS]
    candidates += [os.path.join(matplotlib_dir, n) for n in MATPLOTLIB_PHOTOS]
    return [p for p in candidates if os.path.isfile(p) and os.path.getsize(p) > 0]


def _sample_key(path):
    """``skimage/data/astronaut.png``: the path below site-packages, the same on every machine."""
    parts = os.path.normpath(path).split(os.sep)
    for package in ("skimage", "matplotlib"):
        if package in parts:
            return "/".join(parts[len(parts) - parts[::-1].index(package) - 1 :])
    return path


def _file_source(description, paths, keys, **extra):
    paths = list(paths)

    def payloads(positions):
        return ((int(i), paths[i]) for i in positions)

    return Source(description, list(keys), payloads, paths=paths, **extra)


def image_files(inputs, limit=None, warn=print):
    """Files, folders (recursive) and globs; keys relative to their roots; duplicates left out."""
    try:
        found = discovery.discover_images(list(inputs))
    except FileNotFoundError as error:
        raise SourceError(str(error)) from None
    storable = [_is_utf8(key) for key in found.keys]  # a key is stored as UTF-8 text
    found.problems += [
        (safeio.shown(path), "its name is not valid UTF-8, which records store names in (rename it); skipped")
        for path, ok in zip(found.paths, storable) if not ok
    ]  # fmt: skip
    found.paths, found.keys, found.sizes = ([v for v, ok in zip(column, storable) if ok] for column in (found.paths, found.keys, found.sizes))
    for path, reason in found.problems:
        warn(f"warning: {path}: {reason}")
    if not found.paths:
        raise SourceError(found.why_empty())
    chosen, twins = select_distinct(found.keys, found.sizes, found.paths, limit)
    key_of_path = dict(zip(found.paths, found.keys))
    duplicates = [{"path": found.keys[i], "same_as": found.keys[j], "reason": "identical content"} for i, j in twins]
    duplicates += [
        {"path": key, "same_as": key_of_path[kept], "reason": "same file"} for key, kept in found.same_file if kept in key_of_path
    ]
    problems = [{"path": path, "reason": reason} for path, reason in found.problems]
    return _file_source(
        f"images {' '.join(inputs)}",
        [found.paths[i] for i in chosen],
        [found.keys[i] for i in chosen],
        duplicates=duplicates,
        problems=problems,
    )


def samples(limit=None):
    paths = sample_photo_paths()
    if not paths:
        raise SourceError("no bundled sample photos found in scikit-image or matplotlib")
    keys = [_sample_key(p) for p in paths]
    chosen = sorted(sorted(range(len(keys)), key=lambda i: order_of(keys[i]))[:limit])
    return _file_source("bundled sample photos (scikit-image, matplotlib)", [paths[i] for i in chosen], [keys[i] for i in chosen])


def tfds_dataset(spec, data_dir=None, limit=None):
    """``NAME[:SPLIT]`` of tensorflow-datasets; keys ``tfds:NAME:SPLIT:INDEX`` in dataset order
    (TFDS shuffled it when it prepared the data, so ``limit`` takes its first N)."""
    from koalarization import quiet_tensorflow

    quiet_tensorflow()
    import tensorflow as tf
    import tensorflow_datasets as tfds
    from absl import logging as absl_logging

    absl_logging.set_verbosity(absl_logging.ERROR)
    name, _, split = spec.partition(":")
    split = split or "train"
    try:
        builder = tfds.builder(name, data_dir=data_dir)
    except tfds.core.registered.DatasetNotFoundError:
        raise SourceError(f"--tfds {spec}: no tensorflow-datasets dataset named {name!r}") from None
    image_features = [k for k, f in builder.info.features.items() if isinstance(f, tfds.features.Image)]
    if not image_features:
        raise SourceError(f"--tfds {spec}: {name} has no image feature (features: {list(builder.info.features)})")
    feature = "image" if "image" in image_features else image_features[0]
    if not builder.is_prepared():
        try:
            builder.download_and_prepare()
        except Exception as error:  # offline: network errors, missing optional modules, manual downloads
            reason = " ".join(f"{type(error).__name__}: {error}".split())[:300]
            raise SourceError(
                f"--tfds {spec}: {name} is not in {builder.data_dir} and cannot be downloaded ({reason}); "
                f"prepare it where there is internet (`tfds build {name}`) and pass --tfds-data-dir"
            ) from None

    def raw():
        try:
            ds = builder.as_dataset(split=split, shuffle_files=False, decoders={feature: tfds.decode.SkipDecoding()})
        except (ValueError, KeyError) as error:
            raise SourceError(f"--tfds {spec}: {error}") from None
        return ds.map(tf.autograph.experimental.do_not_convert(lambda example: example[feature]))

    images_ds = raw()
    count = int(images_ds.cardinality())
    if count < 0:  # unknown: count the (undecoded) examples once
        count = int(images_ds.reduce(np.int64(0), lambda n, _: n + 1))
    count = min(count, limit) if limit else count

    def payloads(positions):
        wanted = np.zeros(count, dtype=bool)
        wanted[positions] = True
        last = int(positions[-1]) + 1 if len(positions) else 0
        ds = raw().take(last).enumerate()
        ds = ds.filter(tf.autograph.experimental.do_not_convert(lambda i, _: tf.gather(wanted, i)))
        return ds.prefetch(tf.data.AUTOTUNE).as_numpy_iterator()  # read ahead in tf.data's threads

    keys = [f"tfds:{name}:{split}:{i}" for i in range(count)]
    return Source(f"tensorflow-datasets {name}:{split}", keys, payloads, shuffled=True, tfds=(name, split, data_dir, feature))


class TfdsReader:
    """Picklable payloads of a TFDS source for a Beam worker: the examples at ascending ``positions``,
    read from the slice ``split[first:last + 1]`` only (a shard of a shuffled source spans a short range)."""

    def __init__(self, name, split, data_dir, feature):
        self.name, self.split, self.data_dir, self.feature = name, split, data_dir, feature

    def payloads(self, positions):
        import tensorflow_datasets as tfds

        positions = [int(p) for p in positions]
        if not positions:
            return
        first, wanted = positions[0], set(positions)
        builder = tfds.builder(self.name, data_dir=self.data_dir)
        ds = builder.as_dataset(
            split=f"{self.split}[{first}:{positions[-1] + 1}]", shuffle_files=False,
            decoders={self.feature: tfds.decode.SkipDecoding()},
        )  # fmt: skip
        for index, example in enumerate(ds.as_numpy_iterator(), first):
            if index in wanted:
                yield index, example[self.feature]


def make_source(config, warn=print):
    """The :class:`Source` that ``config`` asks for."""
    if config.source_kind == "images":
        return image_files(config.images, config.limit, warn)
    if config.source_kind == "tfds":
        return tfds_dataset(config.tfds, config.tfds_data_dir, config.limit)
    return samples(config.limit)
