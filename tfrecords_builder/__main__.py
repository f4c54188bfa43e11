"""Build Deep Koalarization training records from photos.

    python -m tfrecords_builder --out records/ --inception-weights random          # bundled photos
    python -m tfrecords_builder --out records/ --images photos/ 'more/**/*.jpg'
    python -m tfrecords_builder --out records/ --tfds tf_flowers:train --limit 1000
    python -m tfrecords_builder --out records/ --images photos/ --resume          # after Ctrl-C

Each photo becomes one example (letterboxed L/ab plus its Inception-ResNet-v2 embedding) in a
``{split}-NNNNN.tfrecord`` shard, described by ``manifest.json``. See ``--help`` for every option.
"""

import sys

import koalarization  # noqa: F401
from koalarization.embedding import WeightsUnavailableError
from tfrecords_builder.builder import BuildError, build
from tfrecords_builder.config import config_from_args


def main(argv=None):
    config = config_from_args(argv)
    try:
        build(config)
    except (BuildError, WeightsUnavailableError) as error:
        print(f"error: {' '.join(str(error).split())}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(
            f"\ninterrupted: finished shards in {config.out} are kept; run the same command with --resume to finish",
            file=sys.stderr,
        )
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
