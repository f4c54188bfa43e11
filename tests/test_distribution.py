"""Distributed training for real: MirroredStrategy over three logical CPU devices, and
MultiWorkerMirroredStrategy clusters of two processes on 127.0.0.1 configured by TF_CONFIG
(worker + worker, and chief + worker killed and resumed). Each training process is fresh
(tests/dist_worker.py): logical devices and collectives must be set before TF runs."""

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest
from conftest import write_synthetic_records

WORKER = os.path.join(os.path.dirname(__file__), "dist_worker.py")
KILLED = 9  # tests/killpoint.py


@pytest.fixture(scope="module")
def records_uneven(tmp_path_factory):
    """8 train + 5 val in 2 shards per split: the last val batch does not split over the replicas."""
    out = str(tmp_path_factory.mktemp("records_uneven"))
    write_synthetic_records(out, n_train=8, n_val=5, image_size=32, seed=2)
    return out


@pytest.fixture(scope="module")
def records_one_shard(tmp_path_factory):
    """8 train + 5 val in ONE shard per split: fewer shards than workers."""
    out = str(tmp_path_factory.mktemp("records_one_shard"))
    write_synthetic_records(out, n_train=8, n_val=5, image_size=32, seed=5, shards=1)
    return out


def free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def config_json(records_dir, run_dir, distribution, epochs=2, **more):
    return json.dumps({"records": records_dir, "run_dir": run_dir, "epochs": epochs, "steps_per_epoch": 2,
                       "batch_size": 4, "distribution": distribution, "sample_images": 2, **more})


def read_history(run_dir):
    with open(os.path.join(run_dir, "history.csv")) as f:
        rows = [line.strip().split(",") for line in f]
    return [dict(zip(rows[0], row)) for row in rows[1:]]


def run_cluster(roles, config, outs, kill_chief_at=None):  # config: JSON, or a list of one per task
    """Start one dist_worker per ``roles`` entry ("chief" / "worker") as a cluster on free local
    ports and wait for all. A port taken between choosing it and binding it (another test run on
    the machine) is retried with new ports. When the chief was killed on purpose, the others are
    stopped (they would wait for it). Returns ``[(returncode, stdout, stderr)]``."""
    for _ in range(3):
        ports = iter(free_ports(len(roles)))
        cluster = {}
        for role in roles:
            cluster.setdefault(role, []).append(f"127.0.0.1:{next(ports)}")
        procs, index = [], {}
        for i, (role, out) in enumerate(zip(roles, outs)):
            task = {"type": role, "index": index.setdefault(role, 0)}
            index[role] += 1
            env = {**os.environ, "TF_CONFIG": json.dumps({"cluster": cluster, "task": task})}
            kill = ["--kill-at", kill_chief_at] if kill_chief_at and not procs else []
            task_config = config[i] if isinstance(config, list) else config  # one per task, or the same for all
            procs.append(subprocess.Popen([sys.executable, WORKER, task_config, out, *kill], env=env,
                                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
        try:
            results = [None] * len(procs)
            results[0] = procs[0].communicate(timeout=600)
            if kill_chief_at and procs[0].returncode == KILLED:
                for proc in procs[1:]:
                    proc.kill()
            for i, proc in enumerate(procs[1:], start=1):
                results[i] = proc.communicate(timeout=600)
        finally:
            for proc in procs:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
        done = [(proc.returncode, out, err) for proc, (out, err) in zip(procs, results)]
        if not any("Address already in use" in err or "Failed to start server" in err for _, _, err in done):
            return done
    return done


def test_mirrored_over_three_logical_cpus_matches_one_device(records_uneven, tmp_path):
    run_dir, out = str(tmp_path / "run"), str(tmp_path / "out.npz")
    done = subprocess.run(
        [sys.executable, WORKER, config_json(records_uneven, run_dir, "mirrored"), out, "--logical-cpus", "3", "--check-step"],
        capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = np.load(out)
    assert int(result["replicas"]) == 3
    # One SGD step on a batch of 8 split 3/3/2 over three replicas == one device seeing all 8.
    assert list(result["step_split"]) == [3, 3, 2]
    single_loss, distributed_loss = result["step_loss"]
    assert distributed_loss == pytest.approx(single_loss, rel=1e-5)
    assert float(result["step_max_update"]) > 1e-3  # the step really moved the weights...
    assert float(result["step_max_difference"]) < 1e-4 * float(result["step_max_update"])  # ...the same way
    # Evaluation over 5 examples in batches of 4 (last batch 1: empty replica parts) on 1, 2, 3 replicas.
    one, two, three = result["eval_losses"]
    assert two == pytest.approx(one, rel=1e-5) and three == pytest.approx(one, rel=1e-5)
    history = read_history(run_dir)
    assert [row["epoch"] for row in history] == ["0", "1"]
    assert all(np.isfinite(float(row["val_loss"])) for row in history)
    assert os.path.exists(os.path.join(run_dir, "model.keras"))


def test_two_workers_on_localhost_reach_the_same_weights(records_uneven, tmp_path):
    run_dir = str(tmp_path / "run")
    outs = [str(tmp_path / f"worker{i}.npz") for i in range(2)]
    done = run_cluster(["worker", "worker"], config_json(records_uneven, run_dir, "multi_worker"), outs)
    for code, _, err in done:
        assert code == 0, err[-3000:]

    chief, worker = (np.load(out) for out in outs)
    assert bool(chief["chief"]) and not bool(worker["chief"])
    assert int(chief["replicas"]) == 2 == int(worker["replicas"])
    names = sorted(k for k in chief.files if k.startswith("w"))
    assert names == sorted(k for k in worker.files if k.startswith("w"))
    for name in names:
        np.testing.assert_allclose(chief[name], worker[name], rtol=1e-6, atol=1e-7, err_msg=name)

    # 2 shards for 2 workers: each reads its own; only the chief wrote the run dir, with
    # validation computed across both workers.
    assert "FILE auto-shard" in done[0][1], done[0][1][-2000:]
    history = read_history(run_dir)
    assert [row["epoch"] for row in history] == ["0", "1"]
    assert all(np.isfinite(float(row["val_loss"])) for row in history)
    assert os.path.exists(os.path.join(run_dir, "model.keras"))
    assert done[0][1].count("Saved the final model") == 1 and "Saved the final model" not in done[1][1]


def test_chief_and_worker_killed_then_resumed_match_one_device(records_one_shard, tmp_path):
    from koalarization.train.trainer import TrainConfig, train

    outs = [str(tmp_path / f"task{i}.npz") for i in range(2)]
    run_dir = str(tmp_path / "run")
    config = config_json(records_one_shard, run_dir, "multi_worker", epochs=3, backup_every_steps=1)
    # A backup after each epoch's first step and at its end: the chief is killed inside the backup of
    # epoch 1's end, so both tasks go on from the one after its step 1 (the step's batch read again,
    # not trained on); the worker is stopped with it.
    killed = run_cluster(["chief", "worker"], config, outs, kill_chief_at="state.weights.h5.next:2:during")
    assert killed[0][0] == KILLED, killed[0][2][-3000:]
    assert "DATA auto-shard" in killed[0][1]  # 1 shard for 2 workers: every worker reads it, keeps its part

    done = run_cluster(["chief", "worker"], config, outs)  # the same commands again
    for code, _, err in done:
        assert code == 0, err[-3000:]
    assert "Resuming from the backup after step 1 of epoch 1." in done[0][1]
    assert [row["epoch"] for row in read_history(run_dir)] == ["0", "1", "2"]
    chief, worker = (np.load(out) for out in outs)
    assert bool(chief["chief"]) and not bool(worker["chief"])

    # The same training on one device, never stopped: global batches and global-mean loss make it equal.
    fields = {**json.loads(config), "run_dir": str(tmp_path / "single"), "distribution": "none"}
    single = train(TrainConfig(**fields), log=lambda *a, **k: None).model.get_weights()
    for i, want in enumerate(single):
        np.testing.assert_allclose(chief[f"w{i}"], want, rtol=1e-4, atol=1e-6, err_msg=f"w{i}")
        np.testing.assert_allclose(worker[f"w{i}"], want, rtol=1e-4, atol=1e-6, err_msg=f"w{i}")


def test_workers_read_their_own_files_only_when_the_files_split_evenly():
    """10 shards over 4 workers would give 3/3/2/2: the workers with 2 would repeat theirs more often."""
    import types

    from koalarization.train import loop

    def cluster(workers):
        spec = types.SimpleNamespace(as_dict=lambda: {"worker": [f"host:{i}" for i in range(workers)]})
        return types.SimpleNamespace(cluster_resolver=types.SimpleNamespace(task_type="worker", cluster_spec=lambda: spec))

    assert "FILE auto-shard" in loop.shard_policy_line(cluster(4), 12)
    assert "DATA auto-shard" in loop.shard_policy_line(cluster(4), 10)
    assert "DATA auto-shard" in loop.shard_policy_line(cluster(2), 1)


def test_a_worker_that_cannot_see_the_backup_stops_the_cluster_with_one_line(records_one_shard, tmp_path):
    """A worker whose --run-dir is not the chief's (a local path, not shared storage) would start from
    scratch while the chief resumes: every task stops instead, saying why."""
    outs = [str(tmp_path / f"task{i}.npz") for i in range(2)]
    shared = config_json(records_one_shard, str(tmp_path / "run"), "multi_worker", epochs=3)
    killed = run_cluster(["chief", "worker"], shared, outs, kill_chief_at="state.weights.h5.next:2:during")
    assert killed[0][0] == KILLED, killed[0][2][-3000:]
    local = config_json(records_one_shard, str(tmp_path / "worker-local-run"), "multi_worker", epochs=3)
    done = run_cluster(["chief", "worker"], [shared, local], outs)
    for code, _, err in done:
        assert code != 0 and "the workers would resume from different epochs" in err, err[-3000:]
    assert "this one from epoch 1" in done[0][2] and "this one from epoch 0" in done[1][2]


def test_two_workers_reading_their_own_files_killed_inside_an_epoch_resume_as_never_stopped(tmp_path):
    """FILE auto-shard (2 shards, 2 workers), epochs shorter than the split (4 steps of 4 of 32
    examples: each shard read from a seeded start). Killed inside an epoch, the same commands go on
    from the backup after step 3: each worker's own batches last 2 steps (TF's rebatch halves them),
    so one of them is skipped unparsed and half of the next taken from the iterator, and the weights
    end as a run never stopped."""
    records_dir = str(tmp_path / "records")
    write_synthetic_records(records_dir, n_train=32, n_val=4, image_size=32, seed=6)
    outs = [str(tmp_path / f"task{i}.npz") for i in range(2)]

    def config(name):
        return config_json(records_dir, str(tmp_path / name), "multi_worker", steps_per_epoch=4, backup_every_steps=1)

    done = run_cluster(["chief", "worker"], config("never-stopped"), outs)
    for code, _, err in done:
        assert code == 0, err[-3000:]
    assert "FILE auto-shard" in done[0][1], done[0][1][-2000:]
    chief, worker = (np.load(out) for out in outs)
    names = [k for k in chief.files if k.startswith("w")]
    for name in names:
        np.testing.assert_allclose(chief[name], worker[name], rtol=1e-6, atol=1e-7, err_msg=name)
    want = {name: chief[name] for name in names}

    killed = run_cluster(["chief", "worker"], config("killed"), outs, kill_chief_at=KILL_AT_STEP_3)
    assert killed[0][0] == KILLED, killed[0][2][-3000:]
    done = run_cluster(["chief", "worker"], config("killed"), outs)
    for code, _, err in done:
        assert code == 0, err[-3000:]
    assert "Resuming from the backup after step 3 of epoch 1." in done[0][1], done[0][1][-2000:]
    # steps 1-2 are one batch of each worker's own, skipped before parsing; step 3 half of the next
    assert "first 3 steps: 1 of its input batches skipped unparsed, then 1 step read and dropped" in done[0][1], done[0][1][-2000:]
    chief, worker = (np.load(out) for out in outs)
    for name in names:
        np.testing.assert_allclose(chief[name], want[name], rtol=1e-5, atol=1e-6, err_msg=name)
        np.testing.assert_allclose(worker[name], want[name], rtol=1e-5, atol=1e-6, err_msg=name)


KILL_AT_STEP_3 = "state.weights.h5.next:4:during"  # epoch 1 step 3's backup: the 4th write of the file


# Two logical CPUs, mixed_float16: replica 1's half of the batch has targets far enough off to
# overflow float16 at the first loss scales, replica 0's does not.
OVERFLOW_ON_ONE_REPLICA = r"""
import json
import numpy as np, tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import keras
from koalarization.train import loop
from koalarization.model.network import build_colorizer, compile_colorizer
keras.mixed_precision.set_global_policy("mixed_float16")
strategy = loop.make_strategy("mirrored")
keras.utils.set_random_seed(0)
with strategy.scope():
    model = build_colorizer(8)
    compile_colorizer(model)
    model.optimizer.build(model.trainable_variables)  # as loop.fit does
rng = np.random.default_rng(0)
inputs = {"l": rng.uniform(-1, 1, (4, 16, 16, 1)).astype("f4"), "embedding": rng.uniform(-1, 1, (4, 8)).astype("f4")}
ab = rng.uniform(-0.1, 0.1, (4, 16, 16, 2)).astype("f4")
ab[2:] = 300.0  # replica 1's examples
batches = iter(strategy.experimental_distribute_dataset(tf.data.Dataset.from_tensors((inputs, ab)).repeat()))
train_step, _ = loop.make_steps(model, strategy)
steps = []
for _ in range(12):  # the scale comes down to 256 in 7 steps, then both replicas step together
    loss = float(train_step(batches))
    kernel = model.get_layer("encoder_conv1").kernel.value  # a MirroredVariable: one copy per replica
    copies = [v.numpy() for v in kernel.values]
    steps.append({"copies": len(copies), "equal": all(np.array_equal(copies[0], c) for c in copies),
                  "finite": bool(np.isfinite(copies[0]).all() and np.isfinite(loss)),
                  "taken": int(model.optimizer.iterations.numpy())})
print(json.dumps(steps))
"""


def test_float16_overflow_on_one_replica_is_skipped_by_every_replica():
    done = subprocess.run([sys.executable, "-c", OVERFLOW_ON_ONE_REPLICA], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    steps = json.loads(done.stdout.strip().splitlines()[-1])
    assert steps[0]["copies"] == 2
    assert steps[0]["taken"] == 0  # the first step overflowed on replica 1: skipped, on both
    diverged = [i for i, step in enumerate(steps) if not (step["equal"] and step["finite"])]
    assert diverged == [], f"the replicas' weights differ or are not finite after steps {diverged}"
    assert steps[-1]["taken"] > 0  # once the scale came down, both took steps together
