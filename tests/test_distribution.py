"""Distributed training for real: MirroredStrategy over two logical CPU devices, and two
MultiWorkerMirroredStrategy workers on 127.0.0.1 configured by TF_CONFIG. Each training process
is fresh (tests/dist_worker.py): logical devices and collectives must be set before TF runs."""

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest
from conftest import write_synthetic_records

WORKER = os.path.join(os.path.dirname(__file__), "dist_worker.py")


@pytest.fixture(scope="module")
def records_uneven(tmp_path_factory):
    """8 train + 5 val: the last val batch does not split evenly over two replicas."""
    out = str(tmp_path_factory.mktemp("records_uneven"))
    write_synthetic_records(out, n_train=8, n_val=5, image_size=32, seed=2)
    return out


def free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def config_json(records_dir, run_dir, distribution):
    return json.dumps({"records": records_dir, "run_dir": run_dir, "epochs": 2, "steps_per_epoch": 2,
                       "batch_size": 4, "distribution": distribution})


def read_history(run_dir):
    with open(os.path.join(run_dir, "history.csv")) as f:
        rows = [line.strip().split(",") for line in f]
    return [dict(zip(rows[0], row)) for row in rows[1:]]


def test_mirrored_over_two_logical_cpus_matches_one_device(records_uneven, tmp_path):
    run_dir, out = str(tmp_path / "run"), str(tmp_path / "out.npz")
    done = subprocess.run(
        [sys.executable, WORKER, config_json(records_uneven, run_dir, "mirrored"), out, "--logical-cpus", "2", "--check-step"],
        capture_output=True, text=True, timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = np.load(out)
    assert int(result["replicas"]) == 2 and int(result["step_replicas"]) == 2
    # One SGD step on the same batch: two replicas each seeing half of it == one device seeing all.
    single_loss, distributed_loss = result["step_loss"]
    assert distributed_loss == pytest.approx(single_loss, rel=1e-5)
    assert float(result["step_max_update"]) > 1e-3  # the step really moved the weights...
    assert float(result["step_max_difference"]) < 1e-3 * float(result["step_max_update"])  # ...the same way
    history = read_history(run_dir)
    assert [row["epoch"] for row in history] == ["0", "1"]
    assert all(np.isfinite(float(row["val_loss"])) for row in history)
    assert os.path.exists(os.path.join(run_dir, "model.keras"))


def test_two_workers_on_localhost_reach_the_same_weights(records_uneven, tmp_path):
    run_dir = str(tmp_path / "run")
    cluster = {"worker": [f"127.0.0.1:{port}" for port in free_ports(2)]}
    procs = []
    for index in range(2):
        env = {**os.environ, "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})}
        out = str(tmp_path / f"worker{index}.npz")
        procs.append(subprocess.Popen(
            [sys.executable, WORKER, config_json(records_uneven, run_dir, "multi_worker"), out],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        ))
    try:
        outputs = [proc.communicate(timeout=900) for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    for proc, (_, err) in zip(procs, outputs):
        assert proc.returncode == 0, err[-3000:]

    chief, worker = (np.load(str(tmp_path / f"worker{i}.npz")) for i in range(2))
    assert bool(chief["chief"]) and not bool(worker["chief"])
    assert int(chief["replicas"]) == 2 == int(worker["replicas"])
    names = sorted(k for k in chief.files if k.startswith("w"))
    assert names == sorted(k for k in worker.files if k.startswith("w"))
    for name in names:
        np.testing.assert_allclose(chief[name], worker[name], rtol=1e-6, atol=1e-7, err_msg=name)

    # Only the chief wrote the run dir, with validation computed across both workers.
    history = read_history(run_dir)
    assert [row["epoch"] for row in history] == ["0", "1"]
    assert all(np.isfinite(float(row["val_loss"])) for row in history)
    assert os.path.exists(os.path.join(run_dir, "model.keras"))
    assert outputs[0][0].count("Saved the final model") == 1 and "Saved the final model" not in outputs[1][0]
