"""Shared set-up for the sweep tests.

Ray workers are separate processes: they find molgnn and the toy backend through PYTHONPATH,
which they inherit from the process that starts Ray.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

pytest.importorskip("ray.tune")
pytest.importorskip("optuna")

REPO_ROOT = Path(__file__).resolve().parents[2]
TESTS_TUNE = Path(__file__).resolve().parent

_paths = [str(REPO_ROOT), str(TESTS_TUNE)]
# The test modules import the toy backend from this folder (pytest runs with
# --import-mode=importlib, which does not add test folders to sys.path).
for _p in _paths:
    if _p not in sys.path:
        sys.path.insert(0, _p)
_existing = os.environ.get("PYTHONPATH", "")
os.environ["PYTHONPATH"] = os.pathsep.join(
    [*_paths, *[p for p in _existing.split(os.pathsep) if p and p not in _paths]]
)
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
# The test clusters run on 127.0.0.1 without auth tokens. Ray reads the auth mode once per
# process, so the test process and every Ray process it starts must agree from the start.
os.environ["RAY_AUTH_MODE"] = "disabled"
os.environ.setdefault("RAY_DEDUP_LOGS", "0")


class RayNode:
    """One ``ray start --block`` process on 127.0.0.1, stopped by its PID.

    ``ray start --block`` stays in the foreground and, on SIGTERM, stops the Ray processes it
    started (GCS, raylet, ...), so the test never needs ``ray stop`` (which would stop every
    Ray process of the machine).
    """

    def __init__(self, *, head_port: int, head: bool, num_cpus: int, num_gpus: int) -> None:
        import subprocess
        import sys
        import tempfile

        self.temp_dir = tempfile.mkdtemp(prefix="molgnn-ray-", dir="/tmp")
        ray_exe = str(Path(sys.executable).with_name("ray"))
        cmd = [
            ray_exe,
            "start",
            "--block",
            "--node-ip-address",
            "127.0.0.1",
            f"--num-cpus={num_cpus}",
            f"--num-gpus={num_gpus}",
            "--disable-usage-stats",
        ]
        if head:
            cmd += [
                "--head",
                f"--port={head_port}",
                "--include-dashboard=false",
                f"--temp-dir={self.temp_dir}",
            ]
        else:
            cmd += [f"--address=127.0.0.1:{head_port}"]
        self.log = open(Path(self.temp_dir) / "ray-start.log", "w")  # noqa: SIM115
        self.process = subprocess.Popen(
            cmd, stdout=self.log, stderr=subprocess.STDOUT, env=ray_env(), cwd=self.temp_dir
        )

    def stop(self) -> None:
        import subprocess

        if self.process.poll() is None:
            self.process.terminate()  # SIGTERM to this PID only
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.log.close()
        shutil.rmtree(self.temp_dir, ignore_errors=True)


def ray_env() -> dict[str, str]:
    """Environment of the Ray processes and drivers of a test cluster."""
    env = dict(os.environ)
    env["RAY_AUTH_MODE"] = "disabled"  # a local test cluster: no token files to share
    env["RAY_USAGE_STATS_ENABLED"] = "0"
    return env


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_nodes(address: str, count: int, timeout: float = 90.0) -> None:
    """Wait until ``count`` nodes are alive, asking from a separate driver process."""
    import subprocess
    import sys
    import time

    code = (
        "import ray, sys\n"
        f"ray.init(address={address!r}, logging_level='ERROR')\n"
        "print(sum(1 for n in ray.nodes() if n['Alive']))\n"
    )
    deadline = time.time() + timeout
    last = ""
    while time.time() < deadline:
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, env=ray_env(), timeout=60
        )
        last = out.stdout.strip().splitlines()[-1:] and out.stdout.strip().splitlines()[-1]
        if out.returncode == 0 and last.isdigit() and int(last) >= count:
            return
        time.sleep(2)
    raise RuntimeError(f"the Ray cluster at {address} did not reach {count} nodes: {last!r}")


@pytest.fixture
def ray_cluster():
    """Start Ray nodes on 127.0.0.1: ``start(num_nodes, num_cpus, num_gpus) -> address``."""
    nodes: list[RayNode] = []

    def start(num_nodes: int = 1, num_cpus: int = 2, num_gpus: int = 0) -> str:
        port = free_port()
        nodes.append(RayNode(head_port=port, head=True, num_cpus=num_cpus, num_gpus=num_gpus))
        address = f"127.0.0.1:{port}"
        wait_for_nodes(address, 1)
        for _ in range(num_nodes - 1):
            nodes.append(RayNode(head_port=port, head=False, num_cpus=num_cpus, num_gpus=num_gpus))
        wait_for_nodes(address, num_nodes)
        return address

    try:
        yield start
    finally:
        for node in reversed(nodes):  # workers first, then the head
            node.stop()
