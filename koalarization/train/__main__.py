"""Train the colorizer on the records written by ``python -m tfrecords_builder``.

    python -m koalarization.train --records records/ --run-dir runs/smoke --preset smoke
    python -m koalarization.train --records records/ --run-dir runs/paper    # batch 100, Adam 1e-3, MSE
    python -m koalarization.train --records records/ --run-dir runs/gpus --distribution mirrored
    TF_CONFIG='{"cluster": {"worker": ["host1:12345", "host2:12345"]}, "task": {"type": "worker", "index": 0}}' \\
        python -m koalarization.train --records records/ --run-dir runs/multi --distribution multi_worker

The command line over :mod:`koalarization.train.trainer` (the config, :func:`train` and the run dir)).
It imports no TensorFlow: ``--help``, argument errors and a busy or unusable run dir are answered
at once. Exit status: 0 done, 2 bad command line or input, 3 unusable run dir, 4 run dir in use,
130 Ctrl-C (the run resumes when the same command runs again).
"""

import argparse
import sys

from koalarization import safeio
from koalarization.train import rundir
from koalarization.train.trainer import (  
    DISTRIBUTIONS,
    EXIT_INTERRUPTED,
    PRECISIONS,
    PRESETS,
    TrainConfig,
    TrainResult,
    UserError,
    export_run,
    is_chief_task,
    train,
)


# -- command line ------------------------------------------------------------------------------
def parse_config(argv=None):
    """Command line -> :class:`TrainConfig`: the preset's values unless a flag says otherwise."""
    parser = argparse.ArgumentParser(
        prog="python -m koalarization.train",
        description="Train the Deep Koalarization colorizer on records from `python -m tfrecords_builder`. "
        "Flags left out take the preset's value, then the paper's.",
    )
    parser.add_argument("--records", required=True, help="records dir (manifest.json and shards)")
    parser.add_argument("--run-dir", required=True, help="output dir; run the same command again to resume a killed run")
    parser.add_argument("--preset", choices=sorted(PRESETS), default="paper",
                        help="paper: 100 epochs, batch 100, lr 0.001; smoke: 2 epochs of 3 steps, batch 4 (minutes on a CPU)")
    parser.add_argument("--epochs", type=int, help="number of epochs (paper: 100)")
    parser.add_argument("--steps-per-epoch", type=int, help="train steps per epoch (default: one pass over the train split)")
    parser.add_argument("--validation-steps", type=int, help="val batches per epoch (default: the whole val split)")
    parser.add_argument("--batch-size", type=int, help="global batch size, split over the replicas (paper: 100)")
    parser.add_argument("--learning-rate", type=float, help="Adam learning rate (paper: 0.001)")
    parser.add_argument("--precision", choices=PRECISIONS, help="Keras dtype policy (default float32); auto: mixed_bfloat16 where the CPU (avx512_bf16 / amx_bf16) "
                        "or GPU (compute capability >= 8.0) has bf16 natively, else float32; config.json records the one used")
    parser.add_argument("--distribution", choices=DISTRIBUTIONS,
                        help="none (default): one device; mirrored: all local GPUs; multi_worker: the cluster in TF_CONFIG")
    parser.add_argument("--seed", type=int, help="seed of weight initialisation and shuffling (default 0)")
    parser.add_argument("--sample-images", type=int, help="images in the per-epoch sample panel (default 4)")
    parser.add_argument("--shuffle-buffer", type=int,
                        help="examples shuffled in memory (default 4096, ~600 MB; with shards mixed by the builder, "
                        "a batch of 100 from a class-sorted source spans most classes)")
    parser.add_argument("--cycle-length", type=int, help="train shards read at once, round-robin (default 16)")
    parser.add_argument("--backup-every-steps", type=int,
                        help="also back up inside an epoch every N steps, so a kill loses at most N steps (default 1000; "
                        "0: at epoch ends only; may change when resuming)")
    parser.add_argument("--export", action=argparse.BooleanOptionalAction, default=None,
                        help="export RUN/saved_model/1 for TF Serving at the end (default: yes, for records "
                        "with Inception embeddings); --no-export skips it")
    parser.add_argument("--verbose", action="store_true", help="show TensorFlow's start-up logs")
    args = vars(parser.parse_args(argv))
    preset = args.pop("preset")
    return TrainConfig.with_preset(preset, **{k: v for k, v in args.items() if v is not None})


def interrupted_line(run_dir):
    """What Ctrl-C leaves, in one line."""
    kept, step = rundir.backup_position(run_dir) if run_dir else (0, 0)
    if kept or step:
        where = f"step {step} of epoch {kept + 1}" if step else f"epoch {kept}"
        return (f"interrupted: {run_dir} keeps the backup after {where} (and checkpoints/best.keras); "
                "run the same command again to resume")
    return f"interrupted before the first backup was saved: run the same command again to start {run_dir or 'the run'} over"


def main(argv=None):
    config = None
    try:
        config = parse_config(argv)
        result = train(config)
    except KeyboardInterrupt:
        print(f"\n{interrupted_line(config.run_dir if config else None)}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (UserError, safeio.SafeIOError, FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return safeio.exit_status(error)
    except OSError as error:  # a full disk, say, while saving: the last backup is whole (written atomically)
        where = error.filename or (config.run_dir if config else "the run dir")
        print(f"error: {safeio.describe_os_error(where, error)}; {safeio.what_to_do(error)} and run the same command again to resume", file=sys.stderr)
        return safeio.EXIT_OUTPUT
    if result.is_chief:
        print(f"Run dir: {result.run_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
