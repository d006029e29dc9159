"""Active learning in the online loop: strategies, the registry's records, crash safety."""

import argparse
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from molgnn.cli.online import add_parser, config_from_args
from molgnn.online import (
    ACQUISITION_STRATEGIES,
    DataStream,
    OnlineConfig,
    Store,
    acquire_round,
    run_online,
)

sys.path.insert(0, str(Path(__file__).parent))
import acquisition_worker
import online_worker as worker

WORKER = Path(__file__).parent / "acquisition_worker.py"
REPO = Path(__file__).parents[2]
POOLED = {"preset": "pooled", "hidden_channels": 8, "num_layers": 1, "num_rbf": 8, "dropout": 0.2}


def source_with_a_duplicate() -> list:
    """The worker's 70 molecules, two of which carry the same id (the second must be skipped)."""
    mols = worker.source()
    mols[41].mol_id = mols[40].mol_id
    return mols


def held_out_ids(store: Store) -> set[str]:
    return {m.mol_id for role in ("val", "test") for m in store.molecules(role)}


def check_acquisitions(store: Store, batch: int) -> list[str]:
    """Every version's record is whole and the chosen are the best-scored; returns all chosen."""
    records = store.acquisitions()
    versions = store.versions()
    assert [r.version for r in records] == [v.id for v in versions]  # one record per version
    assert records[0].strategy == "initial" and records[0].scores == {}
    chosen: list[str] = []
    for record in records[1:]:
        assert set(record.chosen) <= set(record.scores) and len(record.scores) == record.offered
        assert len(record.chosen) == min(batch, record.offered)
        left = [s for mol, s in record.scores.items() if mol not in record.chosen]
        if left:  # scores may be negative (the lower confidence bound's)
            assert min(record.scores[m] for m in record.chosen) >= max(left)
    for record in records:
        chosen += record.chosen
    return chosen


#: Per strategy: its settings beyond the model's (the targeted ones with each uncertainty).
SEARCH = {
    "lcb": {"uncertainty": "mc-dropout", "kappa": 2.0},
    "ucb": {"objective": "maximize", "uncertainty": "committee"},
    "ei": {"uncertainty": "committee"},
}


@pytest.mark.parametrize("strategy", sorted(ACQUISITION_STRATEGIES))
def test_a_strategy_never_acquires_a_molecule_twice(strategy, tmp_path):
    search = SEARCH.get(strategy, {})
    dropout = strategy == "mc-dropout" or search.get("uncertainty") == "mc-dropout"
    model = POOLED if dropout else {"preset": "et-small", **worker.TINY}
    config = worker.config(
        str(tmp_path / "store"), model=model, acquire=strategy, pool=10, batch=5, committee=2,
        **search,
    )  # fmt: skip
    source = source_with_a_duplicate()
    store = run_online(config, source=source, verbose=False)
    assert store.verify() == []
    chosen = check_acquisitions(store, batch=5)
    assert len(chosen) == len(set(chosen))  # never twice
    unique = {m.mol_id for m in source}
    assert set(chosen) == unique - held_out_ids(store)  # run to exhaustion: everything, once
    assert {r.strategy for r in store.acquisitions()[1:]} == {strategy}
    # Every round counted the true top 1% (54 acquirable molecules: one); run to
    # exhaustion, the last round holds it.
    searches = [r.details["search"] for r in store.acquisitions()[1:]]
    assert {s["top"] for s in searches} == {1} and searches[-1]["found"] == 1
    assert [s["found"] for s in searches] == sorted(s["found"] for s in searches)
    if strategy != "random":
        assert all(r.model is not None for r in store.acquisitions()[1:])
    # Started again, the exhausted loop acquires nothing more.
    before = [v.id for v in store.versions()]
    store.close()
    again = run_online(config, source=source, verbose=False)
    assert [v.id for v in again.versions()] == before
    again.close()


class Spy:
    """A strategy that records what it was given and prefers the last candidates."""

    name = "spy"
    needs_model = False
    needs_labels = False

    def __init__(self) -> None:
        self.seen: list[list] = []

    def scores(self, candidates, labels, context):
        self.seen.append(candidates)
        assert labels is None
        return torch.arange(len(candidates), dtype=torch.float64)

    def details(self, context):
        return {"spy": True}


def test_rounds_keep_the_pool_and_hide_the_labels(tmp_path):
    config = worker.config(str(tmp_path / "store"), acquire="random", pool=6, batch=2)
    source = worker.source()
    store = Store(config.store)
    with store.lock():
        store.check_settings(config.data_settings())
        stream = DataStream(source, chunk_size=config.chunk, seed=0)
        store.ingest(stream.next_chunk(config.initial), stream.position)
        spy = Spy()
        first = acquire_round(store, stream, config, spy, model=None, verbose=False)
        second = acquire_round(store, stream, config, spy, model=None, verbose=False)
    assert first is not None and second is not None and second.size == first.size + 2
    one, two = ([m.mol_id for m in seen] for seen in spy.seen)
    assert all(getattr(m, "y", None) is None for seen in spy.seen for m in seen)  # unlabelled
    # The four not chosen in round one are offered again first, then two new ones.
    assert two[:4] == one[:4] and not set(two[4:]) & set(one)
    record = store.acquisition(second.id)
    assert record is not None and record.chosen == two[-1:-3:-1]  # the highest scores
    assert record.details["spy"] is True and record.offered == 6
    # ... with the targeted-search count of the round (the top 1% of 54: one molecule).
    assert record.details["search"]["computed"] == second.size
    assert record.details["search"]["top"] == 1
    assert store.get_state("cursor") == config.initial + 8
    assert store.verify() == []
    # A record that does not match its version's molecules is a problem verify reports.
    with store.transaction() as db:
        db.execute("UPDATE acquisitions SET chosen = '[]' WHERE version = ?", (second.id,))
    (problem,) = store.verify()
    assert "acquisition record does not list the molecules it added (0 listed, 2 added)" in problem


def test_configuration_is_checked_and_has_flags(tmp_path):
    with pytest.raises(ValueError, match="unknown strategy 'greedy'; valid: random"):
        OnlineConfig(store="s", acquire="greedy")
    with pytest.raises(ValueError, match=r"batch \(30\) must not exceed pool \(10\)"):
        OnlineConfig(store="s", acquire="random", pool=10, batch=30)
    with pytest.raises(ValueError, match="mc-dropout needs a model with dropout"):
        OnlineConfig(store="s", acquire="mc-dropout")  # the ET has no dropout
    with pytest.raises(ValueError, match="committee must be at least 2"):
        OnlineConfig(store="s", acquire="disagreement", committee=1)
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers())
    argv = ["online", "--store", "s", "--acquire", "disagreement", "--pool", "40", "--batch", "8"]
    config = config_from_args(
        parser.parse_args([*argv, "--batch-size", "4", "--set", "committee=4"])
    )
    assert (config.acquire, config.pool, config.batch, config.committee) == (
        "disagreement",
        40,
        8,
        4,
    )
    assert config.train.batch_size == 4
    with pytest.raises(ValueError, match="indexable source"):
        run_online(
            worker.config(str(tmp_path / "it"), acquire="random"),
            source=iter(worker.source()),
            verbose=False,
        )


def test_a_store_made_before_acquisition_records_is_migrated(tmp_path):
    root = tmp_path / "old"
    config = worker.config(str(root), max_chunks=2)  # the first version and one chunk
    run_online(config, source=worker.source(), verbose=False).close()
    db = sqlite3.connect(root / "store.sqlite")  # as a store of the previous schema
    db.execute("DROP TABLE acquisitions")
    db.commit()
    db.close()
    old = Store(root, readonly=True)
    assert old.acquisitions() == [] and old.acquisition(old.versions()[0].id) is None
    assert old.verify() == []
    old.close()
    later = worker.config(str(root), acquire="random", pool=10, batch=5, max_chunks=3)
    store = run_online(later, source=worker.source(), verbose=False)
    versions = store.versions()
    assert len(versions) == 5
    # Made before the records: unknown; then one record per round.
    assert [store.acquisition(v.id) for v in versions[:2]] == [None, None]
    assert [r.strategy for r in store.acquisitions()] == ["random"] * 3
    assert [r.version for r in store.acquisitions()] == [v.id for v in versions[2:]]
    assert store.verify() == []


def run_worker(store: Path, strategy: str, kill: str | None) -> subprocess.CompletedProcess[str]:
    args = [sys.executable, str(WORKER), str(store), strategy] + ([kill] if kill else [])
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    return subprocess.run(args, capture_output=True, text=True, env=env, timeout=240)


def snapshot(root: Path) -> list[tuple]:
    store = Store(root, readonly=True)
    try:
        assert store.verify() == []
        models = {m.id: m.data_version for m in store.models()}
        return [
            (r.version, r.strategy, models.get(r.model), r.offered, r.chosen, r.scores, r.details)
            for r in store.acquisitions()
        ]
    finally:
        store.close()


@pytest.mark.slow
@pytest.mark.parametrize(
    ("strategy", "kills"),
    [
        # The committee is trained again after a restart. In order: inside the first round's
        # transaction; while scoring (the committee is trained, then lost); mid-epoch of the
        # second model, after a round; inside the second round of a process whose committee
        # is trained on another version.
        ("disagreement", ["acquire:1", "score:1", "epoch:3", "acquire:2"]),
        # A targeted search (MC dropout of the latest model, the best label so far): inside the
        # first round; while scoring; mid-epoch of the third model (retrains at 20, 30 and 45
        # molecules), after four rounds; inside the second round after that retrain.
        ("ei", ["acquire:1", "score:1", "epoch:2", "acquire:2"]),
    ],
)
def test_killed_and_restarted_acquisition_ends_as_an_uninterrupted_run(tmp_path, strategy, kills):
    reference = run_online(
        acquisition_worker.config(str(tmp_path / "ref"), strategy),
        source=worker.source(),
        verbose=False,
    )
    reference.close()
    expected = snapshot(tmp_path / "ref")
    root = tmp_path / "store"
    progress = []
    for kill in kills:
        result = run_worker(root, strategy, kill)
        assert result.returncode == -signal.SIGKILL, (kill, result.stdout, result.stderr)
        progress.append(len(snapshot(root)))
    assert progress == sorted(progress) and progress[0] == 1  # the killed round left no trace
    final = run_worker(root, strategy, None)
    assert final.returncode == 0, final.stderr
    assert snapshot(root) == expected  # same versions, same choices, same scores
    chosen = [mol for record in expected for mol in record[4]]
    assert len(chosen) == len(set(chosen))
    # The targeted-search counts of the restarted run are those of the uninterrupted one.
    assert all("search" in record[6] for record in expected[1:])
