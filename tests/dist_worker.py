"""One training process for tests/test_distribution.py (run as a script, in a fresh process).

    python tests/dist_worker.py CONFIG_JSON OUT_NPZ [--logical-cpus N] [--check-step] [--kill-at SPEC]

Trains with ``koalarization.train.trainer.train`` as the JSON config says and saves the final weights,
whether this process was the chief and the number of replicas to ``OUT_NPZ``. ``--logical-cpus`` splits the CPU into N logical devices first (possible only before
TensorFlow has run anything, hence a fresh process). ``--check-step`` (with N >= 3) also runs one
SGD step on the train split's first 8 examples on one device and on 3 replicas (split 3/3/2),
and evaluates the 5-example val split on 1, 2 and 3 replicas (last batch 1: empty replica parts),
and saves the results (``step_*``, ``eval_losses``): they must agree. ``--kill-at`` ends the
process inside a file write (tests/killpoint.py).
"""

import argparse
import json
import os
import sys

import numpy as np

import koalarization

koalarization.quiet_tensorflow()
import keras
import tensorflow as tf

sys.path.insert(0, os.path.dirname(__file__))


def one_step(strategy, batch, dim):
    """Loss, weights before, weights after one SGD step of a freshly seeded model on ``batch``, and
    the number of examples each replica got."""
    from koalarization.train.loop import distribute, make_steps
    from koalarization.model.network import build_colorizer

    keras.utils.set_random_seed(0)
    with strategy.scope():
        model = build_colorizer(dim)
        model.compile(optimizer=keras.optimizers.SGD(0.5), loss="mse")  # SGD: the step shows the gradient's scale
        model.optimizer.build(model.trainable_variables)
    before = model.get_weights()
    train_step, _ = make_steps(model, strategy)
    dataset = distribute(strategy, tf.data.Dataset.from_tensors(batch))
    split = [int(n) for n in strategy.experimental_local_results(
        strategy.run(lambda inputs, ab: tf.shape(ab)[0], args=next(iter(dataset))))]
    loss = float(train_step(iter(dataset)))
    return loss, before, model.get_weights(), split


def evaluation(strategy, config, dim, weights):
    """The mean val loss of ``weights`` under ``strategy`` (batches of 4 over the 5 val examples)."""
    from koalarization.records.dataset import Records
    from koalarization.train.loop import distribute, evaluate, make_steps
    from koalarization.model.network import build_colorizer, compile_colorizer

    with strategy.scope():
        model = compile_colorizer(build_colorizer(dim))
        model.optimizer.build(model.trainable_variables)
    model.set_weights(weights)
    _, eval_step = make_steps(model, strategy)
    return evaluate(eval_step, distribute(strategy, Records(config.records).dataset("val", 4, shuffle=False)))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("config")
    parser.add_argument("out")
    parser.add_argument("--logical-cpus", type=int, default=0)
    parser.add_argument("--check-step", action="store_true")
    parser.add_argument("--kill-at")
    args = parser.parse_args()
    if args.logical_cpus:
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * args.logical_cpus)
    if args.kill_at:
        import killpoint

        killpoint.install(args.kill_at)

    from koalarization import records
    from koalarization.records.dataset import Records
    from koalarization.train.trainer import TrainConfig, train

    config = TrainConfig(**json.loads(args.config))
    result = train(config)
    out = {f"w{i}": np.asarray(w) for i, w in enumerate(result.model.get_weights())}
    if args.check_step:
        batch = next(iter(Records(config.records).dataset("train", 8, shuffle=False)))
        dim = Records(config.records).embedding_dim
        devices = [d.name for d in tf.config.list_logical_devices("CPU")]
        one, two, three = (tf.distribute.OneDeviceStrategy(devices[0]), tf.distribute.MirroredStrategy(devices[:2]),
                           tf.distribute.MirroredStrategy(devices[:3]))
        single_loss, initial, single, _ = one_step(one, batch, dim)
        distributed_loss, _, distributed, split = one_step(three, batch, dim)
        out["step_loss"] = np.array([single_loss, distributed_loss])
        out["step_split"] = np.array(split)
        out["step_max_difference"] = max(float(np.abs(a - b).max()) for a, b in zip(single, distributed))
        out["step_max_update"] = max(float(np.abs(a - b).max()) for a, b in zip(single, initial))
        trained = result.model.get_weights()
        out["eval_losses"] = np.array([evaluation(s, config, dim, trained) for s in (one, two, three)])
    np.savez(args.out, chief=result.is_chief, replicas=result.replicas, **out)


if __name__ == "__main__":
    main()
