"""Where photos come from: files and folders, a tensorflow-datasets dataset, or the bundled samples.

Every source is an ordered list of stable ``keys`` plus ``payloads(positions)``, an iterator of
``(position, payload)`` for the chosen positions in ascending order; the payload is a file path
(str) or the encoded image bytes, decoded later by ``koalarization.images.read_image``.
"""

import dataclasses
import os
from typing import Callable

import numpy as np
from koalarization import quiet_tensorflow  # noqa: E402

quiet_tensorflow()
import tensorflow as tf

from koalarization import images

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


class SourceError(RuntimeError):
    """A source that cannot be used; the message says which and why, in one line."""


@dataclasses.dataclass
class Source:
    description: str
    keys: list
    _payloads: Callable  # positions (sorted np.int64 array) -> iterator of (position, path str or bytes)

    def payloads(self, positions):
        return self._payloads(np.asarray(positions, dtype=np.int64))


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


def _file_source(description, paths, keys):
    paths = list(paths)

    def payloads(positions):
        return ((int(i), paths[i]) for i in positions)

    return Source(description, list(keys), payloads)


def image_files(inputs, limit=None):
    """Files, folders (recursive) and globs, sorted; the key of each photo is its path."""
    try:
        paths = images.find_images(list(inputs))
    except FileNotFoundError as error:
        raise SourceError(str(error)) from None
    if not paths:
        raise SourceError(f"{' '.join(inputs)}: no image files found (looked for {', '.join(images.IMAGE_EXTENSIONS)})")
    paths = paths[:limit]
    return _file_source(f"images {' '.join(inputs)}", paths, paths)


def samples(limit=None):
    paths = sample_photo_paths()[:limit]
    if not paths:
        raise SourceError("no bundled sample photos found in scikit-image or matplotlib")
    return _file_source("bundled sample photos (scikit-image, matplotlib)", paths, [_sample_key(p) for p in paths])


def tfds_dataset(spec, data_dir=None, limit=None):
    """``NAME[:SPLIT]`` of tensorflow-datasets; keys ``tfds:NAME:SPLIT:INDEX`` in dataset order."""
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
    return Source(f"tensorflow-datasets {name}:{split}", keys, payloads)


def make_source(config):
    """The :class:`Source` that ``config`` asks for."""
    if config.source_kind == "images":
        return image_files(config.images, config.limit)
    if config.source_kind == "tfds":
        return tfds_dataset(config.tfds, config.tfds_data_dir, config.limit)
    return samples(config.limit)
