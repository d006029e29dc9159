"""Bad and unusual input through ``molgnn.predict`` and ``molgnn.load`` (issue 20).

Every case asserts the exception type or the per-molecule warning/error, the names the message
must contain, and that no traceback text leaks into the message. Models are tiny and untrained
(built from a config and written with :func:`molgnn.io.save_checkpoint`), so the module runs in
seconds.
"""

import json
import math
import pickle
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch_geometric.data import Data

import molgnn
from molgnn.inference import molecule_from_smiles, training_max_atoms
from molgnn.io import save_checkpoint
from molgnn.models import build_model
from molgnn.nn.radius import radius_graph, record_truncation

sys.path.insert(0, str(Path(__file__).parent))
from inference_battery import LONG_SMILES, TINY, WATER, WATER_POS, raises, tiny_payload


def _payload(target="gap", unit="eV", data=None, config=None, seed=0):
    return tiny_payload((target,), (unit,), data=data, config=config, seed=seed)


def _checkpoint(path, **kwargs):
    save_checkpoint(_payload(**kwargs), path)
    return path


@pytest.fixture
def model(tmp_path):
    return molgnn.load(_checkpoint(tmp_path / "gap.ckpt"))


def water(**extra):
    return Data(z=torch.tensor([8, 1, 1]), pos=WATER_POS.clone(), **extra)


def grid_cloud(n=200, spacing=1.6, seed=0):
    """``n`` atoms on a jittered grid: no two closer than about 1.2 Å, hundreds of neighbours."""
    rng = np.random.default_rng(seed)
    grid = np.stack(np.meshgrid(*[np.arange(6) * spacing] * 3), -1).reshape(-1, 3)[:n]
    pos = torch.tensor(grid + rng.normal(0, 0.1, grid.shape), dtype=torch.float32)
    z = torch.tensor([6, 1, 8, 7] * (n // 4) + [6] * (n % 4))
    return Data(z=z, pos=pos, name="cloud")


# --- inputs that are not a molecule: ValueError / FileNotFoundError naming the problem ---------


def test_smiles_longer_than_a_file_name_is_read_as_smiles(model):
    pytest.importorskip("rdkit")
    assert len(LONG_SMILES) >= 256
    result = molgnn.predict(model, LONG_SMILES)
    assert result.values.shape == (1, 1) and math.isfinite(float(result.values[0, 0]))
    assert result.generated_geometry == [True]
    assert any("more than the largest training molecule" in w for w in result.warnings[0])


def test_long_unparsable_smiles_names_it_shortened(model):
    pytest.importorskip("rdkit")
    text = "C" * 300 + "("
    raises(ValueError, lambda: molgnn.predict(model, text), "cannot parse", "301 characters")


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("C1CC(", ["cannot parse", "C1CC(", "no file of that name"]),
        ("mol.txt", ["cannot parse", "mol.txt", "no file of that name"]),
        ("C\x00C", ["cannot parse"]),
        ("[NH4]", ["rejects", "[NH4]", "valence"]),
        ("C.C", ["C.C", "2 disconnected fragments"]),
    ],
    ids=["syntax", "missing-non-xyz-file", "nul-byte", "valence", "fragments"],
)
def test_bad_smiles(model, text, names):
    pytest.importorskip("rdkit")
    raises(ValueError, lambda: molgnn.predict(model, text), *names)


def test_empty_string(model):
    raises(ValueError, lambda: molgnn.predict(model, ["CCO", ""]), "molecule 1", "empty string")


def test_folder(model, tmp_path):
    raises(ValueError, lambda: molgnn.predict(model, str(tmp_path)), str(tmp_path), "folder")


def test_missing_xyz_file(model, tmp_path):
    missing = str(tmp_path / "nope.xyz")
    raises(FileNotFoundError, lambda: molgnn.predict(model, missing), "nope.xyz")


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("3\nx\nO 0 0 0\nH 1 0 0\n", ["line 5", "truncated", "says 3 atoms, found 2"]),
        ("3\n", ["line 1", "truncated", "no comment line"]),
        ("three\nx\nO 0 0 0\n", ["line 1", "expected the number of atoms", "three"]),
        ("2\nx\nO 0 0 0\nH nan 0 0\n", ["line 4", "NaN or infinite"]),
        ("2\nx\nO 0 0 0\nH 1e999 0 0\n", ["line 4", "NaN or infinite"]),
        ("2\nx\nO 0 0 0\nH 1,0 0 0\n", ["line 4", "cannot read coordinate"]),
        ("2\nx\nO 0 0 0\nQq 1 0 0\n", ["line 4", "unknown element 'Qq'"]),
        ("2\nx\nO 0 0 0\n0 1 0 0\n", ["line 4", "atomic number 0 is not an element"]),
        ("0\nempty\n", ["line 1", "empty molecule"]),
        ("", ["no molecule found"]),
        ("2\nx\nO 0 0 0\nH\n", ["line 4", "expected 'element x y z'"]),
        ("x" * 500 + "\n", ["line 1", "500 characters"]),
        ("\u00b3\nx\nO 0 0 0\n", ["line 1", "expected the number of atoms"]),
    ],
    ids=[
        "truncated-atoms",
        "truncated-comment",
        "count-not-a-number",
        "nan",
        "inf",
        "comma-decimal",
        "unknown-element",
        "atomic-number-0",
        "empty-molecule",
        "empty-file",
        "short-atom-line",
        "garbage-long-line",
        "unicode-digit-count",
    ],
)
def test_bad_xyz_names_file_and_line(model, tmp_path, text, names):
    path = tmp_path / "bad.xyz"
    path.write_text(text, encoding="utf-8")
    message = raises(ValueError, lambda: molgnn.predict(model, str(path)), *names)
    assert str(path) in message


@pytest.mark.parametrize(
    "content", [bytes(range(256)) * 4, b"\x00" * 64], ids=["binary", "nul-bytes"]
)
def test_binary_xyz_is_not_a_text_file(model, tmp_path, content):
    path = tmp_path / "binary.xyz"
    path.write_bytes(content)
    raises(ValueError, lambda: molgnn.predict(model, str(path)), "binary.xyz", "not a text file")


@pytest.mark.parametrize(
    ("mol", "names"),
    [
        (Data(z=torch.tensor([], dtype=torch.long), pos=torch.zeros(0, 3)), ["no atoms"]),
        (water(name="w").update({"pos": WATER_POS[:2]}), ["w", "pos has shape [2, 3]"]),
        (Data(z=torch.tensor([8.0, 1, 1]), pos=WATER_POS, name="w"), ["w", "integer atomic"]),
        (Data(z=torch.tensor([0, 1, 1]), pos=WATER_POS, name="w"), ["w", "0", "not elements"]),
        (Data(z=torch.tensor([200, 1, 1]), pos=WATER_POS, name="w"), ["200", "not elements"]),
        (Data(z=torch.tensor([16, 1, 1]), pos=WATER_POS, name="w"), ["w", "S never seen"]),
        (Data(z=torch.tensor([92, 1, 1]), pos=WATER_POS, name="w"), ["U never seen", "H, C"]),
    ],
    ids=["empty", "pos-shape", "float-z", "z-0", "z-200", "sulfur", "uranium"],
)
def test_bad_data_molecules(model, mol, names):
    raises(ValueError, lambda: molgnn.predict(model, mol), *names)


def test_nan_coordinates_name_the_atom(model):
    mol = water(name="wet")
    mol.pos[1, 2] = float("nan")
    raises(ValueError, lambda: molgnn.predict(model, mol), "wet", "NaN or infinite", "atom 2")


def test_atoms_too_close_are_named(model):
    mol = water(name="squashed")
    mol.pos[1] = torch.tensor([0.01, 0.0, 0.0])
    raises(
        ValueError,
        lambda: molgnn.predict(model, mol),
        "squashed",
        "atoms 1 (O) and 2 (H)",
        "0.01 Å apart",
    )
    # The limit is an argument; 0 turns the check off.
    assert molgnn.predict(model, mol, min_distance=0.0).values.shape == (1, 1)
    raises(ValueError, lambda: molgnn.predict(model, water(), min_distance=1.0), "1.0 Å")


def test_close_atoms_in_xyz_are_refused_by_predict(model, tmp_path):
    path = tmp_path / "close.xyz"
    path.write_text("2\nx\nO 0 0 0\nH 0.01 0 0\n")
    raises(ValueError, lambda: molgnn.predict(model, str(path)), "close.xyz", "atoms 1 (O)")


@pytest.mark.parametrize("batch_size", [-1, 0, True, 2.5], ids=["-1", "0", "bool", "float"])
def test_bad_batch_size(model, batch_size):
    raises(ValueError, lambda: molgnn.predict(model, water(), batch_size=batch_size), "batch_size")


def test_bad_device_and_type(model):
    raises(ValueError, lambda: molgnn.predict(model, water(), device="nonsense"), "device")
    raises(ValueError, lambda: molgnn.predict(model, [water(), 5]), "molecule 1", "int")
    raises(ValueError, lambda: molgnn.predict(model, water(), min_distance=-1), "min_distance")


# --- predictions outside the training data: a warning per molecule ------------------------------


def test_neutral_closed_shell_molecule_has_no_warning(model, tmp_path):
    path = tmp_path / "water.xyz"
    path.write_text(WATER)
    result = molgnn.predict(model, [str(path), water()])
    assert result.warnings == [[], []] and result.errors == [None, None]
    records = result.to_records()
    assert records[0]["warnings"] == [] and "error" not in records[0]
    assert records[0]["generated_geometry"] is False


def test_neighbour_truncation_is_reported_per_molecule(model):
    cloud = grid_cloud()
    result = molgnn.predict(model, [water(), cloud], batch_size=2)
    assert result.warnings[0] == []
    (truncated,) = [w for w in result.warnings[1] if "neighbour list truncated" in w]
    assert "max_num_neighbors" in truncated and "nearest 16" in truncated
    full = radius_graph(cloud.pos, 5.0, loop=True, max_num_neighbors=None).size(1)
    kept = radius_graph(cloud.pos, 5.0, loop=True, max_num_neighbors=16).size(1)
    assert f"{full - kept} of {full} pairs" in truncated
    assert truncated in result.to_records()[1]["warnings"]
    raises(
        ValueError,
        lambda: molgnn.predict(model, cloud, strict=True),
        "cloud",
        "strict",
    )


def test_truncation_report_matches_the_dropped_edges():
    cloud = grid_cloud(120)
    pos = torch.cat([cloud.pos, WATER_POS + 100.0, cloud.pos + 200.0])
    batch = torch.tensor([0] * 120 + [1] * 3 + [2] * 120)
    with record_truncation() as report:
        kept = radius_graph(pos, 5.0, batch, max_num_neighbors=10).size(1)
    full = radius_graph(pos, 5.0, batch, max_num_neighbors=None).size(1)
    found = report.by_molecule()
    assert sorted(found) == [0, 2]  # the water molecule (1) is not truncated
    assert sum(t.dropped for t in found.values()) == full - kept
    assert all(t.max_num_neighbors == 10 and t.most_neighbors > 10 for t in found.values())
    assert radius_graph(pos, 5.0, batch, max_num_neighbors=10).size(1) == kept  # not recording


def test_molecules_larger_than_training_are_flagged(model):
    result = molgnn.predict(model, [water(), grid_cloud(20, spacing=2.0)])
    assert result.warnings[0] == []
    assert any(
        "20 atoms, more than the largest training molecule (14 atoms)" in w
        for w in result.warnings[1]
    )


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"dataset": "QM9", "elements": [1, 6, 7, 8]}, 29),
        ({"dataset": "ListDataset", "elements": [1, 6, 7, 8]}, None),
        ({"dataset": "QM9", "elements": [1, 6, 7, 8], "max_atoms": 9}, 9),
    ],
    ids=["old-qm9", "old-other", "recorded"],
)
def test_largest_training_molecule_from_the_checkpoint(tmp_path, data, expected):
    model = molgnn.load(_checkpoint(tmp_path / "m.ckpt", data=data))
    assert training_max_atoms(model) == expected
    warned = molgnn.predict(model, grid_cloud(40, spacing=2.0)).warnings[0]
    assert any("more than the largest training molecule" in w for w in warned) == (
        expected is not None
    )


@pytest.mark.parametrize(
    ("smiles", "names"),
    [
        ("[NH4+]", ["net charge +1", "neutral"]),
        ("CC(=O)[O-]", ["net charge -1"]),
        ("[CH3]", ["1 unpaired electron", "radical"]),
        ("[CH2]", ["2 unpaired electron"]),
    ],
    ids=["cation", "anion", "radical", "carbene"],
)
def test_charged_and_radical_smiles_are_flagged(model, smiles, names):
    pytest.importorskip("rdkit")
    result = molgnn.predict(model, smiles)
    (warning,) = result.warnings[0]
    assert all(name in warning for name in names), warning
    assert result.to_records()[0]["warnings"] == [warning]
    raises(ValueError, lambda: molgnn.predict(model, smiles, strict=True), smiles, "strict")


def test_smiles_record_survives_being_passed_as_data(model):
    pytest.importorskip("rdkit")
    mol = molecule_from_smiles("[NH4+]")  # as the HTTP server does
    result = molgnn.predict(model, mol)
    assert result.generated_geometry == [True]
    assert result.to_records()[0]["generated_geometry"] is True
    assert any("net charge +1" in w for w in result.warnings[0])


def test_odd_electron_geometry_is_flagged(model, tmp_path):
    path = tmp_path / "oh.xyz"
    path.write_text("2\nhydroxyl\nO 0 0 0\nH 0.97 0 0\n")
    (warning,) = molgnn.predict(model, str(path)).warnings[0]
    assert "odd number of electrons (9)" in warning and "radical or an ion" in warning


def test_ase_atoms_with_charges_are_flagged(model):
    ase = pytest.importorskip("ase")
    atoms = ase.Atoms("OH2", positions=WATER_POS.numpy(), charges=[-1.0, 0.0, 0.0])
    (warning,) = molgnn.predict(model, atoms).warnings[0]
    assert "net charge -1" in warning


# --- a damaged model: null plus an error message --------------------------------------------


def test_nan_weights_give_null_and_an_error(tmp_path):
    payload = _payload()
    payload["state_dict"] = {
        k: v * float("nan") if v.is_floating_point() else v
        for k, v in payload["state_dict"].items()
    }
    save_checkpoint(payload, tmp_path / "nan.ckpt")
    model = molgnn.load(tmp_path / "nan.ckpt")
    result = molgnn.predict(model, [water(name="a"), water(name="b")])
    records = result.to_records()
    assert [r["gap"] for r in records] == [None, None]
    assert all("non-finite" in r["error"] and "weights" in r["error"] for r in records)
    text = json.dumps(records, allow_nan=False)  # strict JSON
    assert '"gap": null' in text and json.loads(text)[0]["gap"] is None
    raises(
        ValueError, lambda: molgnn.predict(model, water(name="a"), strict=True), "a", "non-finite"
    )


# --- models that differ from the default ------------------------------------------------------


def test_float64_and_force_models_predict(model):
    expected = molgnn.predict(model, water()).values
    model.double()  # as the ASE calculator leaves it
    assert torch.allclose(molgnn.predict(model, water()).values, expected, atol=1e-5)
    forces = build_model({**TINY, "derivative": True})
    assert molgnn.predict(forces, water()).values.shape == (1, 1)


def test_batched_predictions_keep_per_molecule_flags(model, tmp_path):
    path = tmp_path / "two.xyz"
    path.write_text(WATER + "\n" + "2\nhydroxyl\nO 0 0 0\nH 0.97 0 0\n")
    result = molgnn.predict(model, [str(path), grid_cloud()], batch_size=2)
    assert result.names == [f"{path}[0]", f"{path}[1]", "cloud"]
    assert result.warnings[0] == [] and len(result.warnings[1]) == 1
    assert any("truncated" in w for w in result.warnings[2])


# --- the model's own input check: batch ids ---------------------------------------------------


@pytest.mark.parametrize(
    ("batch", "names"),
    [
        (torch.tensor([0, 0, 2, 2]), ["without gaps", "1", "no atoms"]),
        (torch.tensor([1, 1, 1, 1]), ["without gaps", "0"]),
        (torch.tensor([0, 0, -1, -1]), ["negative"]),
        (torch.tensor([0.0, 0.0, 1.0, 1.0]), ["integer molecule indices"]),
        (torch.tensor([0, 0, 1]), ["batch must have shape [4]"]),
    ],
    ids=["gap", "no-zero", "negative", "float", "shape"],
)
def test_batch_ids_must_number_molecules_without_gaps(model, batch, names):
    z = torch.tensor([1, 1, 1, 1])
    pos = torch.tensor([[0.0, 0, 0], [0.74, 0, 0], [5.0, 0, 0], [5.74, 0, 0]])
    raises(ValueError, lambda: model(z, pos, batch), *names)
    assert model(z, pos, torch.tensor([0, 0, 1, 1])).shape == (2, 1)


# --- checkpoints: molgnn.load -----------------------------------------------------------------


def _unsafe(path):
    class Exploit:
        def __reduce__(self):
            return (print, ("unpickled!",))

    torch.save({"format": "molgnn-checkpoint", "x": Exploit()}, path)


def _legacy_pickle(path):
    with open(path, "wb") as f:
        pickle.dump({"format": "molgnn-checkpoint", "x": Data()}, f, protocol=4)


def _truncated(path):
    save_checkpoint(_payload(), path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _mismatched(path):
    payload = _payload()
    payload["model_config"] = {**payload["model_config"], "hidden_channels": 16}
    save_checkpoint(payload, path)


def _without(key):
    def write(path):
        payload = _payload()
        del payload[key]
        save_checkpoint(payload, path)

    return write


@pytest.mark.parametrize(
    ("write", "names"),
    [
        (lambda p: p.write_text("garbage"), ["not a molgnn checkpoint", "neither a zip"]),
        (lambda p: p.write_bytes(b""), ["not a molgnn checkpoint", "empty file"]),
        (_truncated, ["not a readable checkpoint", "truncated or corrupt"]),
        (lambda p: torch.save([1, 2], p), ["not a molgnn checkpoint", "format"]),
        (_unsafe, ["pickled Python objects", "weights_only", "GLOBAL"]),
        (_legacy_pickle, ["pickled Python objects", "weights_only"]),
        (
            _mismatched,
            ["weights do not fit", "wrong shape", "checkpoint [100, 8], model [100, 16]"],
        ),
        (_without("model_config"), ["no 'model_config'"]),
        (_without("state_dict"), ["no 'state_dict'"]),
        (
            lambda p: save_checkpoint({**_payload(), "model_config": {"kind": "nope"}}, p),
            ["model_config does not build a model", "nope"],
        ),
    ],
    ids=[
        "text",
        "empty",
        "truncated",
        "foreign-torch-file",
        "unsafe-pickle",
        "legacy-pickle",
        "state-dict-mismatch",
        "no-model-config",
        "no-state-dict",
        "unknown-kind",
    ],
)
def test_bad_checkpoints(tmp_path, capsys, write, names):
    path = tmp_path / "bad.ckpt"
    write(path)
    raises(ValueError, lambda: molgnn.load(path), str(path), *names)
    assert "unpickled!" not in capsys.readouterr().out


def test_missing_checkpoint_and_folder(tmp_path):
    raises(FileNotFoundError, lambda: molgnn.load(tmp_path / "none.ckpt"), "none.ckpt")
    raises(ValueError, lambda: molgnn.load(tmp_path), str(tmp_path), "folder")
