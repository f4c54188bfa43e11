"""Train the colorizer on the records written by ``python -m tfrecords_builder``.

    python -m koalarization.train --records records/ --run-dir runs/smoke --preset smoke
    python -m koalarization.train --records records/ --run-dir runs/paper    # batch 100, Adam 1e-3, MSE
    python -m koalarization.train --records records/ --run-dir runs/gpus --distribution mirrored
    TF_CONFIG='{"cluster": {"worker": ["host1:12345", "host2:12345"]}, "task": {"type": "worker", "index": 0}}' \\
        python -m koalarization.train --records records/ --run-dir runs/multi --distribution multi_worker

The command line: parses a :class:`koalarization.train.config.TrainConfig` (a flag left out takes
the ``--preset``'s value), then runs :func:`koalarization.train.trainer.run`. It imports no
TensorFlow: ``--help``, argument errors and a busy or unusable run dir are answered at once. Exit
statuses: the table of :mod:`koalarization.errors` (Ctrl-C: 130, and the run resumes when the same
command runs again).
"""

import sys

from koalarization.train.trainer import main  # parse a TrainConfig (over its --preset), then trainer.run

if __name__ == "__main__":
    sys.exit(main())
