"""SIGKILL the online loop at chosen moments, restart it, and check that nothing is lost."""

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from molgnn.online import Store, run_online, version_id

sys.path.insert(0, str(Path(__file__).parent))
import online_worker as worker

WORKER = Path(__file__).parent / "online_worker.py"
REPO = Path(__file__).parents[2]
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}


def run_worker(store: Path, kill: str | None) -> subprocess.CompletedProcess[str]:
    args = [sys.executable, str(WORKER), str(store)] + ([kill] if kill else [])
    return subprocess.run(args, capture_output=True, text=True, env=ENV, timeout=240)


def check_consistent(root: Path) -> tuple[int, int]:
    """Everything committed is whole; returns (versions, models)."""
    store = Store(root)
    try:
        assert store.verify() == []  # integrity_check, version chain, manifests, checkpoints
        assert store.integrity_check() == "ok"
        versions, models = store.versions(), store.models()
        assert len({v.id for v in versions}) == len(versions)  # no duplicated version
        assert len({m.data_version for m in models}) == len(models)  # one model per version
        for v in versions:
            assert version_id(store.manifest(v)) == v.id
        return len(versions), len(models)
    finally:
        store.close()


@pytest.mark.slow
def test_sigkill_at_every_kind_of_moment_then_restart(tmp_path):
    reference = run_online(worker.config(str(tmp_path / "ref")), worker.source(), verbose=False)
    root = tmp_path / "store"
    # Per process, counted from its start. In order, these kill: the hold-out transaction; the
    # first registration (after its checkpoint is in place); right after a checkpoint's rename;
    # mid-training; an ingest transaction; a registration again. (Each round also commits two
    # journal entries, for its scratch folder and its checkpoint, before writing them; a
    # restart after a kill commits once more to clear the journal.)
    kills = ["commit:2", "commit:5", "checkpoint:1", "epoch:2", "commit:6", "commit:4"]
    progress = []
    for kill in kills:
        result = run_worker(root, kill)
        assert result.returncode == -signal.SIGKILL, (kill, result.stdout, result.stderr)
        progress.append(check_consistent(root))
    # (versions, models) after each kill: nothing committed is ever lost, and each kill hit
    # the stage it was aimed at (a killed transaction left no trace).
    assert progress == [(0, 0), (1, 0), (1, 0), (2, 1), (3, 2), (4, 2)]
    final = run_worker(root, None)
    assert final.returncode == 0, final.stderr
    assert check_consistent(root) == (len(reference.versions()), len(reference.models()))
    store = Store(root)
    # Same data, same chunks: the very same version ids as an uninterrupted run.
    assert [v.id for v in store.versions()] == [v.id for v in reference.versions()]
    assert [m.data_version for m in store.models()] == [m.data_version for m in reference.models()]
    models = store.models()
    assert [m.id for m in store.lineage(models[-1].id)] == [m.id for m in reversed(models)]
    # Orphans (a checkpoint without a row, a scratch folder) are gone.
    assert sorted(p.name for p in (root / "models").iterdir()) == sorted(
        Path(m.checkpoint).name for m in models
    )
    assert not list(root.glob(".work-*"))


@pytest.mark.slow
def test_sigkill_at_random_moments(tmp_path):
    root = tmp_path / "store"
    rng = random.Random(7)
    seen = (0, 0)
    for _ in range(3):
        proc = subprocess.Popen(
            [sys.executable, str(WORKER), str(root)],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=ENV,
        )
        assert proc.stdout is not None
        # wait until the loop is working, then kill it a random moment later
        for line in proc.stdout:
            if line.startswith(("ingested", "retraining", "registered", "  version")):
                break
        time.sleep(rng.uniform(0.0, 1.5))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
        proc.stdout.close()
        now = check_consistent(root)
        assert now >= seen
        seen = now
    final = run_worker(root, None)
    assert final.returncode == 0, final.stderr
    assert check_consistent(root) == (5, 3)
