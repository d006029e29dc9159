"""SIGKILL the tracked online loop between molgnn's registry write and MLflow's, restart it, and
check that the two registries agree: no version registered twice, no model lost.

The loop runs in a subprocess: this file is also the worker (``python test_registry_crash.py
STORE URI DATA_ROOT [KILL]``). KILL is ``<point>:<n>``, the worker SIGKILLs itself at the n-th
call, in that process, of:

- ``register``: MLflow's registration of a store model, after the store committed the model;
- ``link``: the store's record of the MLflow version, after MLflow registered it;
- ``decide``: the champion decision, after MLflow created the version;
- ``finish``: the tracked run's logging of the model, after the checkpoint is in place.

The kill points are installed here, by wrapping those functions in the worker process only;
nothing in molgnn knows about them.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

NAME = "qm9-gap-online"
#: A tiny ET on 48 real QM9 molecules: 8 validation, 8 test, then versions of 16, 24 and 32
#: molecules, each retrained on (growth 0.3), one epoch each.
SETTINGS: dict[str, object] = dict(
    model={"preset": "et-small", "hidden_channels": 8, "num_layers": 1, "num_heads": 2,
           "num_rbf": 8},
    subset=48, initial=16, chunk=8, growth=0.3, val=8, test=8, epochs=1, batch_size=16, seed=0,
    device="cpu",
)  # fmt: skip


def online_config(store: str, uri: str | None, data_root: str, **changes: object) -> object:
    from molgnn.online import OnlineConfig

    settings = {**SETTINGS, "store": store, "data_root": data_root, "mlflow": uri}
    settings["registered_model"] = NAME
    settings.update(changes)
    return OnlineConfig.from_dict(settings)


def _die() -> None:
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def install_kill(point: str, count: int) -> None:
    """Arrange a SIGKILL at the ``count``-th call of ``point`` in this process."""
    import molgnn.tracking._online as online
    import molgnn.tracking.registry as registry
    from molgnn.online import Store
    from molgnn.tracking import FitTracker

    seen = {"n": 0}

    def hit() -> bool:
        seen["n"] += 1
        return seen["n"] == count

    if point == "register":
        real_register = online.register

        def register(*args, **kwargs):  # type: ignore[no-untyped-def]
            if hit():
                _die()
            return real_register(*args, **kwargs)

        online.register = register  # type: ignore[assignment]
    elif point == "link":
        real_link = Store.link_mlflow_version

        def link(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            if hit():
                _die()
            return real_link(self, *args, **kwargs)

        Store.link_mlflow_version = link  # type: ignore[method-assign]
    elif point == "decide":
        real_decide = registry._decide

        def decide(*args, **kwargs):  # type: ignore[no-untyped-def]
            if hit():
                _die()
            return real_decide(*args, **kwargs)

        registry._decide = decide  # type: ignore[assignment]
    elif point == "finish":
        real_finish = FitTracker.finish

        def finish(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            if hit():
                _die()
            return real_finish(self, *args, **kwargs)

        FitTracker.finish = finish  # type: ignore[method-assign]
    else:
        raise ValueError(f"unknown kill point {point!r}")


def main() -> None:
    from molgnn.online import run_online

    store, uri, data_root = sys.argv[1:4]
    if len(sys.argv) > 4:
        point, count = sys.argv[4].split(":")
        install_kill(point, int(count))
    run_online(online_config(store, uri, data_root), verbose=True)  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
    sys.exit(0)

import pytest  # noqa: E402

pytest.importorskip("mlflow")

from mlflow import MlflowClient  # noqa: E402

from molgnn.online import Store  # noqa: E402

REPO = Path(__file__).parents[2]


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    """The 48-molecule QM9 subset, processed once for every worker."""
    from molgnn.training import TrainConfig
    from molgnn.training.data import load_dataset

    root = tmp_path_factory.mktemp("qm9")
    load_dataset(TrainConfig(subset=48, data_root=str(root)))
    return root


def run_worker(store: Path, uri: str, data_root: Path, kill: str | None):
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
        "MLFLOW_DISABLE_TELEMETRY": "true",
    }
    env.pop("MLFLOW_TRACKING_URI", None)
    args = [sys.executable, __file__, str(store), uri, str(data_root)] + ([kill] if kill else [])
    return subprocess.run(args, capture_output=True, text=True, env=env, timeout=300)


def state(root: Path, uri: str) -> tuple[int, int, int]:
    """(store models, MLflow versions, store links), after checking everything committed is
    whole and nothing is registered twice."""
    store = Store(root, readonly=True)
    try:
        assert store.verify() == []
        models, links = store.models(), store.mlflow_versions(uri, NAME)
    finally:
        store.close()
    client = MlflowClient(uri)
    found = client.search_registered_models()
    if not found:
        return len(models), 0, len(links)
    mvs = client.search_model_versions(f"name='{NAME}'")
    shas = [mv.tags["molgnn.checkpoint_sha256"] for mv in mvs]
    assert len(set(shas)) == len(shas), "a model was registered twice"
    assert set(shas) <= {m.checkpoint_sha256 for m in models}, "a version with no store model"
    by_number = {int(mv.version): mv for mv in mvs}
    by_id = {m.id: m for m in models}
    for link in links:  # every link the store holds is right
        mv = by_number[link.version]
        assert mv.tags["molgnn.checkpoint_sha256"] == by_id[link.model].checkpoint_sha256
        assert mv.run_id == link.run_id
    return len(models), len(mvs), len(links)


@pytest.mark.slow
def test_sigkill_around_each_registry_write_then_restart(tmp_path, data_root):
    root = tmp_path / "store"
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    # In order, these kill: after the store registered model 1, before MLflow did; after MLflow
    # registered model 2, before the store recorded it (the restart's reconcile made link 1);
    # while the run of model 3 logs its model; after MLflow created model 3's version, before
    # the champion decision.
    kills = ["register:1", "link:2", "finish:1", "decide:1"]
    progress, outputs = [], []
    for kill in kills:
        result = run_worker(root, uri, data_root, kill)
        assert result.returncode == -signal.SIGKILL, (kill, result.stdout, result.stderr)
        progress.append(state(root, uri))
        outputs.append(result.stdout)
    # (store models, MLflow versions, links) after each kill: each hit its aim, nothing lost.
    assert progress == [(1, 0, 0), (2, 2, 1), (2, 2, 2), (3, 3, 2)]
    assert f"MLflow: registered store model 1 as {NAME} v1 from its run" in outputs[1]
    assert f"MLflow: recorded that store model 2 is {NAME} v2" in outputs[2]
    assert "MLflow: marked run" in outputs[3] and "KILLED" in outputs[3]
    final = run_worker(root, uri, data_root, None)
    assert final.returncode == 0, final.stderr
    assert f"MLflow: made the interrupted champion decision of {NAME} v3" in final.stdout
    assert state(root, uri) == (3, 3, 3)

    store = Store(root, readonly=True)
    models, links = store.models(), store.mlflow_versions(uri, NAME)
    client = MlflowClient(uri)
    mvs = sorted(client.search_model_versions(f"name='{NAME}'"), key=lambda mv: int(mv.version))
    # Store model k is version k, linked both ways, each with its data version.
    assert [(link.model, link.version) for link in links] == [(1, 1), (2, 2), (3, 3)]
    for model, mv in zip(models, mvs, strict=True):
        assert mv.tags["molgnn.store_model"] == str(model.id)
        assert mv.tags["molgnn.data_version"] == model.data_version
        assert mv.tags["molgnn.checkpoint_sha256"] == model.checkpoint_sha256
        assert float(mv.tags["molgnn.test_mae"]) == model.test_mae
        assert "molgnn.champion_decision" in mv.tags
    # The champion is where the rule puts it: strictly better test MAEs, in order.
    best = None
    for model, mv in zip(models, mvs, strict=True):
        if best is None or model.test_mae < best[0]:
            best = (model.test_mae, int(mv.version))
    assert client.get_model_version_by_alias(NAME, "champion").version == best[1]
    # One finished run per registered model; the killed retrain's run is marked KILLED.
    experiment = client.get_experiment_by_name("molgnn-online")
    runs = client.search_runs([experiment.experiment_id])
    finished = [r for r in runs if r.info.status == "FINISHED"]
    assert sorted(r.info.run_id for r in finished) == sorted(mv.run_id for mv in mvs)
    assert [r.info.status for r in runs if r not in finished] == ["KILLED"]
    store.close()


@pytest.mark.slow
def test_tracking_turned_on_later_registers_every_model(tmp_path, data_root):
    """A store trained without MLflow: its models are registered from recovered runs."""
    root = tmp_path / "store"
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    from molgnn.online import run_online

    run_online(online_config(str(root), None, str(data_root), max_chunks=2), verbose=False)
    assert state(root, uri) == (2, 0, 0)
    store = run_online(online_config(str(root), uri, str(data_root), max_chunks=0), verbose=False)
    store.close()
    assert state(root, uri) == (2, 2, 2)
    client = MlflowClient(uri)
    for mv in client.search_model_versions(f"name='{NAME}'"):
        run = client.get_run(mv.run_id)
        assert run.info.run_name.endswith("(recovered)") and run.info.status == "FINISHED"
        assert run.data.tags["molgnn.checkpoint_sha256"] == mv.tags["molgnn.checkpoint_sha256"]
    # running again registers nothing twice
    store = run_online(online_config(str(root), uri, str(data_root), max_chunks=0), verbose=False)
    store.close()
    assert state(root, uri) == (2, 2, 2)
