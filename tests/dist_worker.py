"""One training process for tests/test_distribution.py (run as a script, in a fresh process).

    python tests/dist_worker.py CONFIG_JSON WEIGHTS_NPZ [--logical-cpus N]

Trains with ``koalarization.train.train`` as the JSON config says and saves the final weights
and the number of replicas to ``WEIGHTS_NPZ``. ``--logical-cpus`` splits the CPU into N logical
devices first (possible only before TensorFlow has run anything, hence a fresh process).
"""

import argparse
import json

import numpy as np

import koalarization  # noqa: F401  (quiet TensorFlow start-up)
import tensorflow as tf


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("config")
    parser.add_argument("weights")
    parser.add_argument("--logical-cpus", type=int, default=0)
    args = parser.parse_args()
    if args.logical_cpus:
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * args.logical_cpus)

    from koalarization.train import TrainConfig, train

    result = train(TrainConfig(**json.loads(args.config)))
    weights = {f"w{i}": np.asarray(w) for i, w in enumerate(result.model.get_weights())}
    np.savez(args.weights, chief=result.is_chief, replicas=result.replicas, **weights)


if __name__ == "__main__":
    main()
