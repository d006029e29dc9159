"""Shared set-up for the sweep tests: loopback-only Ray clusters with token authentication.

Ray workers are separate processes: they find molgnn and the toy backend through PYTHONPATH,
which they inherit from the process that starts Ray.

Every test that starts Ray is marked ``ray`` and runs only inside a private network namespace
whose only interface is loopback, so that Ray binds to 127.0.0.1 and no test traffic leaves
the machine (on Linux Ray replaces ``--node-ip-address 127.0.0.1`` with the host's outward
address whenever it has one)::

    unshare -n bash -c 'ip link set lo up && pytest'

Elsewhere those tests skip and say why; with ``MOLGNN_REQUIRE_NETNS=1`` (``.ci/run``) they fail
instead. Authentication stays as Ray sets it up by default: the session has its own token
(``RAY_AUTH_TOKEN_PATH``, so no test writes ``~/.ray/auth_token``), ``ray start --head``
finds it and turns token authentication on, and the nodes and drivers that join are given
the token the way the Sweeps guide tells users to.
"""

from __future__ import annotations

import os
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
os.environ.setdefault("RAY_DEDUP_LOGS", "0")

from ray_helpers import Cluster, loopback_only_problem  # noqa: E402


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "ray: starts Ray; runs only in a loopback-only network namespace "
        "(unshare -n bash -c 'ip link set lo up && pytest')",
    )


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("ray") is None:
        return
    problem = loopback_only_problem()
    if problem is not None:
        if os.environ.get("MOLGNN_REQUIRE_NETNS") == "1":
            pytest.fail(problem, pytrace=False)
        pytest.skip(problem)


@pytest.fixture
def ray_cluster():
    """Start Ray nodes on 127.0.0.1: ``start(num_nodes, num_cpus, num_gpus) -> address``."""
    clusters: list[Cluster] = []

    def start(num_nodes: int = 1, num_cpus: int = 2, num_gpus: int = 0) -> str:
        cluster = Cluster()
        clusters.append(cluster)
        cluster.start_head(num_cpus, num_gpus)
        for _ in range(num_nodes - 1):
            cluster.add_worker(num_cpus, num_gpus)
        return cluster.address

    try:
        yield start
    finally:
        for cluster in clusters:
            cluster.stop()
