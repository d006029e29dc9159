"""What the inference tests share: a tiny model, water, a long SMILES, checkpoints, ``raises``.

Not a test module: the tests put this folder on ``sys.path`` and ``import inference_battery``,
as tests/online imports ``online_worker``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pytest
import torch

from molgnn.models import build_model

#: A tiny ET: seconds to build, run and save.
TINY = {
    "kind": "et",
    "hidden_channels": 8,
    "num_layers": 1,
    "num_heads": 2,
    "num_rbf": 4,
    "max_num_neighbors": 16,
}
#: One water molecule as XYZ text, and its positions (Å).
WATER = "3\nwater\nO 0.0 0.0 0.0\nH 0.96 0.0 0.0\nH -0.24 0.93 0.0\n"
WATER_POSITIONS = [[0.0, 0.0, 0.0], [0.96, 0.0, 0.0], [-0.24, 0.93, 0.0]]
WATER_POS = torch.tensor(WATER_POSITIONS)
#: Octadecane with atom-map numbers (as reaction tools write it): 270 characters, 56 atoms, cheap
#: to embed; longer than a file name may be.
LONG_SMILES = "".join(f"[CH{2 + (i in (1, 18))}:{100000000 + i}]" for i in range(1, 19))
#: The data record of the tiny checkpoints: QM9's elements, at most 14 atoms per molecule.
TRAINING_DATA = {"dataset": "QM9", "elements": [1, 6, 7, 8], "max_atoms": 14}


def tiny_payload(
    names: Sequence[str] = ("gap",),
    units: Sequence[str] = ("eV",),
    data: dict[str, Any] | None = None,
    config: dict[str, Any] | None = None,
    seed: int = 0,
    nan_weights: bool = False,
) -> dict[str, Any]:
    """A checkpoint payload of an untrained model (``TINY`` unless ``config``), for ``save_checkpoint``."""
    torch.manual_seed(seed)
    model = build_model(dict(config or TINY))
    state = model.state_dict()
    if nan_weights:
        state = {k: v * float("nan") if v.is_floating_point() else v for k, v in state.items()}
    return {
        "model_config": model.config.to_dict(),
        "state_dict": state,
        "target": {"names": list(names), "units": list(units)},
        "data": dict(TRAINING_DATA) if data is None else data,
    }


def raises(exc: Any, call: Callable[[], Any], *names: str) -> str:
    """``call()`` raises ``exc`` with one line naming every one of ``names``, no traceback."""
    with pytest.raises(exc) as info:
        call()
    message = str(info.value)
    for name in names:
        assert name in message, f"{name!r} not in {message!r}"
    assert "Traceback" not in message and "\n" not in message.strip(), message
    return message
