"""Build Deep Koalarization training records from photos.

    python -m tfrecords_builder --out records/ --inception-weights random          # bundled photos
    python -m tfrecords_builder --out records/ --images photos/ 'more/**/*.jpg'
    python -m tfrecords_builder --out records/ --tfds tf_flowers:train --limit 1000
    python -m tfrecords_builder --out records/ --images photos/ --resume          # after Ctrl-C
    python -m tfrecords_builder --out records/ --images photos/ \
        --beam-pipeline-options "runner=DirectRunner,direct_num_workers=2,direct_running_mode=multi_processing"

Each photo becomes one example (letterboxed L/ab plus its Inception-ResNet-v2 embedding) in a
``{split}-NNNNN.tfrecord`` shard, described by ``manifest.json``. See ``--help`` for every option.
``--beam-pipeline-options`` runs the same build as an Apache Beam pipeline (:mod:`tfrecords_builder.beam`,
docs/scale-out.md): the same records, on N processes here or on Dataflow, Flink or Spark.

The command parses a :class:`tfrecords_builder.config.BuildConfig`, then runs
:func:`tfrecords_builder.builder.run`. Exit statuses: the table of :mod:`koalarization.errors` (2 a
problem with the inputs, settings or a flag; 3 an ``--out`` that cannot be a records folder; 4
another build is writing the same records; 5 damaged records to resume; 130 Ctrl-C).
"""

import sys

import koalarization
from koalarization import cli, errors
from tfrecords_builder.config import BuildConfig


@errors.command
def main(argv=None):
    config = cli.parse(BuildConfig, argv)  # --help and bad flags answer here, before TensorFlow loads
    from tfrecords_builder import builder  # quiets TensorFlow's start-up logs, then imports it

    return builder.run(config)


if __name__ == "__main__":
    koalarization.inference_only_command()  # networks only: oneDNN packs their weights once
    sys.exit(main())
