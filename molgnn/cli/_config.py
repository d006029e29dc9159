"""The one configuration vocabulary of the commands: ``--config FILE`` plus ``--set a.b=value``.

``molgnn train``, ``molgnn online`` and the sweep scripts read their configuration the same way,
in this order:

1. the command's defaults (a sweep profile, for the sweep scripts);
2. ``--config FILE``: a YAML mapping of config fields applied on top
   ([`Config.merged`][molgnn.config.Config.merged]);
3. the command's flags, each named exactly as the field it sets (``--epochs`` sets ``epochs``);
4. every ``--set KEY=VALUE``, in order
   ([`Config.with_assignments`][molgnn.config.Config.with_assignments]).

The training config's fields may be written flat for ``online`` and the sweeps (``lr`` for
``train.lr``), so a YAML file written for ``molgnn train`` works unchanged for all three.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import re
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from molgnn.config import Config, read_yaml

__all__ = [
    "add_config_arguments",
    "add_mlflow_arguments",
    "config_from_args",
    "field_names",
    "mlflow_uri",
]

_ALL_SUBSET = "all"


def _docstring_args(cls: type) -> dict[str, str]:
    """``Args:`` entries of a class docstring: field name -> its first sentence."""
    doc = inspect.getdoc(cls) or ""
    section = doc.partition("Args:")[2]
    entries: dict[str, str] = {}
    name = None
    for line in section.splitlines():
        match = re.match(r"^    (\w+): (.*)$", line)
        if match:
            name = match.group(1)
            entries[name] = match.group(2)
        elif name and line.startswith("        "):
            entries[name] += " " + line.strip()
        elif line and not line.startswith(" "):
            break

    def plain(text: str) -> str:
        text = re.sub(r"\[([^\]]*)\]\[[^\]]*\]", r"\1", text)  # [`Name`][molgnn.x.Name] -> `Name`
        text = re.sub(r"\$([^$]*)\$", r"\1", text)  # $x$ -> x
        return text.replace("`", "").replace("%", "%%")

    return {k: plain(v) for k, v in entries.items()}


def _field_owner(config: Config, name: str) -> tuple[Config, str]:
    """The (possibly nested, flat-routed) config that holds field ``name``, and its key."""
    key = config.resolve_key(name)
    owner: Any = config
    for part in key.split(".")[:-1]:
        owner = getattr(owner, part)
    return owner, key


def add_config_arguments(
    parser: argparse.ArgumentParser,
    defaults: Config,
    flags: Sequence[str] = (),
    required: Sequence[str] = (),
) -> None:
    """Add ``--config``, ``--set`` and one flag per field named in ``flags``.

    Args:
        parser: The command's parser.
        defaults: The command's default config (flag help and types come from it).
        flags: Field names (flat for a nested training config) that get a flag of their own
            spelled like the field (``out_dir`` -> ``--out-dir``).
        required: Names in ``flags`` whose flag must be given.
    """
    parser.add_argument(
        "--config",
        metavar="FILE.yaml",
        help="YAML file of config fields, applied on top of the defaults (a file written for "
        "'molgnn train' works for 'molgnn online' and the sweeps too)",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="set any config field, nested ones with dots (model.num_layers=2); repeatable, "
        "applied last, in order",
    )
    for name in flags:
        owner, _ = _field_owner(defaults, name)
        help_text = _docstring_args(type(owner)).get(name, "")
        hint = typing.get_type_hints(type(owner)).get(name)
        flag = "--" + name.replace("_", "-")
        if hint is bool:
            parser.add_argument(
                flag, action=argparse.BooleanOptionalAction, default=None, help=help_text
            )
            continue
        if name == "subset":
            help_text += (
                f" '{_ALL_SUBSET}' takes all of QM9 with torchmd-net's split "
                "(110,000 train / 10,000 validation molecules)."
            )
        parser.add_argument(
            flag, default=None, required=name in required, metavar="VALUE", help=help_text
        )


def _flag_assignments(args: argparse.Namespace, flags: Sequence[str]) -> list[str]:
    assignments = []
    for name in flags:
        value = getattr(args, name, None)
        if value is None:
            continue
        if name == "subset" and str(value).lower() == _ALL_SUBSET:
            assignments += ["subset=null", "train_size=110000", "val_size=10000"]
            continue
        text = str(value).lower() if isinstance(value, bool) else str(value)
        assignments.append(f"{name}={text}")
    return assignments


def _put(tree: dict[str, Any], key: str, value: Any) -> None:
    """Put ``value`` at the dotted ``key`` of a nested mapping of changes.

    A preset name met on the way (``model: et-qm9``, then ``model.num_layers``) becomes
    ``{"preset": name}``, so the later key changes that preset; a mapping given for a key
    that already holds one is merged into it unless it names a whole model.
    """
    *heads, leaf = key.split(".")
    node = tree
    for head in heads:
        current = node.get(head)
        if current is None:
            node[head] = {}
        elif isinstance(current, str):
            node[head] = {"preset": current}
        elif not isinstance(current, dict):
            raise ValueError(f"{head} is not a nested config; cannot set {key}")
        node = node[head]
    old = node.get(leaf)
    if isinstance(old, dict) and isinstance(value, Mapping) and not {"kind", "preset"} & set(value):
        for k, v in value.items():
            _put(old, str(k), v)
    else:
        node[leaf] = dict(value) if isinstance(value, Mapping) else value


def config_from_args(args: argparse.Namespace, defaults: Config, flags: Sequence[str] = ()) -> Any:
    """The config a command runs: defaults, then ``--config``, then the flags, then ``--set``.

    The layers are combined into one set of changes and applied at once, so that a value
    only has to be valid together with the others (a file's ``subset: 300`` with the flags'
    ``--val 40``), and every change is still checked by name and type as its layer is read.

    Raises:
        ValueError: naming the file, flag or key, for an unknown field or a bad value.
    """
    changes: dict[str, Any] = {}
    if getattr(args, "config", None):
        path = Path(args.config)
        try:
            for key, value in read_yaml(path).items():
                _put(changes, defaults.resolve_key(str(key)), value)
        except ValueError as err:
            message = str(err)
            prefixed = message if message.startswith(str(path)) else f"{path}: {message}"
            raise ValueError(prefixed) from None
    for layer, assignments in (
        ("command-line flag", _flag_assignments(args, flags)),
        ("--set", list(args.set)),
    ):
        for text in assignments:
            try:
                _put(changes, *defaults.parse_assignment(text))
            except ValueError as err:
                raise ValueError(f"{layer}: {err}") from None
    try:
        return defaults.merged(changes)
    except ValueError as err:
        where = f" (with {args.config})" if getattr(args, "config", None) else ""
        raise ValueError(f"invalid configuration{where}: {err}") from None


def field_names(config: Config, prefix: str = "") -> list[str]:
    """Every settable dotted field name of ``config``, nested configs expanded."""
    names = []
    for f in dataclasses.fields(config):  # type: ignore[arg-type]
        value = getattr(config, f.name)
        if isinstance(value, Config):
            names += field_names(value, f"{prefix}{f.name}.")
        else:
            names.append(prefix + f.name)
    return names


def add_mlflow_arguments(parser: argparse.ArgumentParser, experiment: str = "molgnn") -> None:
    """Add ``--mlflow [URI]`` and ``--mlflow-experiment NAME`` (experiment tracking), whose
    default is ``experiment``.

    Read them back with ``mlflow_uri``.
    """
    parser.add_argument(
        "--mlflow",
        nargs="?",
        const="",
        default=None,
        metavar="URI",
        help="track the run on MLflow at URI (a server's http://..., or sqlite:///FILE.db); "
        "with no URI: $MLFLOW_TRACKING_URI if set, else an SQLite store mlflow.db beside the "
        "output (in OUT_DIR for train, the store for online, STORAGE_PATH/NAME for sweeps). "
        "Without --mlflow the run is tracked only when $MLFLOW_TRACKING_URI is set. Needs "
        "pip install 'molgnn[track]'",
    )
    parser.add_argument(
        "--mlflow-experiment",
        default=experiment,
        metavar="NAME",
        help=f"the MLflow experiment of the run, created if needed (default: {experiment})",
    )


def mlflow_uri(args: argparse.Namespace, out_dir: str | Path) -> str | None:
    """The tracking URI that ``--mlflow`` and ``$MLFLOW_TRACKING_URI`` ask for, or ``None``.

    ``--mlflow URI`` gives URI; ``--mlflow`` alone gives ``$MLFLOW_TRACKING_URI`` or the
    embedded store ``sqlite:///<out_dir>/mlflow.db`` (see
    [`tracking_uri`][molgnn.tracking.tracking_uri]); no ``--mlflow`` gives
    ``$MLFLOW_TRACKING_URI`` if set, else ``None`` (nothing is tracked).
    """
    import os

    from molgnn.tracking import tracking_uri

    flag = getattr(args, "mlflow", None)
    if flag is None:
        return os.environ.get("MLFLOW_TRACKING_URI") or None
    if not flag and not os.environ.get("MLFLOW_TRACKING_URI"):
        Path(out_dir).mkdir(parents=True, exist_ok=True)  # the embedded store's folder
    return tracking_uri(flag or None, out_dir)
