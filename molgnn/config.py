"""The base of every molgnn configuration: a frozen dataclass whose fields are checked by type.

A config subclass is a ``@dataclass(frozen=True)`` that derives from
[`Config`][molgnn.config.Config] and calls ``super().__post_init__()`` first in its own
``__post_init__`` (or defines none). [`Config`][molgnn.config.Config] gives it, written once:

- **type checks** of every field against its annotation, with no silent coercion: ``epochs: 1.7``
  or ``epochs: "ten"`` is an error naming the field, while an integer where a float is expected
  (``lr: 1``) and YAML's unquoted exponents (``lr: 1e-3``, which YAML 1.1 reads as a string) are
  read as the float they denote;
- [`Config.replace`][molgnn.config.Config.replace] with dotted keys (``"model.num_layers"`` reaches
  a nested config);
- [`Config.to_dict`][molgnn.config.Config.to_dict],
  [`Config.from_dict`][molgnn.config.Config.from_dict] and
  [`Config.from_yaml`][molgnn.config.Config.from_yaml], with errors that name the file, the line and
  the field;
- [`Config.with_assignments`][molgnn.config.Config.with_assignments] for ``key=value`` strings (the
  command line's ``--set``), each value read as YAML and then type-checked like any other.

A field that was renamed is listed in the subclass's ``RENAMED`` mapping (old name -> new name);
using the old name raises an error naming the new one.

A config that holds another config under the field its ``FLAT`` attribute names (for example
[`OnlineConfig`][molgnn.online.OnlineConfig] and [`SweepConfig`][molgnn.tune.SweepConfig] hold a
[`TrainConfig`][molgnn.training.TrainConfig] as ``train``) reads the inner config's keys written
flat in files and ``key=value`` strings: ``lr=1e-3`` means ``train.lr=1e-3`` wherever ``lr`` is not
a field of the outer config. So one YAML file of training fields drives every command.
"""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, ClassVar, TypeVar

__all__ = ["Config", "check_type", "parse_assignment", "read_yaml", "yaml_value"]

C = TypeVar("C", bound="Config")

_FLOAT = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


def _type_name(hint: Any) -> str:
    if hint is type(None):
        return "None"
    if isinstance(hint, type):
        return {
            "int": "an integer",
            "float": "a number",
            "str": "a string",
            "bool": "true or false",
        }.get(hint.__name__, hint.__name__)
    origin = typing.get_origin(hint)
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(hint))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(hint))
    if origin in (dict, Mapping):
        return "a mapping"
    if origin in (tuple, list):
        return "a list"
    return str(hint)


def check_type(name: str, value: Any, hint: Any) -> Any:
    """Check ``value`` against the annotation ``hint``; returns it (an ``int`` made ``float``).

    Raises:
        ValueError: naming ``name``, the expected type and the value.
    """
    if hint is Any:
        return value
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for arm in args:
            if arm is type(None):
                continue
            try:
                return check_type(name, value, arm)
            except ValueError:
                continue
        raise _mismatch(name, value, hint)
    if origin is typing.Literal:
        if value in args:
            return value
        raise _mismatch(name, value, hint)
    if origin in (tuple, list) or hint in (tuple, list):
        if isinstance(value, str | bytes) or not isinstance(value, Iterable):
            raise _mismatch(name, value, hint)
        items = list(value)
        homogeneous = (origin is tuple and len(args) == 2 and args[1] is Ellipsis) or (
            origin is list and len(args) == 1
        )
        if homogeneous:
            items = [check_type(f"{name}[{k}]", v, args[0]) for k, v in enumerate(items)]
        return tuple(items) if (origin or hint) is tuple else items
    if origin in (dict, Mapping) or hint in (dict, Mapping):
        if not isinstance(value, Mapping):
            raise _mismatch(name, value, hint)
        return dict(value)
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise _mismatch(name, value, hint)
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise _mismatch(name, value, hint)
    if hint is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            if isinstance(value, float) and math.isnan(value):
                raise ValueError(f"{name}: expected a number, got NaN")
            return float(value)
        if isinstance(value, str) and _FLOAT.match(value.strip()):
            return float(value)  # YAML 1.1 reads an unquoted 1e-3 as a string
        raise _mismatch(name, value, hint)
    if hint is str:
        if isinstance(value, str):
            return value
        raise _mismatch(name, value, hint)
    if isinstance(hint, type):
        if isinstance(value, hint):
            return value
        raise _mismatch(name, value, hint)
    return value


def _mismatch(name: str, value: Any, hint: Any) -> ValueError:
    return ValueError(
        f"{name}: expected {_type_name(hint)}, got {value!r} ({type(value).__name__})"
    )


def parse_assignment(text: str) -> tuple[str, str]:
    """Split ``"key=value"``; raises ValueError for anything else."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise ValueError(f"expected key=value, got {text!r}")
    return key.strip(), value.strip()


def read_yaml(path: str | Path) -> dict[str, Any]:
    """A YAML file's top-level mapping, with errors that name the file and line.

    Raises:
        ValueError: for a missing file, a folder, invalid YAML (with its line and column) or a
            file whose top level is not a mapping.
    """
    import yaml

    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path} is a folder, not a YAML config file")
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ValueError(f"{path}: no such config file") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: cannot read the config file ({err})") from None
    try:
        values = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err)
        raise ValueError(f"{path}: invalid YAML{where}: {problem}") from None
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise ValueError(
            f"{path}: expected a mapping of config fields, got {type(values).__name__}"
        )
    return values


def yaml_value(value: str) -> Any:
    """``value`` read as a YAML scalar or collection (the text itself if it is not YAML)."""
    import yaml

    try:
        return yaml.safe_load(value)
    except yaml.YAMLError:
        return value


class Config:
    """Shared behaviour of molgnn's frozen config dataclasses (see the module docstring)."""

    #: Old field name -> new field name; an old name raises an error naming the new one.
    RENAMED: ClassVar[dict[str, str]] = {}
    #: A field holding a nested config whose keys may be written flat (see the module docs).
    FLAT: ClassVar[str | None] = None

    def __post_init__(self) -> None:
        hints = type(self)._hints()
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, f.name)
            checked = self._check_field(f.name, value, hints.get(f.name, Any))
            if checked is not value:
                object.__setattr__(self, f.name, checked)

    def _check_field(self, name: str, value: Any, hint: Any) -> Any:
        """Type-check one field (subclasses may resolve richer values, e.g. nested configs)."""
        return check_type(name, value, hint)

    @classmethod
    def _hints(cls) -> dict[str, Any]:
        cache = cls.__dict__.get("_hint_cache")
        if cache is None:
            cache = typing.get_type_hints(cls)
            cls._hint_cache = cache  # type: ignore[attr-defined]
        return cache

    @classmethod
    def field_names(cls) -> list[str]:
        """The config's field names, in order."""
        return [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]

    @classmethod
    def _check_names(cls, names: Iterable[str]) -> None:
        valid = cls.field_names()
        for name in names:
            if name in cls.RENAMED:
                raise ValueError(
                    f"{cls.__name__} field {name!r} was renamed to {cls.RENAMED[name]!r}"
                )
        unknown = sorted(set(names) - set(valid))
        if unknown:
            what = (
                f"field {unknown[0]!r}"
                if len(unknown) == 1
                else f"fields {', '.join(map(repr, unknown))}"
            )
            hint = cls._nested_hint(unknown[0])
            raise ValueError(
                f"unknown {cls.__name__} {what}{hint}; valid fields: {', '.join(valid)}"
            )

    @classmethod
    def _nested_path(cls, name: str) -> str | None:
        """The dotted path of ``name`` inside a nested config's defaults, if it is a field there."""
        for f in dataclasses.fields(cls):  # type: ignore[arg-type]
            if f.default is not dataclasses.MISSING:
                value = f.default
            elif f.default_factory is not dataclasses.MISSING:
                value = f.default_factory()
            else:
                continue
            if isinstance(value, Config):
                if name in value.field_names():
                    return f"{f.name}.{name}"
                inner = value._nested_path(name)
                if inner is not None:
                    return f"{f.name}.{inner}"
        return None

    @classmethod
    def _nested_hint(cls, name: str) -> str:
        """``" (did you mean 'model.x'?)"`` when ``name`` is a field of a nested config."""
        path = cls._nested_path(name)
        return f" (did you mean {path!r}?)" if path else ""

    def replace(self: C, **changes: Any) -> C:
        """A copy with ``changes``; dotted keys (``"model.num_layers"``) reach nested configs.

        Raises:
            ValueError: for an unknown (or renamed) field, or a value of the wrong type.
        """
        direct: dict[str, Any] = {}
        nested: dict[str, dict[str, Any]] = {}
        for key, value in changes.items():
            head, dot, rest = key.partition(".")
            if dot:
                nested.setdefault(head, {})[rest] = value
            else:
                direct[key] = value
        self._check_names([*direct, *nested])
        for head, sub in nested.items():
            inner = direct.get(head, getattr(self, head))
            if not isinstance(inner, Config):
                raise ValueError(
                    f"{head} is not a nested config; cannot set {head}.{next(iter(sub))}"
                )
            direct[head] = inner.replace(**sub)
        return dataclasses.replace(self, **direct)  # type: ignore[type-var]

    def to_dict(self) -> dict[str, Any]:
        """Plain, JSON-able fields (nested configs as mappings, tuples as lists)."""

        def plain(value: Any) -> Any:
            if isinstance(value, Config):
                return value.to_dict()
            if isinstance(value, tuple | list):
                return [plain(v) for v in value]
            if isinstance(value, dict):
                return {k: plain(v) for k, v in value.items()}
            return value

        return {f.name: plain(getattr(self, f.name)) for f in dataclasses.fields(self)}  # type: ignore[arg-type]

    @classmethod
    def from_dict(cls: type[C], values: Mapping[str, Any]) -> C:
        """Build from a mapping of fields on top of the defaults (as
        [`merged`][molgnn.config.Config.merged] applies it: a partial mapping for a nested config
        changes that config's default); unknown keys and wrong types raise ValueError."""
        if not isinstance(values, Mapping):
            raise ValueError(
                f"expected a mapping of {cls.__name__} fields, got {type(values).__name__}"
            )
        values = dict(values)
        cls._check_names([k for k in values if "." not in k and k in cls.field_names()])
        required = [
            f.name
            for f in dataclasses.fields(cls)  # type: ignore[arg-type]
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        ]
        missing = [name for name in required if name not in values]
        if missing:
            raise ValueError(f"{cls.__name__} needs the field(s) {', '.join(missing)}")
        base = cls(**{name: values.pop(name) for name in required})
        return base.merged(values) if values else base

    @classmethod
    def from_stored(cls: type[C], values: Mapping[str, Any]) -> C:
        """Like [`from_dict`][molgnn.config.Config.from_dict], for values an older molgnn stored (a
        checkpoint's config): fields listed in ``RENAMED`` are read under their new names instead
        of refused."""
        renamed = {cls.RENAMED.get(k, k): v for k, v in values.items()}
        return cls.from_dict(renamed)

    @classmethod
    def from_yaml(cls: type[C], path: str | Path) -> C:
        """Read a YAML file of config fields; errors name the file (and line, for bad YAML)."""
        values = read_yaml(path)
        try:
            return cls.from_dict(values)
        except ValueError as err:
            raise ValueError(f"{path}: {err}") from None

    @classmethod
    def replaces_whole(cls, values: Mapping[str, Any]) -> bool:
        """Whether a mapping given for a field of this type names a whole new value (``True``)
        or changes to the current one (``False``, the default; see
        [`merged`][molgnn.config.Config.merged])."""
        return False

    def resolve_key(self, key: str) -> str:
        """The full (dotted) name of ``key``: a flat key of the ``FLAT`` config gets its prefix.

        Raises:
            ValueError: for a key that is neither a field nor, flat, a field of ``FLAT``.
        """
        head = key.partition(".")[0]
        if self.FLAT is None or head in self.field_names() or head in self.RENAMED:
            return key
        inner = getattr(self, self.FLAT)
        if isinstance(inner, Config) and (
            head in inner.field_names() or head in inner.RENAMED or inner.FLAT is not None
        ):
            try:
                return f"{self.FLAT}.{inner.resolve_key(key)}"
            except ValueError:
                pass
        inner_fields = inner.field_names() if isinstance(inner, Config) else []
        valid = [*self.field_names(), *inner_fields]
        raise ValueError(
            f"unknown {type(self).__name__} field {head!r}{self._nested_hint(head)}; valid "
            f"fields: {', '.join(valid)}"
        )

    def merged(self: C, values: Mapping[str, Any]) -> C:
        """A copy with the fields of a mapping (a YAML file's content) applied on top.

        Flat keys are routed as [`resolve_key`][molgnn.config.Config.resolve_key] says. A mapping
        given for a nested config changes that config's fields (``model: {num_layers: 2}`` keeps the
        other model fields) unless the nested type says it names a whole value (a model mapping with
        ``kind`` or ``preset``).

        Raises:
            ValueError: for an unknown (or renamed) field, or a value of the wrong type.
        """
        if not isinstance(values, Mapping):
            raise ValueError(
                f"expected a mapping of {type(self).__name__} fields, got {type(values).__name__}"
            )
        changes: dict[str, Any] = {}
        for key, value in values.items():
            full = self.resolve_key(str(key))
            current: Any = self
            for part in full.split("."):
                current._check_names([part])
                current = getattr(current, part)
            if (
                isinstance(current, Config)
                and isinstance(value, Mapping)
                and not type(current).replaces_whole(value)
            ):
                changes[full] = current.merged(value)
            else:
                changes[full] = value
        return self.replace(**changes)

    def _leaf_hint(self, key: str) -> Any:
        """The annotation of the (possibly dotted) field ``key``."""
        head, dot, rest = key.partition(".")
        self._check_names([head])
        if not dot:
            return type(self)._hints().get(head, Any)
        inner = getattr(self, head)
        if not isinstance(inner, Config):
            raise ValueError(f"{head} is not a nested config; cannot set {key}")
        return inner._leaf_hint(rest)

    def with_assignments(self: C, assignments: Iterable[str]) -> C:
        """Apply ``key=value`` strings (``--set``), in order.

        Each value is read as YAML (``3``, ``1e-3``, ``true``, ``[1, 2]``, ``{a: 1}``), except
        that a string field takes the text as written; ``none``/``null`` set an optional field
        to ``None``. The result is type-checked like any other value.

        Raises:
            ValueError: for text that is not ``key=value``, an unknown field, or a value that
                cannot be read as the field's type (naming both).
        """
        config = self
        for text in assignments:
            key, value = config.parse_assignment(text)
            config = config.replace(**{key: value})
        return config

    def parse_assignment(self, text: str) -> tuple[str, Any]:
        """``"KEY=VALUE"`` as the full dotted key (flat keys routed, see
        [`resolve_key`][molgnn.config.Config.resolve_key]) and the value read as the field's type,
        as [`with_assignments`][molgnn.config.Config.with_assignments] reads it.

        A value for a field whose type this config cannot tell yet (a nested config's field
        that only an earlier change creates) is read as YAML and checked when applied.

        Raises:
            ValueError: for text that is not ``key=value``, an unknown field, or a value that
                cannot be read as the field's type (naming both).
        """
        key, raw = parse_assignment(text)
        key = self.resolve_key(key)
        try:
            hint = self._leaf_hint(key)
        except ValueError:
            if "." not in key:
                raise
            return key, yaml_value(raw)
        value = _assignment_value(raw, hint)
        if isinstance(hint, type) and issubclass(hint, Config):
            return key, value  # the field resolves names and mappings itself
        try:
            check_type(key, value, hint)
        except ValueError:
            raise ValueError(
                f"cannot read {raw!r} as {_short_name(hint)} for {key} "
                f"(expected {_type_name(hint)})"
            ) from None
        return key, value


def _arms(hint: Any) -> tuple[Any, ...]:
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return typing.get_args(hint)
    return (hint,)


def _short_name(hint: Any) -> str:
    arms = [a for a in _arms(hint) if a is not type(None)]
    return " or ".join(getattr(a, "__name__", str(a)) for a in arms)


def _assignment_value(raw: str, hint: Any) -> Any:
    arms = _arms(hint)
    if type(None) in arms and raw.lower() in ("none", "null", "~", ""):
        return None
    if str in arms and not any(a in arms for a in (int, float, bool)):
        return raw  # a string field takes the text as written (e.g. out_dir=2024)
    return yaml_value(raw)
