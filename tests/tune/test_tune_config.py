"""Search spaces, sweep configs, overrides and the command line: all checked before Ray starts."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest
from ray import tune
from ray.tune.search.sample import Categorical, Domain, Float

from molgnn.cli.tune import add_arguments, config_from_args
from molgnn.config import read_yaml
from molgnn.nn import CONVS, POOLS
from molgnn.training import TrainConfig
from molgnn.tune import (
    ET_PAPER_CONFIG,
    ET_SEARCH_SPACE,
    POOLED_SEARCH_SPACE,
    PROFILES,
    SweepConfig,
    check_point_in_space,
    parse_space,
    search_space,
    space_to_yaml,
    trial_config,
    trial_resources,
    validate_sweep,
)


def test_et_space_covers_the_issue_fields() -> None:
    assert set(ET_SEARCH_SPACE) == {
        "model.hidden_channels",
        "model.num_layers",
        "model.num_heads",
        "model.num_rbf",
        "model.cutoff_upper",
        "lr",
        "warmup_steps",
        "batch_size",
        "weight_decay",
    }
    assert all(isinstance(v, Domain) for v in ET_SEARCH_SPACE.values())
    # Every width is divisible by every head count.
    for width in ET_SEARCH_SPACE["model.hidden_channels"].categories:
        for heads in ET_SEARCH_SPACE["model.num_heads"].categories:
            assert width % heads == 0


def test_pooled_space_covers_the_issue_fields() -> None:
    assert set(POOLED_SEARCH_SPACE) == {
        "model.conv",
        "model.pool",
        "model.hidden_channels",
        "model.num_layers",
        "model.dropout",
        "lr",
    }
    # The choices are the registries' keys, not a second list.
    assert POOLED_SEARCH_SPACE["model.conv"].categories == list(CONVS)
    assert POOLED_SEARCH_SPACE["model.pool"].categories == list(POOLS)
    # Every sample of every default space is a valid trial of its model kind.
    for kind, space in (("et", ET_SEARCH_SPACE), ("pooled", POOLED_SEARCH_SPACE)):
        base = SweepConfig().merged({"model": {"kind": kind}}).train
        for seed in range(5):
            sample = {k: v.sample(random_state=seed) for k, v in space.items()}
            trial_config(base, sample)


def test_paper_config_lies_in_the_et_space() -> None:
    check_point_in_space(ET_PAPER_CONFIG, ET_SEARCH_SPACE)
    assert ET_PAPER_CONFIG["model.hidden_channels"] == 256 and ET_PAPER_CONFIG["lr"] == 4e-4
    paper = trial_config(TrainConfig(model="et-qm9"), ET_PAPER_CONFIG)
    assert paper.model == TrainConfig(model="et-qm9").model  # the preset is the paper's model


def test_search_space_returns_a_copy_and_rejects_unknown_kinds() -> None:
    space = search_space("et")
    space["lr"] = 1.0
    assert isinstance(ET_SEARCH_SPACE["lr"], Float)
    with pytest.raises(ValueError, match="valid kinds"):
        search_space("schnet")


def test_parse_space_round_trip() -> None:
    spec = {
        "hidden_channels": {"choice": [8, 16]},
        "lr": {"loguniform": [1e-4, 1e-2]},
        "dropout": {"uniform": [0.0, 0.5]},
        "num_layers": {"randint": [1, 4]},
        "num_rbf": 16,
    }
    space = parse_space(spec)
    assert isinstance(space["hidden_channels"], Categorical)
    assert space["hidden_channels"].categories == [8, 16]
    assert space["lr"].lower == 1e-4 and space["lr"].upper == 1e-2
    assert space["num_rbf"] == 16
    assert space_to_yaml(space) == spec
    assert parse_space(space)["lr"] is space["lr"]  # distributions pass through


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"lr": {"gaussian": [0, 1]}}, "unknown distribution 'gaussian'"),
        ({"lr": {"loguniform": []}}, "non-empty list"),
        ({"lr": {"loguniform": [1e-3]}}, "bad arguments"),
        ({"lr": {"uniform": [0, 1], "choice": [1]}}, "one-key mapping"),
    ],
)
def test_parse_space_rejects_bad_specs(spec: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_space(spec)


def test_check_point_in_space() -> None:
    space = {"a": tune.choice([1, 2]), "b": tune.uniform(0.0, 1.0), "c": tune.randint(1, 4)}
    check_point_in_space({"a": 2, "b": 0.5, "c": 3}, space)
    with pytest.raises(ValueError, match="not one of"):
        check_point_in_space({"a": 3, "b": 0.5, "c": 1}, space)
    with pytest.raises(ValueError, match="outside"):
        check_point_in_space({"a": 1, "b": 1.5, "c": 1}, space)
    with pytest.raises(ValueError, match="outside"):
        check_point_in_space({"a": 1, "b": 0.5, "c": 4}, space)  # randint's upper is exclusive
    with pytest.raises(ValueError, match="lacks tuned field 'c'"):
        check_point_in_space({"a": 1, "b": 0.5}, space)
    with pytest.raises(ValueError, match="not in the search space"):
        check_point_in_space({"a": 1, "b": 0.5, "c": 1, "d": 0}, space)


def test_sweep_config_validates_and_resolves_paths(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    config = SweepConfig(storage_path="runs", train=TrainConfig(data_root="data"))
    assert config.storage_path == str(tmp_path / "runs")
    assert config.train.data_root == str(tmp_path / "data")
    assert config.experiment_path == str(tmp_path / "runs" / "et_homo_lumo")
    uri = SweepConfig(storage_path="s3://bucket/sweeps", name="x")
    assert uri.experiment_path == "s3://bucket/sweeps/x"
    for bad, message in [
        ({"num_samples": 0}, "num_samples"),
        ({"grace_period": 5, "train": {"epochs": 2}}, "grace_period"),
        ({"reduction_factor": 1.0}, "reduction_factor"),
        ({"gpus_per_trial": -0.5}, "gpus_per_trial"),
        ({"gpus_per_trial": 1.5}, "whole number"),
        ({"cpus_per_trial": 0}, "cpus_per_trial"),
        ({"address": "localhost"}, "HOST:PORT"),
        ({"name": "a/b"}, "plain directory name"),
        ({"train": {"subset": 3}}, "subset"),
        ({"max_epochs": 3}, "'max_epochs' was renamed to 'epochs'"),
    ]:
        with pytest.raises(ValueError, match=message):
            SweepConfig.from_dict(bad)


def test_replace_rejects_unknown_fields() -> None:
    config = SweepConfig()
    assert config.replace(num_samples=3).num_samples == 3
    with pytest.raises(ValueError, match=r"unknown SweepConfig field 'num_sample'"):
        config.replace(num_sample=3)
    assert config.replace(**{"train.lr": 1e-3}).train.lr == 1e-3
    assert config.with_assignments(["lr=1e-3"]).train.lr == 1e-3  # flat training keys


def test_sweep_yaml(tmp_path: Path) -> None:
    good = tmp_path / "sweep.yaml"
    good.write_text("num_samples: 4\nlr: 1.0e-3\nspace:\n  lr: {loguniform: [1.0e-4, 1.0e-3]}\n")
    config = SweepConfig().merged(read_yaml(good))
    assert config.num_samples == 4 and config.train.lr == 1e-3
    assert parse_space(config.space)["lr"].upper == 1e-3
    bad = tmp_path / "bad.yaml"
    bad.write_text("- 1\n- 2\n")
    with pytest.raises(ValueError, match="expected a mapping"):
        read_yaml(bad)
    with pytest.raises(ValueError, match="no such config file"):
        read_yaml(tmp_path / "missing.yaml")


def test_validate_sweep_fails_on_unknown_fields_before_ray() -> None:
    """The production routing: every name of the space reaches TrainConfig or its model."""
    good = SweepConfig(
        space=parse_space(
            {"lr": {"loguniform": [1e-3, 1e-1]}, "model.num_layers": {"choice": [1, 2]}}
        )
    )
    assert set(validate_sweep(good)) == {"lr", "model.num_layers"}
    typo = good.replace(space={"lrate": tune.loguniform(1e-3, 1e-1)})
    with pytest.raises(ValueError, match="lrate"):
        validate_sweep(typo)
    flat = good.replace(space={"hidden_channels": tune.choice([8, 16])})
    with pytest.raises(ValueError, match=r"did you mean 'model\.hidden_channels'"):
        validate_sweep(flat)
    wrong_type = good.replace(space={"model.num_layers": tune.choice(["two", "three"])})
    with pytest.raises(ValueError, match=r"num_layers: expected an integer, got '(two|three)'"):
        validate_sweep(wrong_type)
    wrong_kind = good.replace(
        space={"model.distance_influence": tune.choice(["keys", "both"])},
        train=TrainConfig(model="pooled"),
    )
    with pytest.raises(ValueError, match="unknown PooledGNNConfig field 'distance_influence'"):
        validate_sweep(wrong_kind)
    with pytest.raises(ValueError, match="outside"):
        validate_sweep(good.replace(points_to_evaluate=({"lr": 10.0, "model.num_layers": 1},)))
    with pytest.raises(ValueError, match="tunes nothing"):
        validate_sweep(good.replace(space={"lr": 1e-3}))


def test_trial_resources() -> None:
    cpu_only = {"CPU": 8.0}
    assert trial_resources(SweepConfig(cpus_per_trial=2), cpu_only) == (
        {"cpu": 2, "gpu": 0.0},
        4,
    )
    gpus = {"CPU": 16.0, "GPU": 2.0}
    assert trial_resources(SweepConfig(), gpus) == ({"cpu": 1.0, "gpu": 1.0}, 2)
    assert trial_resources(SweepConfig(gpus_per_trial=0.25), gpus)[1] == 8
    assert trial_resources(SweepConfig(gpus_per_trial=0.25, max_concurrent_trials=3), gpus)[1] == 3
    with pytest.raises(ValueError, match="no GPUs"):
        trial_resources(SweepConfig(gpus_per_trial=0.5), cpu_only)
    with pytest.raises(ValueError, match="exceeds"):
        trial_resources(SweepConfig(cpus_per_trial=16), cpu_only)


def _parse(argv: list[str], kind: str | None = "et") -> SweepConfig:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return config_from_args(parser.parse_args(argv), kind)


def test_cli_layers_profile_yaml_and_flags(tmp_path: Path) -> None:
    default = _parse([])
    assert default.train.subset == PROFILES[("et", "laptop")]["subset"]
    assert default.time_budget_s is not None  # the laptop default is bounded in time
    smoke = _parse(["--smoke"])
    assert smoke.train.epochs == PROFILES[("et", "smoke")]["epochs"]
    yaml_file = tmp_path / "s.yaml"
    yaml_file.write_text("num_samples: 5\nepochs: 7\n")
    config = _parse(
        [
            "--config",
            str(yaml_file),
            "--epochs",
            "9",
            "--subset",
            "all",
            "--gpus-per-trial",
            "0.25",
            "--time-budget-s",
            "60",
            "--set",
            "weight_decay=1e-5",
            "--storage-path",
            str(tmp_path),
            "--resume",
        ]
    )
    assert config.num_samples == 5  # from YAML
    assert config.train.epochs == 9  # flag beats YAML
    assert config.train.subset is None
    assert config.gpus_per_trial == 0.25
    assert config.time_budget_s == 60
    assert config.train.weight_decay == 1e-5
    assert config.resume
    paper = _parse(["--paper-first", "--profile", "gpu"])
    assert paper.points_to_evaluate[0] == ET_PAPER_CONFIG
    yaml_file.write_text("num_sampels: 5\n")
    with pytest.raises(ValueError, match="num_sampels"):
        _parse(["--config", str(yaml_file)])
    with pytest.raises(ValueError, match="only defined for the ET"):
        _parse(["--paper-first"], kind="pooled")
    # The profile follows the model's kind (no second --kind switch that can contradict it).
    pooled = _parse(["--model", "pooled"], kind=None)
    assert pooled.train.model.kind == "pooled" and "model.conv" in pooled.space
    validate_sweep(pooled)


@pytest.mark.parametrize(
    "script", ["et_homo_lumo.py", "pooled_gnn_homo_lumo.py", "tensornet_homo_lumo.py"]
)
def test_sweep_scripts_have_help(script: str) -> None:
    repo = Path(__file__).resolve().parents[2]
    out = subprocess.run(
        [sys.executable, str(repo / "sweeps" / script), "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=repo,
    )
    assert out.returncode == 0, out.stderr
    for flag in (
        "--num-samples",
        "--epochs",
        "--config",
        "--set",
        "--subset",
        "--gpus-per-trial",
        "--cpus-per-trial",
        "--address",
        "--storage-path",
        "--name",
        "--resume",
        "--time-budget-s",
        "--seed",
        "--smoke",
    ):
        assert flag in out.stdout


def test_importing_molgnn_does_not_import_ray() -> None:
    code = (
        "import argparse, sys, molgnn, molgnn.cli, molgnn.cli.tune\n"
        "import molgnn.training, molgnn.models, molgnn.data\n"
        "molgnn.cli.tune.add_parser(argparse.ArgumentParser().add_subparsers())\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('ray', 'optuna'))\n"
        "assert not bad, bad\n"
    )
    repo = Path(__file__).resolve().parents[2]
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=repo
    )
    assert out.returncode == 0, out.stderr
