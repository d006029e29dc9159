import importlib.util
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from molgnn.inference import load
from molgnn.io import file_sha256
from molgnn.online import EveryChunkTrigger, Store, run_online

sys.path.insert(0, str(Path(__file__).parent))
import online_worker as worker

SIZES = [20, 30, 40, 50, 54]  # 70 molecules - 16 held out, released as 20 + 10 + 10 + 10 + 4
TRAINED = [20, 30, 50]  # growth 0.5: 20 -> (>= 30) 30 -> (>= 45) 50 -> (>= 75) never


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    root = tmp_path_factory.mktemp("ref") / "store"
    store = run_online(worker.config(str(root)), source=worker.source(), verbose=False)
    return store


def test_loop_versions_models_and_lineage(reference):
    store = reference
    versions = store.versions()
    assert [v.size for v in versions] == SIZES
    assert [v.parent for v in versions] == [None] + [v.id for v in versions[:-1]]
    models = store.models()
    sizes = {v.id: v.size for v in versions}
    assert [sizes[m.data_version] for m in models] == TRAINED
    assert [m.parent_model for m in models] == [None, models[0].id, models[1].id]
    assert [m.warm_start for m in models] == [False, True, True]
    assert [m.id for m in store.lineage(models[2].id)] == [m.id for m in reversed(models)]
    assert store.verify() == []
    for m in models:
        assert m.metrics["data_size"] == sizes[m.data_version]
        assert m.val_mae is not None and m.test_mae is not None and m.test_mae > 0
        assert m.config["kind"] == "et" and m.config["hidden_channels"] == 8
        assert m.hyperparameters["epochs"] == 1 and m.hyperparameters["target"] == "gap"
        path = store.root / m.checkpoint
        assert file_sha256(path) == m.checkpoint_sha256 == path.stem
    model = load(store.root / models[-1].checkpoint)
    assert model.checkpoint_info["data"]["version"] == models[-1].data_version
    mol = worker.source(1)[0]
    with torch.no_grad():
        assert model(mol.z, mol.pos).shape == (1, 1)
    # the held-out molecules are fixed and never part of a version
    held = {m.mol_id for m in store.molecules("val") + store.molecules("test")}
    assert len(held) == 16
    assert not held & {mid for mid, _ in store.manifest(versions[-1])}
    if importlib.util.find_spec("matplotlib") is not None:
        assert (store.root / "learning_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(store.root.glob(".work-*"))


def test_stop_and_restart_matches_uninterrupted_run(reference, tmp_path):
    config = worker.config(str(tmp_path / "s"))
    for max_chunks in (1, 2, 1):
        run_online(replace(config, max_chunks=max_chunks), source=worker.source(), verbose=False)
    store = run_online(config, source=worker.source(), verbose=False)
    assert [v.id for v in store.versions()] == [v.id for v in reference.versions()]
    assert [m.data_version for m in store.models()] == [m.data_version for m in reference.models()]
    # Running again on an exhausted source changes nothing.
    again = run_online(config, source=worker.source(), verbose=False)
    assert len(again.versions()) == len(SIZES) and len(again.models()) == len(TRAINED)


def test_from_scratch_and_other_trigger(tmp_path):
    config = replace(worker.config(str(tmp_path / "s")), warm_start=False)
    store = run_online(config, source=worker.source(40), trigger=EveryChunkTrigger(), verbose=False)
    sizes = {v.id: v.size for v in store.versions()}
    assert [v.size for v in store.versions()] == [20, 24]
    assert [sizes[m.data_version] for m in store.models()] == [20, 24]
    assert all(m.parent_model is None and not m.warm_start for m in store.models())


def test_iterator_source_holds_out_first_and_resumes(tmp_path):
    mols = worker.source(46)
    config = worker.config(str(tmp_path / "s"))
    run_online(replace(config, max_chunks=1), source=iter(mols), verbose=False)
    store = run_online(config, source=iter(mols), verbose=False)  # replays from the start
    assert {m.mol_id for m in store.molecules("val")} == {m.mol_id for m in mols[:8]}
    assert {m.mol_id for m in store.molecules("test")} == {m.mol_id for m in mols[8:16]}
    assert [v.size for v in store.versions()] == [20, 30]
    manifest = [mid for mid, _ in store.manifest(store.versions()[-1])]
    assert manifest == sorted(m.mol_id for m in mols[16:])
    assert store.verify() == []


def test_store_refuses_other_data_settings_and_small_sources(tmp_path):
    config = worker.config(str(tmp_path / "s"))
    run_online(
        config.replace(max_chunks=1, **{"train.epochs": 1}), source=worker.source(), verbose=False
    )
    with pytest.raises(ValueError, match="val"):
        run_online(config.replace(val=9), source=worker.source(), verbose=False)
    with pytest.raises(ValueError, match="val \\+ test \\+ initial need 36"):
        run_online(worker.config(str(tmp_path / "t")), source=worker.source(30), verbose=False)
    with pytest.raises(ValueError, match="ended after 5"):
        run_online(worker.config(str(tmp_path / "u")), source=iter(worker.source(5)), verbose=False)
    with pytest.raises(ValueError, match="exceed"):
        config.replace(**{"train.subset": 20})
    for field, bad in (("growth", 0.0), ("growth", float("nan")), ("chunk", 0), ("lr", -1.0)):
        with pytest.raises(ValueError, match=field):
            config.with_assignments([f"{field}={bad}"])  # lr is train.lr, written flat


def test_lock_refuses_a_second_writer(tmp_path):
    config = worker.config(str(tmp_path / "s"))
    store = Store(config.store)
    with store.lock(), pytest.raises(ValueError, match="another process"):
        run_online(config, source=worker.source(), verbose=False)
