"""One training process for tests/test_distribution.py (run as a script, in a fresh process).

    python tests/dist_worker.py CONFIG_JSON OUT_NPZ [--logical-cpus N] [--check-step]

Trains with ``koalarization.train.train`` as the JSON config says and saves the final weights,
whether this process was the chief and the number of replicas to ``OUT_NPZ``. ``--logical-cpus``
splits the CPU into N logical devices first (possible only before TensorFlow has run anything,
hence a fresh process). ``--check-step`` also runs one SGD step on the same batch on one device
and under the strategy and saves both results (``step_*``): they must agree.
"""

import argparse
import json

import numpy as np

import koalarization  # noqa: F401  (quiet TensorFlow start-up)
import keras
import tensorflow as tf


def one_step(strategy, batch, dim):
    """Loss, weights before and weights after one SGD step of a freshly seeded model on ``batch``."""
    from koalarization.model import build_colorizer
    from koalarization.loop import distribute, make_steps

    keras.utils.set_random_seed(0)
    with strategy.scope():
        model = build_colorizer(dim)
        model.compile(optimizer=keras.optimizers.SGD(0.5), loss="mse")  # SGD: the step shows the gradient's scale
        model.optimizer.build(model.trainable_variables)
    before = model.get_weights()
    train_step, _ = make_steps(model, strategy)
    loss = float(train_step(iter(distribute(strategy, tf.data.Dataset.from_tensors(batch)))))
    return loss, before, model.get_weights()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("config")
    parser.add_argument("out")
    parser.add_argument("--logical-cpus", type=int, default=0)
    parser.add_argument("--check-step", action="store_true")
    args = parser.parse_args()
    if args.logical_cpus:
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * args.logical_cpus)

    from koalarization import data, records
    from koalarization.loop import make_strategy
    from koalarization.train import TrainConfig, train

    config = TrainConfig(**json.loads(args.config))
    result = train(config)
    out = {f"w{i}": np.asarray(w) for i, w in enumerate(result.model.get_weights())}
    if args.check_step:
        batch = next(iter(data.load_dataset(config.records, "train", 4, shuffle=False)))
        dim = records.embedding_dim(records.read_manifest(config.records))
        single_loss, initial, single = one_step(tf.distribute.get_strategy(), batch, dim)
        strategy = make_strategy(config.distribution)
        distributed_loss, _, distributed = one_step(strategy, batch, dim)
        out["step_loss"] = np.array([single_loss, distributed_loss])
        out["step_replicas"] = strategy.num_replicas_in_sync
        out["step_max_difference"] = max(float(np.abs(a - b).max()) for a, b in zip(single, distributed))
        out["step_max_update"] = max(float(np.abs(a - b).max()) for a, b in zip(single, initial))
    np.savez(args.out, chief=result.is_chief, replicas=result.replicas, **out)


if __name__ == "__main__":
    main()
