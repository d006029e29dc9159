"""Bad and unusual input through ``molgnn predict`` (and ``molgnn evaluate``'s checkpoint loading).

The cases of issue 20 that reached users as a traceback or as invalid JSON run as real
subprocesses, started together so that their import times overlap: the exit code, the names the
one-line message must contain, and no "Traceback". The other cases and their neighbours run
in-process through :func:`molgnn.cli.main`, with the same assertions.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from molgnn.cli import main
from molgnn.io import save_checkpoint

sys.path.insert(0, str(Path(__file__).parent))
from inference_battery import LONG_SMILES, WATER, tiny_payload


def _payload(**changes):
    payload = {**tiny_payload(), "train_config": {}}
    payload.update(changes)
    return {k: v for k, v in payload.items() if v is not None}


def _cloud_xyz(n=200):
    """``n`` atoms on a jittered 1.6 Å grid: far more neighbours than ``max_num_neighbors``."""
    gen = torch.Generator().manual_seed(0)
    grid = torch.stack(torch.meshgrid(*[torch.arange(6.0) * 1.6] * 3, indexing="ij"), -1)
    pos = grid.reshape(-1, 3)[:n] + 0.1 * torch.randn(n, 3, generator=gen)
    return f"{n}\ncloud\n" + "".join(f"C {x:.4f} {y:.4f} {z:.4f}\n" for x, y, z in pos.tolist())


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    good = root / "gap.ckpt"
    save_checkpoint(_payload(), good)
    mismatch = _payload()
    mismatch["model_config"] = {**mismatch["model_config"], "hidden_channels": 16}
    save_checkpoint(mismatch, root / "mismatch.ckpt")
    save_checkpoint(_payload(model_config=None), root / "noconfig.ckpt")
    nan = _payload()
    nan["state_dict"] = {
        k: v * float("nan") if v.is_floating_point() else v for k, v in nan["state_dict"].items()
    }
    save_checkpoint(nan, root / "nan.ckpt")
    save_checkpoint(_payload(train_config=None), root / "notrain.ckpt")
    (root / "garbage.ckpt").write_text("not a checkpoint\n")
    (root / "water.xyz").write_text(WATER)
    (root / "truncated.xyz").write_text("3\nx\nO 0 0 0\nH 1 0 0\n")
    (root / "sulfur.xyz").write_text("3\nh2s\nS 0 0 0\nH 1.34 0 0\nH 0 1.34 0\n")
    (root / "nan.xyz").write_text("2\nx\nO 0 0 0\nH nan 0 0\n")
    (root / "empty.xyz").write_text("0\nnothing\n")
    (root / "symbol.xyz").write_text("2\nx\nO 0 0 0\nXy 1 0 0\n")
    (root / "close.xyz").write_text("2\nx\nO 0 0 0\nH 0.01 0 0\n")
    (root / "garbage.xyz").write_bytes(bytes(range(256)) * 8)
    (root / "cloud.xyz").write_text(_cloud_xyz())
    return root


# Subprocess cases, the ones that reached users as tracebacks or invalid JSON:
# (arguments, exit code, names in the output).
PROCESS_CASES = {
    "long-smiles": (
        ["{gap}", LONG_SMILES],
        0,
        ["warning", "more than the largest training molecule"],
    ),
    "state-dict-mismatch": (
        ["{root}/mismatch.ckpt", "{root}/water.xyz"],
        1,
        ["mismatch.ckpt", "weights do not fit", "wrong shape"],
    ),
    "no-model-config": (
        ["{root}/noconfig.ckpt", "{root}/water.xyz"],
        1,
        ["noconfig.ckpt", "no 'model_config'"],
    ),
    "nan-model-json": (
        ["{root}/nan.ckpt", "{root}/water.xyz", "--json"],
        1,
        ['"gap": null', "non-finite prediction", "weights"],
    ),
}


@pytest.fixture(scope="module")
def processes(files):
    """Start every subprocess case at once; return {case: (exit code, stdout, stderr)}."""
    started = {}
    for case, (args, _, _) in PROCESS_CASES.items():
        argv = [a.format(gap=files / "gap.ckpt", root=files) for a in args]
        started[case] = subprocess.Popen(
            [sys.executable, "-m", "molgnn.cli", "predict", *argv],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
    results = {}
    for case, proc in started.items():
        out, err = proc.communicate(timeout=300)
        results[case] = (proc.returncode, out, err)
    return results


@pytest.mark.parametrize("case", list(PROCESS_CASES))
def test_predict_subprocess(processes, case):
    code, out, err = processes[case]
    _, expected_code, names = PROCESS_CASES[case]
    assert code == expected_code, err
    for name in names:
        assert name in out + err, f"{name!r} not in {out + err!r}"
    assert "Traceback" not in out + err
    if expected_code:
        assert err.count("error:") >= 1
    if "--json" in PROCESS_CASES[case][0]:
        assert json.loads(out)[0]["gap"] is None  # strict JSON: null, not NaN


def run_cli(capsys, *argv):
    """Run the CLI in-process: (exit code, stdout, stderr); argparse errors exit with 2."""
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exit_:
        code = exit_.code
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err


@pytest.mark.parametrize(
    ("molecule", "names"),
    [
        ("{root}/missing.xyz", ["no XYZ file at", "missing.xyz"]),
        ("{root}/truncated.xyz", ["truncated.xyz", "line 5", "says 3 atoms, found 2"]),
        ("{root}/sulfur.xyz", ["sulfur.xyz", "S never seen in training"]),
        ("{root}/nan.xyz", ["nan.xyz", "line 4", "NaN or infinite"]),
        ("{root}/empty.xyz", ["empty.xyz", "line 1", "empty molecule"]),
        ("{root}/symbol.xyz", ["symbol.xyz", "line 4", "unknown element 'Xy'"]),
        ("{root}/close.xyz", ["close.xyz", "atoms 1 (O) and 2 (H)", "0.01 Å"]),
        ("{root}/garbage.xyz", ["garbage.xyz", "not a text file"]),
        ("{root}", ["is a folder"]),
        ("C1CC(", ["cannot parse", "C1CC("]),
        ("C.C", ["2 disconnected fragments"]),
        ("", ["empty string"]),
    ],
    ids=[
        "missing-file",
        "truncated-xyz",
        "unseen-element",
        "nan-coordinates",
        "empty-molecule",
        "unknown-symbol",
        "atoms-too-close",
        "binary-xyz",
        "folder",
        "bad-smiles",
        "fragments",
        "empty-string",
    ],
)
def test_bad_molecules_exit_1_with_one_line(files, capsys, molecule, names):
    code, out, err = run_cli(capsys, "predict", files / "gap.ckpt", molecule.format(root=files))
    assert code == 1 and out == ""
    assert err.startswith("molgnn predict: error: ") and err.count("\n") == 1, err
    for name in names:
        assert name in err, f"{name!r} not in {err!r}"


@pytest.mark.parametrize(
    ("argv", "names"),
    [
        (["--batch-size", "-1"], ["--batch-size", "positive integer"]),
        (["--batch-size", "0"], ["--batch-size", "positive integer"]),
        (["--batch-size", "many"], ["--batch-size", "'many'"]),
        (["--min-distance", "-0.1"], ["--min-distance", "non-negative"]),
        (["--min-distance", "near"], ["--min-distance", "'near'"]),
    ],
    ids=["batch-negative", "batch-zero", "batch-text", "distance-negative", "distance-text"],
)
def test_bad_options_are_usage_errors(files, capsys, argv, names):
    code, _out, err = run_cli(capsys, "predict", files / "gap.ckpt", files / "water.xyz", *argv)
    assert code == 2
    for name in names:
        assert name in err


@pytest.mark.parametrize(
    ("checkpoint", "names"),
    [
        ("missing.ckpt", ["no checkpoint at", "missing.ckpt"]),
        ("garbage.ckpt", ["garbage.ckpt", "not a molgnn checkpoint"]),
        ("noconfig.ckpt", ["noconfig.ckpt", "no 'model_config'"]),
        ("mismatch.ckpt", ["mismatch.ckpt", "weights do not fit"]),
        ("", ["is a folder"]),
    ],
    ids=["missing", "garbage", "no-model-config", "mismatch", "folder"],
)
def test_bad_checkpoints_exit_1(files, capsys, checkpoint, names):
    code, _out, err = run_cli(capsys, "predict", files / checkpoint, files / "water.xyz")
    assert code == 1 and err.count("\n") == 1
    for name in names:
        assert name in err


@pytest.mark.parametrize(
    ("checkpoint", "names"),
    [
        ("garbage.ckpt", ["garbage.ckpt", "not a molgnn checkpoint"]),
        ("noconfig.ckpt", ["noconfig.ckpt", "no 'model_config'"]),
        ("mismatch.ckpt", ["mismatch.ckpt", "weights do not fit"]),
        ("notrain.ckpt", ["notrain.ckpt", "cannot be evaluated", "train_config"]),
    ],
    ids=["garbage", "no-model-config", "mismatch", "no-train-config"],
)
def test_evaluate_names_the_bad_checkpoint(files, capsys, tmp_path, checkpoint, names):
    code, _out, err = run_cli(capsys, "evaluate", files / checkpoint, "--out", tmp_path)
    assert code == 1 and err.startswith("molgnn evaluate: error: ")
    for name in names:
        assert name in err


def test_good_molecules_json_has_flags(files, capsys):
    pytest.importorskip("rdkit")
    code, out, err = run_cli(
        capsys, "predict", files / "gap.ckpt", files / "water.xyz", "CCO", "[NH4+]", "--json"
    )
    assert code == 0
    water, ethanol, ammonium = json.loads(out)
    assert water["generated_geometry"] is False and ethanol["generated_geometry"] is True
    assert water["warnings"] == [] and ethanol["warnings"] == [] and "error" not in water
    assert isinstance(water["gap"], float) and water["units"] == {"gap": "eV"}
    assert any("net charge +1" in w for w in ammonium["warnings"])
    assert "warning: [NH4+]: net charge +1" in err


def test_truncated_cloud_is_flagged_in_json_and_table(files, capsys):
    code, out, err = run_cli(capsys, "predict", files / "gap.ckpt", files / "cloud.xyz", "--json")
    assert code == 0
    (record,) = json.loads(out)
    assert any("neighbour list truncated" in w for w in record["warnings"])
    assert any("200 atoms, more than the largest" in w for w in record["warnings"])
    code, out, err = run_cli(capsys, "predict", files / "gap.ckpt", files / "cloud.xyz")
    assert code == 0 and "2 warning(s)" in out and "neighbour list truncated" in err


def test_strict_refuses_a_flagged_molecule(files, capsys):
    code, out, err = run_cli(capsys, "predict", files / "gap.ckpt", files / "cloud.xyz", "--strict")
    assert code == 1 and "cloud.xyz" in err and "strict" in err and out == ""


def test_nan_model_table_says_error(files, capsys):
    code, out, err = run_cli(capsys, "predict", files / "nan.ckpt", files / "water.xyz")
    (row,) = [line for line in out.splitlines() if "water.xyz" in line]
    assert code == 1 and "error" in row and "nan" not in row.lower()
    assert "non-finite prediction" in err
