"""Sweeps of the ET on a Ray cluster with token authentication, as users start one.

The cluster is started with the real ``ray start --head`` / ``ray start --address`` CLI and
Ray's defaults (token authentication on), inside the loopback-only network namespace; the
sweeps run through ``sweeps/et_homo_lumo.py``. A worker node's raylet is killed in the middle
of a sweep, and a driver is killed and its sweep resumed with ``--resume``: both finish and
export a best checkpoint that ``molgnn.load`` opens.

The trials are tiny (the 30-molecule QM9 fixture, a one-layer ET, one batch per epoch), so an
epoch takes a fraction of a second; they run many epochs so that a kill lands mid-trial.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from ray_helpers import AUTH_TOKEN, LOOPBACK, Cluster, ray_env

import molgnn
from molgnn.data import QM9
from molgnn.tune import BEST_CHECKPOINT, ClusterConnectionError
from molgnn.tune import cluster as cluster_mod

REPO_ROOT = Path(__file__).resolve().parents[2]
FIXTURE = REPO_ROOT / "tests" / "fixtures" / "qm9pack"
SCRIPT = REPO_ROOT / "sweeps" / "et_homo_lumo.py"


@pytest.fixture(scope="module")
def cluster():
    """A one-CPU head node, started with ``ray start --head`` and its defaults."""
    cluster = Cluster()
    try:
        cluster.start_head(num_cpus=1)
        yield cluster
    finally:
        cluster.stop()


def _driver_env(tmp_path: Path, **extra: str | None) -> dict[str, str]:
    """A sweep driver's environment: its own empty HOME and only the auth settings given."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    return ray_env(
        HOME=str(home),
        RAY_AUTH_TOKEN_PATH=None,
        MOLGNN_QM9PACK_DIR=str(FIXTURE),
        MOLGNN_DATA=str(tmp_path / "data"),
        # Tiny epochs checkpoint often; Tune would warn about it every few lines.
        TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S="0",
        **extra,
    )


def _sweep(tmp_path: Path, name: str, *args: str) -> list[str]:
    return [sys.executable, str(SCRIPT), "--smoke", "--subset", "30", "--num-samples", "2",
            "--cpus-per-trial", "1", "--time-budget-s", "600", "--storage-path",
            str(tmp_path / "sweeps"), "--name", name, *args]  # fmt: skip


def _epochs(n: int) -> list[str]:
    return ["--epochs", str(n), "--grace-period", str(n)]  # no early stopping


def _rows(trial_dir: Path) -> list[dict]:
    path = trial_dir / "result.json"
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:  # a line being written
            break
    return rows


def _statuses(stdout: str) -> dict[str, str]:
    """Trial name -> status, from the trial table that the sweep printed."""
    found = {}
    for line in stdout.splitlines():
        status = re.search(r"COMPLETED|ERROR|STOPPED EARLY|NOT STARTED", line)
        if line.strip().startswith("trial_") and status:
            found[line.split()[0]] = status.group()
    return found


def _check_best_model(tmp_path: Path, experiment: Path) -> None:
    model = molgnn.load(experiment / BEST_CHECKPOINT)
    assert model.checkpoint_info["target"]["names"] == ["gap"]
    mol = QM9(str(tmp_path / "data" / "qm9"), first=30, progress=False)[0]
    prediction = molgnn.predict(model, mol).values
    assert prediction.shape == (1, 1) and torch.isfinite(prediction).all()


# --- finding the token: the same order as Ray's own loader -----------------------------------


_COMPARE_WITH_RAY = textwrap.dedent(
    """
    import json, os, sys
    from ray._raylet import AuthenticationTokenLoader
    from molgnn.tune import ClusterConnectionError, auth_token_source
    loader = AuthenticationTokenLoader.instance()
    out = []
    for case in json.loads(sys.argv[1]):
        for var in ("RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"):
            os.environ.pop(var, None)
        os.environ.update(case)
        loader.reset_cache()
        try:
            ray_has = loader.has_token(ignore_auth_mode=True)
        except Exception:
            ray_has = "error"
        try:
            ours = auth_token_source()
        except ClusterConnectionError:
            ours = "error"
        out.append([ray_has, ours])
    print(json.dumps(out))
    """
)


def test_auth_token_source_follows_rays_order(tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / ".ray").mkdir(parents=True)
    (home / ".ray" / "auth_token").write_text("from-home\n")
    path = tmp_path / "token"
    path.write_text("from-path")
    empty = tmp_path / "empty"
    empty.write_text("  \n")
    cases = [
        {"RAY_AUTH_TOKEN": "from-env", "RAY_AUTH_TOKEN_PATH": str(path)},
        {"RAY_AUTH_TOKEN_PATH": str(path)},
        {"RAY_AUTH_TOKEN": "", "RAY_AUTH_TOKEN_PATH": ""},
        {"RAY_AUTH_TOKEN": "   "},
        {"RAY_AUTH_TOKEN_PATH": str(tmp_path / "missing")},
        {"RAY_AUTH_TOKEN_PATH": str(empty)},
        {"HOME": str(tmp_path)},  # nothing set and no ~/.ray/auth_token
    ]
    run = subprocess.run(
        [sys.executable, "-c", _COMPARE_WITH_RAY, json.dumps(cases)],
        capture_output=True, text=True, timeout=120,
        env=ray_env(HOME=str(home), RAY_AUTH_TOKEN_PATH=None),
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    assert json.loads(run.stdout.strip().splitlines()[-1]) == [
        [True, "RAY_AUTH_TOKEN"],
        [True, f"RAY_AUTH_TOKEN_PATH ({path})"],
        [True, f"~/.ray/auth_token ({home / '.ray' / 'auth_token'})"],
        [False, None],
        ["error", "error"],
        ["error", "error"],
        [False, None],
    ]


def test_prepare_token_auth_turns_token_mode_on_never_off(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A private environment: this process's Ray must not see these settings.
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_AUTH_")}
    monkeypatch.setattr(os, "environ", {**env, "HOME": str(tmp_path)})
    refreshed: list[bool] = []
    monkeypatch.setattr(cluster_mod, "_refresh_ray_config", lambda: refreshed.append(True))
    # No token, mode unset: nothing changes (a cluster without authentication still works).
    assert cluster_mod.prepare_token_auth() is None
    assert "RAY_AUTH_MODE" not in os.environ and not refreshed
    # A token, mode unset: token mode, as ray.init does for address="auto".
    os.environ["RAY_AUTH_TOKEN"] = "abc"
    assert cluster_mod.prepare_token_auth() == "RAY_AUTH_TOKEN"
    assert os.environ["RAY_AUTH_MODE"] == "token" and refreshed
    # An explicit choice is kept.
    os.environ["RAY_AUTH_MODE"] = "disabled"
    assert cluster_mod.prepare_token_auth() is None
    assert os.environ["RAY_AUTH_MODE"] == "disabled"
    os.environ["RAY_AUTH_MODE"] = "tokens"
    with pytest.raises(ClusterConnectionError, match="not a mode Ray knows"):
        cluster_mod.prepare_token_auth()
    os.environ["RAY_AUTH_MODE"] = "token"
    del os.environ["RAY_AUTH_TOKEN"]
    with pytest.raises(ClusterConnectionError, match="no Ray auth token was found: set RAY_AUTH"):
        cluster_mod.prepare_token_auth()


def test_join_errors_say_what_to_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        os, "environ", {k: v for k, v in os.environ.items() if k != "RAY_AUTH_MODE"}
    )
    cause = RuntimeError("Failed to connect to GCS. ... InvalidAuthToken: token is missing")
    err = ConnectionError("Failed to connect to Ray cluster at 10.0.0.1:6379")
    err.__cause__ = cause
    missing = str(cluster_mod.join_error("10.0.0.1:6379", err, None))
    assert missing.startswith("the Ray cluster at 10.0.0.1:6379 requires an auth token")
    assert "RAY_AUTH_TOKEN to the output of `ray get-auth-token` on the head node" in missing
    wrong = str(cluster_mod.join_error("10.0.0.1:6379", err, "RAY_AUTH_TOKEN"))
    assert "rejected the auth token from RAY_AUTH_TOKEN" in wrong
    os.environ["RAY_AUTH_MODE"] = "disabled"
    disabled = str(cluster_mod.join_error("auto", err, None))
    assert disabled.startswith("the Ray cluster (--address auto) requires an auth token but")
    assert (
        "RAY_AUTH_MODE=disabled is set here: unset RAY_AUTH_MODE and set RAY_AUTH_TOKEN" in disabled
    )
    other = cluster_mod.join_error(
        "auto", ConnectionError("Could not find any running Ray\n.."), None
    )
    assert (
        str(other)
        == "could not join the Ray cluster (--address auto): Could not find any running Ray"
    )
    for message in (missing, wrong, str(other)):
        assert "\n" not in message


# --- a real cluster with token authentication ------------------------------------------------


@pytest.mark.ray
@pytest.mark.slow
@pytest.mark.timeout(200)
def test_joining_without_the_token_fails_in_one_clear_line(cluster: Cluster, tmp_path) -> None:
    nodes = cluster.wait(1)
    assert nodes and all(n["NodeManagerAddress"] == LOOPBACK for n in nodes)
    fast = {"RAY_gcs_server_port_wait_time_s": "2"}  # Ray retries the GCS for 20 s otherwise
    cases = {
        "requires an auth token (Ray's token authentication) and none was found here: set "
        "RAY_AUTH_TOKEN to the output of `ray get-auth-token` on the head node": {},
        "rejected the auth token from RAY_AUTH_TOKEN": {"RAY_AUTH_TOKEN": "0" * 64},
    }
    for expected, auth in cases.items():
        out = subprocess.run(
            _sweep(tmp_path, "denied", "--address", cluster.address),
            env=_driver_env(tmp_path, **fast, **auth),
            capture_output=True, text=True, timeout=150,
        )  # fmt: skip
        assert out.returncode == 1, out.stdout[-2000:] + out.stderr[-2000:]
        last = out.stderr.strip().splitlines()[-1]
        assert last.startswith(f"et_homo_lumo.py: error: the Ray cluster at {cluster.address} "), (
            out.stderr[-3000:]
        )
        assert expected in last
        assert "Traceback" not in out.stderr + out.stdout
    assert not (tmp_path / "sweeps" / "denied").exists()  # failed before the sweep started


@pytest.mark.ray
@pytest.mark.slow
@pytest.mark.timeout(300)
def test_trials_of_a_lost_node_continue_from_their_checkpoints(cluster: Cluster, tmp_path) -> None:
    worker = cluster.add_worker(num_cpus=1)  # RAY_AUTH_MODE=token and RAY_AUTH_TOKEN
    worker_id = cluster.node_id(worker)
    epochs = 40
    # The driver has the token in RAY_AUTH_TOKEN and no RAY_AUTH_MODE: molgnn turns it on.
    cmd = _sweep(tmp_path, "lost", "--address", cluster.address, *_epochs(epochs),
                 "--max-failures", "2")  # fmt: skip
    driver = subprocess.Popen(
        cmd,
        env=_driver_env(tmp_path, RAY_AUTH_TOKEN=AUTH_TOKEN),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    experiment = tmp_path / "sweeps" / "lost"
    victim = None
    try:
        deadline = time.time() + 150
        while victim is None and time.time() < deadline and driver.poll() is None:
            for trial_dir in experiment.glob("trial_*"):
                rows = _rows(trial_dir)
                # A trial on the worker node, with a checkpoint and far from done.
                if rows and rows[-1]["node_id"] == worker_id and rows[-1]["epoch"] < epochs - 5:
                    victim = trial_dir.name
            time.sleep(0.1)
        assert victim is not None, "no trial ran on the worker node in time"
        assert len(worker.kill_raylet_and_workers()) > 1  # the raylet and its trial worker
        stdout, _ = driver.communicate(timeout=200)
    finally:
        if driver.poll() is None:
            driver.kill()
        driver.wait(timeout=30)
    assert driver.returncode == 0, stdout[-5000:]
    assert list(_statuses(stdout).values()) == ["COMPLETED"] * 2, stdout[-5000:]
    # Ray's GCS marks the node dead after its health checks fail, which can trail the trial's
    # retry by some seconds: wait (bounded) until it says so.
    deadline = time.time() + 90
    while worker_id in {n["NodeID"] for n in cluster.wait(1) if n["Alive"]}:
        assert time.time() < deadline, "the killed worker node is still reported alive after 90 s"
        time.sleep(2)

    rows = _rows(experiment / victim)
    first = [r for r in rows if r["node_id"] == worker_id]
    rest = rows[len(first) :]
    assert first and rows[: len(first)] == first  # it ran on the worker node first ...
    assert rest and all(r["node_id"] != worker_id for r in rest), rows  # ... then elsewhere
    # ... in a new process, from its last checkpoint: that of the last epoch it reported, or
    # of the one before when the raylet died between the driver logging that epoch's result
    # and registering its checkpoint.
    assert rest[0]["run_started_at"] > first[-1]["epoch_ended_at"]
    resumed = rest[0]["resumed_from_epoch"]
    assert first[-1]["epoch"] - 1 <= resumed <= first[-1]["epoch"] and resumed >= 1, rows
    assert [r["epoch"] for r in rest] == list(range(resumed + 1, epochs + 1))
    assert [r["epoch"] for r in first] == list(range(1, first[-1]["epoch"] + 1))
    assert {r["resumed_from_epoch"] for r in first} == {0}
    assert {r["node_ip"] for r in rows} == {LOOPBACK}
    _check_best_model(tmp_path, experiment)


@pytest.mark.ray
@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_killed_driver_resumes_with_resume(cluster: Cluster, tmp_path) -> None:
    epochs = 30  # the second trial is still running when the driver is killed
    home = tmp_path / "home"
    (home / ".ray").mkdir(parents=True)
    (home / ".ray" / "auth_token").write_text(AUTH_TOKEN)  # a copy of the head's token
    # `--address auto` finds the cluster through RAY_ADDRESS and the token in ~/.ray.
    env = _driver_env(tmp_path, RAY_ADDRESS=cluster.address)
    cmd = _sweep(tmp_path, "killed", "--address", "auto", *_epochs(epochs))
    experiment = tmp_path / "sweeps" / "killed"
    driver = subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    finished: dict[str, list[dict]] = {}
    try:
        deadline = time.time() + 150
        while not finished and time.time() < deadline and driver.poll() is None:
            for trial_dir in experiment.glob("trial_*"):
                rows = _rows(trial_dir)
                if len(rows) == epochs:
                    finished[trial_dir.name] = rows
            time.sleep(0.2)
        assert driver.poll() is None, driver.communicate()[0][-3000:]
        assert finished, "no trial finished in time"
        time.sleep(2.0)  # let Tune save the experiment state once more
    finally:
        if driver.poll() is None:
            os.kill(driver.pid, signal.SIGKILL)  # killed, not stopped cleanly
        driver.wait(timeout=30)
    assert not (experiment / BEST_CHECKPOINT).exists()

    resumed = subprocess.run(
        [*cmd, "--resume"], env=env, capture_output=True, text=True, timeout=200
    )
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    statuses = _statuses(resumed.stdout)
    assert list(statuses.values()) == ["COMPLETED"] * 2, resumed.stdout[-3000:]
    # A trial that had started but was not yet in the saved experiment state may leave a
    # folder behind; the finished trials are in the resumed sweep, under their old names.
    assert set(finished) <= set(statuses)
    for name, rows in finished.items():
        # The finished trial was not rerun: the same epochs, reported once each.
        assert _rows(experiment / name) == rows
    for name in statuses:
        assert [r["epoch"] for r in _rows(experiment / name)][-1] == epochs
    _check_best_model(tmp_path, experiment)
