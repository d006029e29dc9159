"""The base class of model configurations."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from molgnn.config import Config

if TYPE_CHECKING:
    from molgnn.models.model import MolecularModel

__all__ = ["ModelConfig"]

M = TypeVar("M", bound="ModelConfig")


class ModelConfig(Config):
    """A model's configuration: a frozen dataclass of constructor arguments, checked by type.

    Subclasses set ``kind`` (their key in :data:`molgnn.models.MODEL_CONFIGS`) and define
    :meth:`build`. ``to_dict`` adds ``"kind"``, so :func:`molgnn.models.build_model` of it
    rebuilds the model.
    """

    kind: ClassVar[str] = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-able fields plus ``"kind"``."""
        return {"kind": self.kind, **super().to_dict()}

    @classmethod
    def from_dict(cls: type[M], values: Mapping[str, Any]) -> M:
        """Build from a mapping of fields (a ``"kind"`` key, if present, must be this kind)."""
        values = dict(values)
        kind = values.pop("kind", cls.kind)
        if kind != cls.kind:
            raise ValueError(f"{cls.__name__} is kind {cls.kind!r}, got kind {kind!r}")
        return super().from_dict(values)

    @abstractmethod
    def build(self) -> MolecularModel:
        """Construct the model."""
