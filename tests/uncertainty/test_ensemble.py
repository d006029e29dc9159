"""Deep ensembles and MC dropout through molgnn.predict, the CLI and the HTTP server."""

import copy
import json
import pickle
from pathlib import Path

import pytest
import torch
from torch_geometric.data import Data

import molgnn
from molgnn.data import QM9
from molgnn.models import model_config
from molgnn.testing import random_molecule
from molgnn.training import TrainConfig
from molgnn.uncertainty import Ensemble, dropout_layers, mc_dropout, train_ensemble

SMALL = {"preset": "et-small", "hidden_channels": 16, "num_layers": 1, "num_heads": 2, "num_rbf": 8}
POOLED = {"preset": "pooled", "hidden_channels": 16, "num_layers": 2, "num_rbf": 8}
REPO = Path(__file__).parents[2]
WATER = "3\nwater\nO 0 0 0\nH 0.96 0 0\nH -0.24 0.93 0\n"
WATER_DATA = Data(
    z=torch.tensor([8, 1, 1]), pos=torch.tensor([[0.0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0]])
)


def tiny(seed: int, **changes: object) -> torch.nn.Module:
    torch.manual_seed(seed)
    return model_config({**SMALL, **changes}).build().eval()


def cluster(molecules: list[Data], spacing: float = 8.0) -> Data:
    """One large 'molecule': the given QM9 molecules side by side, ``spacing`` Å apart."""
    z = torch.cat([m.z for m in molecules])
    pos = torch.cat(
        [
            m.pos - m.pos.mean(0) + torch.tensor([spacing * k, 0.0, 0.0])
            for k, m in enumerate(molecules)
        ]
    )
    return Data(z=z, pos=pos)


@pytest.fixture(scope="module")
def trained_members(tmp_path_factory):
    """Two small ETs trained on the 30-molecule QM9 fixture with seeds 0 and 1."""
    monkeypatch = pytest.MonkeyPatch()
    monkeypatch.setenv("MOLGNN_QM9PACK_DIR", str(REPO / "tests" / "fixtures" / "qm9pack"))
    root = tmp_path_factory.mktemp("ensemble")
    config = TrainConfig(
        model=SMALL, subset=30, epochs=2, data_root=str(root / "qm9"), out_dir=str(root / "run")
    )
    ensemble = train_ensemble(config, members=2, verbose=False)
    dataset = QM9(str(root / "qm9"), target="gap", subset=30, subset_seed=0)
    yield ensemble, [dataset[i] for i in range(len(dataset))]
    monkeypatch.undo()


def test_std_is_zero_when_all_members_are_equal():
    model = tiny(0)
    ensemble = Ensemble([model, copy.deepcopy(model), copy.deepcopy(model)])
    mols = [random_molecule(5 + i, seed=i) for i in range(4)]
    result = molgnn.predict(ensemble, mols)
    assert result.std is not None and result.std.shape == (4, 1)
    assert torch.equal(result.std, torch.zeros(4, 1))
    assert torch.allclose(result.values, molgnn.predict(model, mols).values)
    assert molgnn.predict(model, mols).std is None  # a single model: no uncertainty


def test_std_grows_on_a_molecule_far_outside_qm9(trained_members):
    ensemble, qm9 = trained_members
    assert ensemble.sources and all(Path(s).name == "best.ckpt" for s in ensemble.sources)
    inside = molgnn.predict(ensemble, qm9)
    # Five clusters of six QM9 molecules each: 80-110 atoms, far beyond QM9's 29.
    big = [cluster([qm9[(6 * k + j) % len(qm9)] for j in range(6)]) for k in range(5)]
    outside = molgnn.predict(ensemble, big)
    assert all(any("atoms" in w for w in ws) for ws in outside.warnings)  # size warning too
    assert outside.std.mean() > 3 * inside.std.mean(), (outside.std, inside.std.mean())
    # The prediction is the members' mean.
    mol = qm9[0]
    members = torch.stack([m(mol.z, mol.pos) for m in ensemble.members])
    assert torch.allclose(inside.values[0], members.mean(0)[0], atol=1e-5)
    assert torch.allclose(inside.std[0], members.std(0)[0], atol=1e-5)


def test_records_carry_the_std_as_strict_json(trained_members):
    ensemble, qm9 = trained_members
    records = molgnn.predict(ensemble, qm9[:3]).to_records()
    text = json.dumps(records, allow_nan=False)
    for record in json.loads(text):
        assert set(record["std"]) == {"gap"} and record["std"]["gap"] > 0
        assert record["units"] == {"gap": "eV"}


def test_members_must_agree_on_the_target():
    a, b = tiny(0), tiny(1)
    a.checkpoint_info = {"target": {"names": ["gap"], "units": ["eV"]}}
    b.checkpoint_info = {"target": {"names": ["homo"], "units": ["eV"]}}
    with pytest.raises(ValueError, match="same targets"):
        Ensemble([a, b])
    with pytest.raises(ValueError, match="at least 2"):
        Ensemble([a])


def test_ensemble_refuses_an_element_one_member_never_saw():
    a, b = tiny(0), tiny(1)
    a.checkpoint_info = {"data": {"elements": [1, 6, 8]}}
    b.checkpoint_info = {"data": {"elements": [1, 6]}}
    with pytest.raises(ValueError, match="O"):
        molgnn.predict(Ensemble([a, b]), WATER_DATA)


def test_mc_dropout_samples_a_std_and_restores_the_model():
    torch.manual_seed(0)
    model = model_config({**POOLED, "dropout": 0.2}).build().eval()
    mols = [random_molecule(6, seed=i) for i in range(3)]
    first = molgnn.predict(model, mols, mc_dropout_samples=8)
    again = molgnn.predict(model, mols, mc_dropout_samples=8)
    other = molgnn.predict(model, mols, mc_dropout_samples=8, seed=1)
    assert first.std is not None and (first.std > 0).all()
    assert torch.equal(first.std, again.std)  # seeded
    assert not torch.equal(first.std, other.std)
    assert not model.training and all(not m.training for m in dropout_layers(model))
    # Without MC dropout the model is deterministic again.
    assert torch.equal(molgnn.predict(model, mols).values, molgnn.predict(model, mols).values)
    with mc_dropout(model) as layers:
        assert layers and all(m.training for m in layers) and not model.training


def test_mc_dropout_needs_dropout_layers():
    for model in (tiny(0), model_config({**POOLED, "dropout": 0.0}).build()):
        with pytest.raises(ValueError, match="MC dropout needs dropout layers"):
            molgnn.predict(model, random_molecule(5, seed=0), mc_dropout_samples=4)
    with pytest.raises(ValueError, match="Ensemble or a model with dropout"):
        molgnn.predict(tiny(0), random_molecule(5, seed=0), uncertainty=True)
    with pytest.raises(ValueError, match=r"integer >= 2"):
        molgnn.predict(
            model_config({**POOLED, "dropout": 0.1}).build(),
            random_molecule(5),
            mc_dropout_samples=1,
        )


def run_cli(capsys, *argv):
    from molgnn.cli import main

    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_predict_with_members_prints_the_std(trained_members, tmp_path, capsys):
    ensemble, _ = trained_members
    first, second = ensemble.sources
    xyz = tmp_path / "water.xyz"
    xyz.write_text(WATER)
    expected = molgnn.predict(Ensemble.from_checkpoints([first, second]), str(xyz))
    code, out, err = run_cli(
        capsys, "predict", first, xyz, "--member", second, "--uncertainty", "--json"
    )
    assert code == 0, err
    (record,) = json.loads(out)
    assert record["gap"] == pytest.approx(float(expected.values[0, 0]), abs=1e-5)
    assert record["std"]["gap"] == pytest.approx(float(expected.std[0, 0]), abs=1e-5)
    code, out, _ = run_cli(capsys, "predict", first, xyz, "--member", second, "--uncertainty")
    assert code == 0 and "± std" in out and f"± {float(expected.std[0, 0]):.5f}" in out
    code, out, _ = run_cli(capsys, "predict", first, xyz, "--member", second, "--json")
    assert code == 0 and "std" not in json.loads(out)[0]  # the mean, without --uncertainty
    assert json.loads(out)[0]["gap"] == pytest.approx(record["gap"], abs=1e-6)
    code, _, err = run_cli(capsys, "predict", first, xyz, "--uncertainty")
    assert code == 1 and "--member" in err and "Traceback" not in err
    code, _, err = run_cli(capsys, "predict", first, xyz, "--mc-dropout", "4")
    assert code == 1 and "MC dropout needs dropout layers" in err


def test_server_worker_answers_with_the_std(trained_members):
    from molgnn.inference._requests import Limits
    from molgnn.inference._work import run_request

    ensemble, _ = trained_members
    served = pickle.loads(pickle.dumps(ensemble))  # what create_app hands each worker
    limits = Limits(1_000_000, 10, 100, 100, 30.0)
    status, outcomes, _ = run_request(served, [(0, {"xyz": WATER, "name": "water"})], limits)
    ((record, failure),) = outcomes
    expected = molgnn.predict(ensemble, WATER_DATA)
    assert status == "ok" and failure is None
    assert record["gap"] == pytest.approx(float(expected.values[0, 0]), abs=1e-5)
    assert record["std"] == {"gap": pytest.approx(float(expected.std[0, 0]), abs=1e-5)}
    json.dumps(record, allow_nan=False)
