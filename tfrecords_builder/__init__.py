"""tfrecords_builder: photos -> Deep Koalarization training records (``python -m tfrecords_builder``).

    from tfrecords_builder.config import BuildConfig
    from tfrecords_builder.builder import build
    manifest = build(BuildConfig(out="records/", images=("photos/",), inception_weights="random"))

- :mod:`tfrecords_builder.config`: the settings (light: no TensorFlow, so the command parses first);
- :mod:`tfrecords_builder.sources`: where photos come from (folders, globs, TFDS, the bundled photos);
- :mod:`tfrecords_builder.builder`: the build itself (imports TensorFlow).
"""
