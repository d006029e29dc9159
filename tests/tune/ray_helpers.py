"""Loopback-only Ray clusters with token authentication, for the sweep tests.

One module instance for the whole session (the test modules and ``conftest.py`` import it by
name), so that the session's auth token is made once.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from functools import cache
from pathlib import Path

LOOPBACK = "127.0.0.1"

# The session's Ray auth token, in a file of its own. Ray reads the auth settings once per
# process, so they are fixed here, before any test imports Ray's core. An inherited
# RAY_AUTH_MODE (say ``disabled``) is dropped: the tests run with Ray's defaults.
_AUTH_DIR = Path(tempfile.mkdtemp(prefix="molgnn-ray-auth-"))
atexit.register(shutil.rmtree, _AUTH_DIR, ignore_errors=True)
AUTH_TOKEN = secrets.token_hex(32)  # what `ray get-auth-token --generate` makes
AUTH_TOKEN_FILE = _AUTH_DIR / "auth_token"
AUTH_TOKEN_FILE.write_text(AUTH_TOKEN)
AUTH_TOKEN_FILE.chmod(0o600)
for _var in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_ADDRESS"):
    os.environ.pop(_var, None)
os.environ["RAY_AUTH_TOKEN_PATH"] = str(AUTH_TOKEN_FILE)


def _unshare_denied(cmd: list[str]) -> str:
    """Why ``cmd`` (an ``unshare`` probe) failed, or ``""`` when it ran."""
    try:
        probe = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as err:
        return str(err)
    return (probe.stderr.strip() or f"exit code {probe.returncode}") if probe.returncode else ""


@cache
def loopback_only_problem() -> str | None:
    """Why this process may not start Ray, or ``None`` when its only network is loopback."""
    names = sorted(name for _, name in socket.if_nameindex())
    if names != ["lo"]:
        why = (
            "the Ray tests run only in a private network namespace whose only interface is "
            f"loopback, and this process sees the interfaces {names}: run pytest as "
            "`unshare -n bash -c 'ip link set lo up && pytest'`"
        )
        denied = _unshare_denied(["unshare", "-n", "true"])
        if denied:
            if not _unshare_denied(["unshare", "-r", "-n", "true"]):
                why += (
                    " (here `unshare -n` is not permitted, but a user namespace is: "
                    "`unshare -r -n bash -c 'ip link set lo up && pytest'`)"
                )
            else:
                why += f" (here `unshare -n` is not permitted: {denied}; it needs root)"
        return why
    try:
        with socket.socket() as server, socket.socket() as client:
            server.bind((LOOPBACK, 0))
            server.listen(1)
            client.settimeout(5)
            client.connect(server.getsockname())
    except OSError as err:
        return f"the loopback interface is not up ({err}): run `ip link set lo up` first"
    return None


def ray_env(**extra: str | None) -> dict[str, str]:
    """Environment of the Ray nodes and drivers of a test cluster.

    The session's token is found through ``RAY_AUTH_TOKEN_PATH``, and ``RAY_AUTH_MODE`` is
    unset, as for a user who has run ``ray get-auth-token --generate``. ``extra`` sets
    variables (``None`` removes one).
    """
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_AUTH_MODE", "RAY_ADDRESS")}
    env["RAY_AUTH_TOKEN_PATH"] = str(AUTH_TOKEN_FILE)
    env["RAY_USAGE_STATS_ENABLED"] = "0"
    for key, value in extra.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


_ports_handed_out: set[int] = set()


def free_port() -> int:
    """A free TCP port on 127.0.0.1 that no earlier call of this session returned."""
    while True:
        with socket.socket() as sock:
            sock.bind((LOOPBACK, 0))
            port = int(sock.getsockname()[1])
        if port not in _ports_handed_out:
            _ports_handed_out.add(port)
            return port


class RayNode:
    """One ``ray start --block`` process on 127.0.0.1, stopped by its PID.

    Each node has its own ``--temp-dir`` (so that its raylet can be told apart) and its own
    ports, as two Ray nodes on one host need. ``ray start --block`` stays in the foreground
    and, on SIGTERM, stops the Ray processes it started (GCS, raylet, ...), so the test never
    needs ``ray stop`` (which would stop every Ray process of the machine).
    """

    def __init__(
        self,
        *,
        head_port: int,
        head: bool,
        num_cpus: int,
        num_gpus: int = 0,
        env: dict[str, str] | None = None,
        worker_ports: tuple[int, int] = (11000, 11999),
    ) -> None:
        self.head = head
        self.temp_dir = tempfile.mkdtemp(prefix="mgr-", dir="/tmp")  # short socket paths
        ray_exe = str(Path(sys.executable).with_name("ray"))
        cmd = [
            ray_exe,
            "start",
            "--block",
            "--node-ip-address",
            LOOPBACK,
            f"--num-cpus={num_cpus}",
            f"--num-gpus={num_gpus}",
            f"--temp-dir={self.temp_dir}",
            f"--node-manager-port={free_port()}",
            f"--object-manager-port={free_port()}",
            f"--metrics-export-port={free_port()}",
            f"--runtime-env-agent-port={free_port()}",
            f"--dashboard-agent-listen-port={free_port()}",
            f"--dashboard-agent-grpc-port={free_port()}",
            f"--min-worker-port={worker_ports[0]}",
            f"--max-worker-port={worker_ports[1]}",
            "--disable-usage-stats",
        ]
        if head:
            cmd += [
                "--head",
                f"--port={head_port}",
                "--include-dashboard=false",
            ]
        else:
            cmd += [f"--address={LOOPBACK}:{head_port}"]
        self.log_path = Path(self.temp_dir) / "ray-start.log"
        self.log = open(self.log_path, "w")  # noqa: SIM115
        self.process = subprocess.Popen(
            cmd,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env=env if env is not None else ray_env(),
            cwd=self.temp_dir,
        )

    def output(self) -> str:
        self.log.flush()
        return self.log_path.read_text(errors="replace")

    def wait_started(self, timeout: float = 120.0) -> None:
        """Wait until ``ray start`` says the node runs; fail at once if it exited."""
        deadline = time.time() + timeout
        while "Ray runtime started" not in self.output():
            if self.process.poll() is not None or time.time() > deadline:
                raise RuntimeError(f"`ray start` did not start a node:\n{self.output()[-4000:]}")
            time.sleep(0.2)

    def raylet_pid(self) -> int:
        """The PID of this node's raylet (found by its socket path, under this node's temp dir)."""
        marker = f"--raylet_socket_name={self.temp_dir}/"
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                args = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            words = [a.decode(errors="replace") for a in args]
            if words and words[0].endswith("/raylet") and any(w.startswith(marker) for w in words):
                return int(entry.name)
        raise RuntimeError(f"no raylet runs under {self.temp_dir}:\n{self.output()[-3000:]}")

    def kill_raylet_and_workers(self) -> list[int]:
        """SIGKILL this node's raylet and every process under it (its trial workers), as when
        the machine is lost. Returns the PIDs killed.

        Killing the raylet alone leaves its worker processes running until they notice, and a
        short trial can finish in that time, so the node's workers go with it.
        """
        raylet = self.raylet_pid()
        children: dict[int, list[int]] = {}
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(entry.name))
        victims, todo = [], [raylet]
        while todo:
            pid = todo.pop()
            victims.append(pid)
            todo.extend(children.get(pid, []))
        for pid in victims:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        return victims

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()  # SIGTERM to this PID only
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.log.close()
        shutil.rmtree(self.temp_dir, ignore_errors=True)


_NODES_CODE = """
import json, sys, time
import ray
ray.init(address=sys.argv[1], logging_level="ERROR")
count, deadline = int(sys.argv[2]), time.time() + float(sys.argv[3])
while True:
    nodes = [
        {k: n[k] for k in ("NodeID", "Alive", "NodeManagerAddress", "RayletSocketName")}
        for n in ray.nodes()
    ]
    if sum(n["Alive"] for n in nodes) >= count or time.time() > deadline:
        break
    time.sleep(0.5)
print("NODES", json.dumps(nodes))
"""


def cluster_nodes(address: str, alive: int = 0, timeout: float = 60.0) -> list[dict]:
    """``ray.nodes()`` of the cluster, from a driver of its own, once ``alive`` nodes live.

    The driver sets ``RAY_AUTH_MODE=token`` itself: Ray does not, for an explicit address.
    """
    out = subprocess.run(
        [sys.executable, "-c", _NODES_CODE, address, str(alive), str(timeout)],
        capture_output=True,
        text=True,
        env=ray_env(RAY_AUTH_MODE="token"),
        timeout=timeout + 60,
    )
    lines = [line for line in out.stdout.splitlines() if line.startswith("NODES ")]
    if out.returncode or not lines:
        raise RuntimeError(f"cannot list the nodes at {address}:\n{out.stderr[-3000:]}")
    nodes = json.loads(lines[-1][len("NODES ") :])
    if sum(n["Alive"] for n in nodes) < alive:
        raise RuntimeError(f"the Ray cluster at {address} did not reach {alive} nodes: {nodes}")
    return nodes


class Cluster:
    """A Ray cluster on 127.0.0.1, started with ``ray start`` as a user starts one.

    The head runs with Ray's defaults: it finds the session's token and so uses token
    authentication. A worker node joins as the Sweeps guide says: ``RAY_AUTH_MODE=token``
    and the head's token in ``RAY_AUTH_TOKEN``.
    """

    def __init__(self) -> None:
        self.port = free_port()
        self.address = f"{LOOPBACK}:{self.port}"
        self.nodes: list[RayNode] = []

    def start_head(self, num_cpus: int, num_gpus: int = 0) -> RayNode:
        head = RayNode(head_port=self.port, head=True, num_cpus=num_cpus, num_gpus=num_gpus)
        self.nodes.append(head)
        head.wait_started()
        self.wait(1)
        assert "Token authentication is enabled" in head.output(), head.output()[-3000:]
        return head

    def add_worker(self, num_cpus: int, num_gpus: int = 0) -> RayNode:
        alive = sum(1 for n in self.nodes if n.process.poll() is None)
        env = ray_env(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=AUTH_TOKEN, RAY_AUTH_TOKEN_PATH=None)
        low = 12000 + 1000 * len(self.nodes)
        node = RayNode(
            head_port=self.port,
            head=False,
            num_cpus=num_cpus,
            num_gpus=num_gpus,
            env=env,
            worker_ports=(low, low + 999),
        )
        self.nodes.append(node)
        node.wait_started()
        self.wait(alive + 1)
        return node

    def wait(self, alive: int) -> list[dict]:
        """Wait for ``alive`` live nodes; every node must be on 127.0.0.1."""
        nodes = cluster_nodes(self.address, alive)
        assert {n["NodeManagerAddress"] for n in nodes} == {LOOPBACK}, nodes
        return nodes

    def node_id(self, node: RayNode) -> str:
        """The Ray node id of one of this cluster's nodes."""
        for entry in cluster_nodes(self.address):
            if entry["RayletSocketName"].startswith(node.temp_dir + "/"):
                return str(entry["NodeID"])
        raise RuntimeError(f"the cluster has no node under {node.temp_dir}")

    def stop(self) -> None:
        for node in reversed(self.nodes):  # workers first, then the head
            node.stop()
