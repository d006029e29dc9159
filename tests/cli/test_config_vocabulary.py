"""One configuration vocabulary: the same YAML file and the same ``--set`` keys for every command."""

from __future__ import annotations

import argparse
import dataclasses
import re
import typing
from pathlib import Path

import pytest

from molgnn.cli import build_parser, main
from molgnn.cli._config import field_names
from molgnn.config import Config
from molgnn.training import TrainConfig

DOCS = Path(__file__).resolve().parents[2] / "docs" / "src" / "guide" / "configuration.md"


def docs_yaml() -> str:
    """The YAML example of the configuration guide (the one CI runs)."""
    match = re.search(r"cat > run\.yaml <<'EOF'\n(.*?\n)EOF\n", DOCS.read_text(), re.S)
    assert match, "the configuration guide has no YAML example"
    return match.group(1)


def test_the_docs_yaml_drives_train_and_online(tiny_qm9, tmp_path, capsys):
    config_file = tmp_path / "run.yaml"
    config_file.write_text(docs_yaml())
    expected = TrainConfig().merged(__import__("yaml").safe_load(docs_yaml()))
    assert expected.loss == "l1" and expected.model.num_layers == 2  # the file was read

    out = tmp_path / "train"
    code = main(["train", "--config", str(config_file), "--data-root", str(tiny_qm9),
                 "--set", "subset=30", "--out-dir", str(out), "--quiet"])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    from molgnn.io import load_checkpoint

    stored = TrainConfig.from_checkpoint(load_checkpoint(out / "best.ckpt"))
    assert stored.replace(subset=expected.subset, out_dir=expected.out_dir, data_root=None) == (
        expected.resolved()
    )

    store = tmp_path / "store"
    code = main(["online", "--config", str(config_file), "--store", str(store),
                 "--data-root", str(tiny_qm9), "--set", "subset=30", "--val", "4", "--test", "4",
                 "--initial", "10", "--chunk", "5", "--max-chunks", "1", "--quiet"])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    from molgnn.online import Store

    (record,) = Store(store).models()
    hyper = record.hyperparameters
    assert (hyper["loss"], hyper["ema_decay"], hyper["epochs"]) == ("l1", 0.99, 2)
    assert record.config["num_layers"] == 2 and record.config["hidden_channels"] == 32


# A value other than the default for every string field (the others are derived by type).
_STRINGS = {
    "target": "homo", "loss": "l1", "device": "cpu", "out_dir": "elsewhere",
    "data_root": "/tmp/qm9-elsewhere", "model.rbf_type": "gauss", "model.activation": "tanh",
    "model.attn_activation": "tanh", "model.distance_influence": "keys",
    "model.head": "scalar", "model.reduce_op": "mean", "model.prior": "atomref",
}  # fmt: skip


def _new_value(config: Config, name: str) -> tuple[str, object]:
    """A ``--set`` text for ``name`` and the value it must give, different from the default."""
    owner: typing.Any = config
    for part in name.split(".")[:-1]:
        owner = getattr(owner, part)
    leaf = name.rsplit(".", 1)[-1]
    default = getattr(owner, leaf)
    hint = typing.get_type_hints(type(owner))[leaf]
    arms = set(typing.get_args(hint)) or {hint}
    if name in _STRINGS:
        return _STRINGS[name], _STRINGS[name]
    if bool in arms:
        value: object = not default if default is not None else True
        return str(value).lower(), value
    if int in arms:
        value = (default or 0) + 1 if default is not None else 7
        return str(value), value
    if float in arms:
        value = 0.5 if default is None or default >= 1 or default == 0 else default / 2
        return repr(value), value
    raise AssertionError(f"add a test value for the field {name} ({hint})")


def _train_of(command: str, config: typing.Any) -> TrainConfig:
    return config if command == "train" else config.train


def _config_for(command: str, argv: list[str]) -> typing.Any:
    if command == "sweep":
        from molgnn.cli.tune import add_arguments, config_from_args

        parser = argparse.ArgumentParser()
        add_arguments(parser)
        return config_from_args(parser.parse_args(argv), "et")
    args = build_parser().parse_args([command, *argv])
    module = __import__(f"molgnn.cli.{command}", fromlist=["config_from_args"])
    return module.config_from_args(args)


@pytest.mark.parametrize("command", ["train", "online", "sweep"])
def test_every_train_field_is_settable_from_every_command(command, tmp_path):
    pytest.importorskip("ray.tune") if command == "sweep" else None
    extra = ["--store", str(tmp_path / "s")] if command == "online" else []
    base = _train_of(command, _config_for(command, extra))
    names = field_names(base)
    assert "model.num_layers" in names and "lr" in names
    checked = 0
    for name in names:
        text, value = _new_value(base, name)
        if name in ("subset",) and command in ("online", "sweep"):
            value = base.subset + 1
            text = str(value)
        config = _config_for(command, [*extra, "--set", f"{name}={text}"])
        got: typing.Any = _train_of(command, config)
        for part in name.split("."):
            got = getattr(got, part)
        if name == "data_root" and command == "sweep":
            value = str(Path(str(value)).resolve())
        assert got == value, (command, name, got, value)
        checked += 1
    assert checked == len(names) > 40


def test_train_config_fields_and_the_commands_fields_do_not_clash():
    from molgnn.online import OnlineConfig

    train = set(TrainConfig.field_names())
    assert not (train & (set(OnlineConfig.field_names()) - {"train"}))
    pytest.importorskip("ray.tune")
    from molgnn.tune import SweepConfig

    assert not (train & (set(SweepConfig.field_names()) - {"train"}))


def _help(command: str) -> str:
    parser = build_parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return subparsers.choices[command].format_help()


def test_flags_are_named_as_their_fields():
    from molgnn.cli import online, train

    for command, module in (("train", train), ("online", online)):
        text = _help(command)
        for name in module.FLAGS:
            assert "--" + name.replace("_", "-") in text, (command, name)
        assert "--config" in text and "--set" in text
    # Flags that repeated a field under another name are gone.
    assert not re.search(r"--out\b(?!-)", _help("train"))
    assert "--from-scratch" not in _help("online")


def test_configs_are_dataclasses_on_the_one_base():
    from molgnn.models import MODEL_CONFIGS
    from molgnn.online import OnlineConfig

    for cls in (TrainConfig, OnlineConfig, *MODEL_CONFIGS.values()):
        assert issubclass(cls, Config) and dataclasses.is_dataclass(cls)
