"""Inference sits below training: nothing it imports, at once or later, is ``molgnn.training``."""

import ast
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

import molgnn

PACKAGE = Path(molgnn.__file__).parent
#: The modules that serve trained models and must work without the training code.
INFERENCE_FILES = [*sorted((PACKAGE / "inference").glob("*.py")), PACKAGE / "interop" / "ase.py"]


def _imported_modules(path: Path) -> list[str]:
    """Every module an ``import`` or ``from ... import`` anywhere in ``path`` names."""
    names = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.append(node.module)
            names.extend(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _loaded_after(statement: str) -> set[str]:
    """The modules in ``sys.modules`` after running ``statement`` in a fresh interpreter."""
    code = f"import sys\n{statement}\nprint('\\n'.join(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    return set(out.stdout.split())


@pytest.mark.parametrize("path", INFERENCE_FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_no_inference_module_imports_training(path):
    upward = [m for m in _imported_modules(path) if m.startswith("molgnn.training")]
    assert upward == [], f"{path} imports {upward}"


def test_the_module_list_is_not_empty():
    names = {p.name for p in INFERENCE_FILES}
    assert {"__init__.py", "loading.py", "prediction.py", "server.py", "ase.py"} <= names


def test_importing_inference_loads_neither_training_nor_optional_extras():
    loaded = _loaded_after("import molgnn.inference, molgnn.io, molgnn.interop")
    assert "molgnn.inference.prediction" in loaded and "molgnn.io.checkpoint" in loaded
    for absent in ("molgnn.training", "fastapi", "ase", "molgnn.interop.ase"):
        assert absent not in loaded, f"{absent} was imported"


def test_loading_and_predicting_load_no_training(tmp_path):
    script = f"""
import torch
from torch_geometric.data import Data
import molgnn
from molgnn.io import save_checkpoint
from molgnn.models import build_model
tiny = {{"kind": "et", "hidden_channels": 8, "num_layers": 1, "num_heads": 2, "num_rbf": 4}}
model = build_model(tiny)
payload = {{"model_config": model.config.to_dict(), "state_dict": model.state_dict()}}
path = save_checkpoint(payload, {str(tmp_path / "m.ckpt")!r})
water = Data(z=torch.tensor([8, 1, 1]), pos=torch.tensor([[0.0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0]]))
assert molgnn.predict(molgnn.load(path), water).values.shape == (1, 1)
"""
    loaded = _loaded_after(script)
    assert "molgnn.inference.loading" in loaded and "molgnn.training" not in loaded


@pytest.mark.parametrize(
    ("module", "extra"), [("molgnn.interop.ase", "ase"), ("molgnn.inference.server", "fastapi")]
)
def test_optional_modules_load_no_training(module, extra):
    if importlib.util.find_spec(extra) is None:
        pytest.skip(f"{extra} is not installed")
    loaded = _loaded_after(f"import {module}")
    assert module in loaded and "molgnn.training" not in loaded
