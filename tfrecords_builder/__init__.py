"""tfrecords_builder: photos -> Deep Koalarization training records (``python -m tfrecords_builder``).

    from tfrecords_builder import BuildConfig, build
    manifest = build(BuildConfig(out="records/", images=("photos/",), inception_weights="random"))
"""

import koalarization  # noqa: F401
from tfrecords_builder.builder import BuildError, build, split_of, worker_of
from tfrecords_builder.config import BuildConfig
from tfrecords_builder.sources import sample_photo_paths

__all__ = ["BuildConfig", "BuildError", "build", "sample_photo_paths", "split_of", "worker_of"]
