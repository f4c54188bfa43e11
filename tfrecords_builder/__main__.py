"""Build Deep Koalarization training records from photos.

    python -m tfrecords_builder --out records/ --inception-weights random          # bundled photos
    python -m tfrecords_builder --out records/ --images photos/ 'more/**/*.jpg'
    python -m tfrecords_builder --out records/ --tfds tf_flowers:train --limit 1000
    python -m tfrecords_builder --out records/ --images photos/ --resume          # after Ctrl-C

Each photo becomes one example (letterboxed L/ab plus its Inception-ResNet-v2 embedding) in a
``{split}-NNNNN.tfrecord`` shard, described by ``manifest.json``. See ``--help`` for every option.

Exit status: 0 done; 1 a problem with the inputs or settings (one line); 2 a bad flag; 3 an
``--out`` that cannot be a records folder; 4 another build is writing the same records; 130 Ctrl-C.
"""

import sys

import koalarization
from koalarization import safeio
from tfrecords_builder.config import config_from_args


def _fail(error, status=1):
    print(f"error: {' '.join(str(error).split())}", file=sys.stderr)
    return status


def main(argv=None):
    config = config_from_args(argv)  # --help and bad flags answer here, before TensorFlow loads
    try:
        safeio.check_output_dir(config.out, inputs=config.images, what="records folder (--out)")
    except safeio.OutputPathError as error:
        return _fail(error, safeio.EXIT_OUTPUT)

    from koalarization.model.inception import WeightsUnavailableError  # quiets TensorFlow's start-up logs, then imports it
    from tfrecords_builder.builder import BuildError, build

    import tensorflow as tf  # noqa: E402

    try:
        build(config)
    except safeio.SafeIOError as error:
        return _fail(error, safeio.exit_status(error, default=1))
    except (BuildError, WeightsUnavailableError) as error:
        return _fail(error)
    except OSError as error:  # a full disk, say (the shard writer's errors are OSErrors: records.write_shard)
        reason = safeio.describe_os_error(error.filename or config.out, error)
        return _fail(f"{reason}; the finished shards are kept: {safeio.what_to_do(error)} and run the same command with --resume", safeio.EXIT_OUTPUT)
    except tf.errors.ResourceExhaustedError as error:  # out of memory while embedding a batch
        first = (error.message or "").strip().splitlines()[:1]
        return _fail(
            f"out of memory while embedding a batch of {config.batch_size} ({first[0] if first else 'ResourceExhaustedError'}); "
            "the finished shards are kept: run the same command with a smaller --batch-size and --resume"
        )
    except KeyboardInterrupt:
        print(
            f"\ninterrupted: finished shards in {config.out} are kept; run the same command with --resume to finish",
            file=sys.stderr,
        )
        return safeio.EXIT_INTERRUPTED
    return 0


if __name__ == "__main__":
    koalarization.inference_only_command()  # networks only: oneDNN packs their weights once
    sys.exit(main())
