"""tfrecords_builder: photos -> Deep Koalarization training records (``python -m tfrecords_builder``).

    from tfrecords_builder import BuildConfig, build
    manifest = build(BuildConfig(out="records/", images=("photos/",), inception_weights="random"))

The builder (and TensorFlow) is imported on first use of ``build`` and friends, so that the
command line parses its arguments first.
"""

from tfrecords_builder.config import BuildConfig

_LAZY = {
    "BuildError": "tfrecords_builder.builder",
    "build": "tfrecords_builder.builder",
    "split_of": "tfrecords_builder.builder",
    "worker_of": "tfrecords_builder.builder",
    "sample_photo_paths": "tfrecords_builder.sources",
}

__all__ = ["BuildConfig", *_LAZY]


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'tfrecords_builder' has no attribute {name!r}")
