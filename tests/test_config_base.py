"""molgnn.config: every config field is checked by type, and bad config input is one clear line."""

from dataclasses import dataclass, field
from typing import ClassVar

import pytest

from molgnn.cli import main
from molgnn.config import Config, check_type, read_yaml
from molgnn.models import ETConfig, PooledGNNConfig, build_model, model_config
from molgnn.training import TrainConfig


@pytest.mark.parametrize(
    ("yaml_text", "message"),
    [
        ('epochs: "ten"\n', r"epochs: expected an integer, got 'ten' \(str\)"),
        ("epochs: 1.7\n", r"epochs: expected an integer, got 1.7 \(float\)"),
        ("lr: fast\n", r"lr: expected a number, got 'fast'"),
        ("compile: maybe\n", r"compile: expected true or false, got 'maybe'"),
        ("subset: [1, 2]\n", r"subset: expected an integer or None"),
        ("model: 3\n", r"model: expected a preset name, a mapping or a model config"),
        ("model_overrides: {num_layers: 2}\n", r"'model_overrides' was renamed to 'model'"),
        ("tragte: gap\n", r"unknown TrainConfig field 'tragte'; valid fields: model"),
        ("epochs: [1\n", r"invalid YAML at line 2, column 1"),
        ("- epochs\n", r"expected a mapping of config fields, got list"),
    ],
)
def test_bad_yaml_configs_name_the_file_and_field(tmp_path, yaml_text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml_text)
    with pytest.raises(ValueError, match=message) as err:
        TrainConfig.from_yaml(path)
    assert str(path) in str(err.value)


def test_numbers_are_read_without_loss_and_never_truncated(tmp_path):
    path = tmp_path / "ok.yaml"
    path.write_text(
        "lr: 1e-3\nweight_decay: 0\nepochs: 3\nmax_time: 60\n"
    )  # YAML reads 1e-3 as text
    cfg = TrainConfig.from_yaml(path)
    assert cfg.lr == 1e-3 and isinstance(cfg.weight_decay, float) and cfg.max_time == 60.0
    assert cfg.epochs == 3 and isinstance(cfg.epochs, int)
    with pytest.raises(ValueError, match="epochs: expected an integer, got True"):
        TrainConfig(epochs=True)  # a bool is not an int here
    with pytest.raises(ValueError, match="lr: expected a number, got NaN"):
        TrainConfig(lr=float("nan"))


def test_files_that_are_not_configs(tmp_path):
    with pytest.raises(ValueError, match="is a folder, not a YAML config file"):
        read_yaml(tmp_path)
    with pytest.raises(ValueError, match="no such config file"):
        read_yaml(tmp_path / "missing.yaml")
    (tmp_path / "binary.yaml").write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ValueError, match=r"binary\.yaml"):
        TrainConfig.from_yaml(tmp_path / "binary.yaml")
    (tmp_path / "empty.yaml").write_text("")
    assert TrainConfig.from_yaml(tmp_path / "empty.yaml") == TrainConfig()


def test_assignments_are_typed():
    cfg = TrainConfig().with_assignments(["out_dir=2024", "subset=none", "lr=2e-4", "compile=true"])
    assert cfg.out_dir == "2024" and cfg.subset is None and cfg.lr == 2e-4 and cfg.compile is True
    for text, message in [
        ("epochs=1.7", r"cannot read '1.7' as int for epochs"),
        ("epochs=ten", r"cannot read 'ten' as int for epochs"),
        ("standardize=maybe", r"cannot read 'maybe' as bool for standardize"),
        ("lr=fast", r"cannot read 'fast' as float for lr"),
        ("nope=1", r"unknown TrainConfig field 'nope'"),
    ]:
        with pytest.raises(ValueError, match=message):
            TrainConfig().with_assignments([text])


def test_model_configs_are_typed_too():
    with pytest.raises(ValueError, match=r"num_layers: expected an integer, got 1.5"):
        ETConfig(num_layers=1.5)
    with pytest.raises(ValueError, match=r"hidden_channels: expected an integer, got '64'"):
        model_config({"kind": "et", "hidden_channels": "64"})
    with pytest.raises(ValueError, match=r"cutoff_upper: expected a number, got 'far'"):
        model_config("pooled", cutoff_upper="far")
    pooled = PooledGNNConfig.from_dict(
        {"kind": "pooled", "elements": [1, 6, 7, 8, 9], "edge_features": ["distance"]}
    )
    assert pooled.elements == (1, 6, 7, 8, 9) and pooled.edge_features == ("distance",)
    assert PooledGNNConfig.from_dict(pooled.to_dict()) == pooled
    with pytest.raises(ValueError, match="PooledGNNConfig is kind 'pooled', got kind 'et'"):
        PooledGNNConfig.from_dict({"kind": "et"})
    et = ETConfig(num_layers=2)
    assert build_model(et.to_dict()).config == et


@dataclass(frozen=True)
class _Outer(Config):
    RENAMED: ClassVar[dict[str, str]] = {"max_epochs": "epochs"}
    model: ETConfig = field(default_factory=ETConfig)
    epochs: int = 1


def test_dotted_replace_reaches_nested_configs_and_renames_are_named():
    outer = _Outer().replace(**{"model.num_layers": 2, "epochs": 3})
    assert outer.model.num_layers == 2 and outer.epochs == 3
    assert outer.with_assignments(["model.cutoff_upper=4"]).model.cutoff_upper == 4.0
    with pytest.raises(ValueError, match=r"cannot read 'x' as int for model\.num_layers"):
        outer.with_assignments(["model.num_layers=x"])
    with pytest.raises(ValueError, match="epochs is not a nested config"):
        outer.replace(**{"epochs.x": 1})
    with pytest.raises(ValueError, match="'max_epochs' was renamed to 'epochs'"):
        _Outer.from_dict({"max_epochs": 3})
    assert _Outer.from_dict(outer.to_dict() | {"model": outer.model}) == outer


def test_check_type_arms():
    assert check_type("x", None, int | None) is None
    assert check_type("x", [1, 2], tuple[int, ...]) == (1, 2)
    with pytest.raises(ValueError, match=r"x\[1\]: expected an integer"):
        check_type("x", [1, "b"], tuple[int, ...])


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", "--config", "."], "is a folder, not a YAML config file"),
        (["train", "--set", "epochs=1.7"], "cannot read '1.7' as int for epochs"),
        (["train", "--set", "lr"], "expected key=value"),
    ],
)
def test_the_cli_reports_config_errors_in_one_line(capsys, argv, message):
    assert main(argv) == 1
    out, err = capsys.readouterr()
    assert message in err and "Traceback" not in out + err
    assert err.startswith("molgnn train: error:") and err.count("\n") == 1


def test_online_config_is_typed():
    from molgnn.online import OnlineConfig

    assert OnlineConfig(store="s", growth=1).growth == 1.0
    with pytest.raises(ValueError, match=r"epochs: expected an integer, got 1.7"):
        OnlineConfig.from_dict({"store": "s", "epochs": 1.7})
    with pytest.raises(ValueError, match=r"warm_start: expected true or false, got 'yes'"):
        OnlineConfig(store="s", warm_start="yes")
