import pytest

from molgnn.training import TrainConfig


def test_defaults_and_auto_choices():
    cfg = TrainConfig()
    assert cfg.model == "et-small" and cfg.target == "gap"
    assert cfg.use_standardize and not cfg.use_atomref
    u0 = cfg.replace(target="U0")
    assert u0.use_atomref and not u0.use_standardize


def test_unknown_field_and_bad_values_fail_loudly():
    with pytest.raises(ValueError, match=r"unknown TrainConfig field.*learning_rate"):
        TrainConfig().replace(learning_rate=1.0)
    with pytest.raises(ValueError, match="unknown QM9 target 'gapp'"):
        TrainConfig(target="gapp")
    with pytest.raises(ValueError, match="unknown loss"):
        TrainConfig(loss="huber")
    with pytest.raises(ValueError, match="batch_size"):
        TrainConfig(batch_size=0)


def test_yaml_and_assignments(tmp_path):
    path = tmp_path / "cfg.yaml"
    path.write_text("target: homo\nepochs: 3\nmodel_overrides: {num_layers: 2}\n")
    cfg = TrainConfig.from_yaml(path)
    assert (cfg.target, cfg.epochs, cfg.model_overrides) == ("homo", 3, {"num_layers": 2})
    cfg = cfg.with_assignments(
        ["lr=1e-3", "ema_decay=0.99", "subset=none", "model.hidden_channels=8"]
    )
    assert cfg.lr == 1e-3 and cfg.ema_decay == 0.99 and cfg.subset is None
    assert cfg.model_overrides == {"num_layers": 2, "hidden_channels": 8}
    path.write_text("tragte: gap\n")
    with pytest.raises(ValueError, match="tragte"):
        TrainConfig.from_yaml(path)
    with pytest.raises(ValueError, match="key=value"):
        TrainConfig().with_assignments(["epochs"])
    with pytest.raises(ValueError, match="cannot read 'many' as int"):
        TrainConfig().with_assignments(["epochs=many"])
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg
