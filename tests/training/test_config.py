import pytest

from molgnn.models import PRESETS, ETConfig
from molgnn.training import TrainConfig


def test_defaults_and_auto_choices():
    cfg = TrainConfig()
    assert cfg.model == PRESETS["et-small"] and cfg.target == "gap"
    assert cfg.model.prior == "auto" and cfg.resolved().model.prior is None
    assert cfg.use_standardize and not cfg.uses_atom_reference
    u0 = cfg.replace(target="U0")
    assert u0.uses_atom_reference and not u0.use_standardize
    assert u0.resolved().model.prior == "atomref"
    # One switch: an explicit prior wins over the target's default.
    assert not u0.replace(**{"model.prior": None}).uses_atom_reference
    learnable = cfg.replace(**{"model.prior": "learnable_atomref"}, target="U0")
    assert learnable.resolved().model.prior == "learnable_atomref"


def test_model_is_a_model_config_resolved_at_the_boundary():
    assert TrainConfig(model="et-qm9").model == PRESETS["et-qm9"]
    cfg = TrainConfig(model={"preset": "et-small", "num_layers": 2})
    assert isinstance(cfg.model, ETConfig) and cfg.model.num_layers == 2
    assert cfg.model.hidden_channels == PRESETS["et-small"].hidden_channels
    assert TrainConfig(model={"kind": "pooled", "num_layers": 3}).model.kind == "pooled"
    with pytest.raises(ValueError, match="unknown model preset 'et-tiny'"):
        TrainConfig(model="et-tiny")
    with pytest.raises(ValueError, match="num_layerz"):
        TrainConfig(model={"preset": "et-small", "num_layerz": 2})


def test_renamed_fields_name_the_new_key(tmp_path):
    with pytest.raises(ValueError, match="'model_overrides' was renamed to 'model'"):
        TrainConfig.from_dict({"model_overrides": {"num_layers": 2}})
    with pytest.raises(ValueError, match=r"'atomref' was renamed to 'model\.prior'"):
        TrainConfig().with_assignments(["atomref=true"])
    path = tmp_path / "old.yaml"
    path.write_text("model: et-small\nmodel_overrides: {num_layers: 2}\n")
    with pytest.raises(ValueError, match=r"old.yaml.*renamed to 'model'"):
        TrainConfig.from_yaml(path)
    with pytest.raises(ValueError, match=r"did you mean 'model.num_layers'"):
        TrainConfig().with_assignments(["num_layers=2"])


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
    path.write_text("target: homo\nepochs: 3\nmodel: {num_layers: 2}\n")
    cfg = TrainConfig.from_yaml(path)
    assert (cfg.target, cfg.epochs, cfg.model.num_layers) == ("homo", 3, 2)
    assert cfg.model.hidden_channels == PRESETS["et-small"].hidden_channels
    cfg = cfg.with_assignments(
        ["lr=1e-3", "ema_decay=0.99", "subset=none", "model.hidden_channels=8"]
    )
    assert cfg.lr == 1e-3 and cfg.ema_decay == 0.99 and cfg.subset is None
    assert (cfg.model.num_layers, cfg.model.hidden_channels) == (2, 8)
    path.write_text("tragte: gap\n")
    with pytest.raises(ValueError, match="tragte"):
        TrainConfig.from_yaml(path)
    with pytest.raises(ValueError, match="key=value"):
        TrainConfig().with_assignments(["epochs"])
    with pytest.raises(ValueError, match="cannot read 'many' as int"):
        TrainConfig().with_assignments(["epochs=many"])
    with pytest.raises(ValueError, match="cannot read 'many' as int"):
        TrainConfig().with_assignments(["model.num_layers=many"])
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg


def test_checkpoints_of_older_versions_read_their_model_config():
    model = PRESETS["et-small"].replace(num_layers=2, prior="atomref")
    payload = {
        "model_config": model.to_dict(),
        "train_config": {
            "model": "et-small",
            "model_overrides": {"num_layers": 2},
            "atomref": None,
            "target": "U0",
            "epochs": 3,
        },
    }
    cfg = TrainConfig.from_checkpoint(payload)
    assert cfg.model == model and cfg.target == "U0" and cfg.epochs == 3
