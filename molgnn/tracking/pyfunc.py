"""The MLflow ``pyfunc`` face of a logged molgnn model.

[`log_checkpoint_model`][molgnn.tracking.log_checkpoint_model] logs a molgnn checkpoint as an
MLflow model written from code: MLflow keeps a copy of ``molgnn/tracking/_model_code.py``,
which makes a [`MolgnnPyfunc`][molgnn.tracking.pyfunc.MolgnnPyfunc], and the checkpoint as the
model's artifact. Nothing is pickled, so ``mlflow.pyfunc.load_model(model_uri)`` runs only
molgnn's own code, and molgnn itself reads the checkpoint directly with
[`molgnn.load`][molgnn.inference.load].

This module imports MLflow (it is the ``track`` extra).
"""

from __future__ import annotations

from typing import Any

from mlflow.pyfunc import PythonModel

__all__ = ["MolgnnPyfunc"]


class MolgnnPyfunc(PythonModel):
    """Predict through [`molgnn.predict`][molgnn.inference.predict] from a logged checkpoint.

    The input is a list of molecules as [`molgnn.predict`][molgnn.inference.predict] reads them
    (XYZ paths or SMILES); the output has one mapping of target name to value per molecule,
    in the target's units.
    """

    def load_context(self, context: Any) -> None:
        """Load the checkpoint artifact (``context.artifacts["checkpoint"]``)."""
        from molgnn.inference import load

        self.model = load(context.artifacts["checkpoint"])

    def predict(
        self, context: Any, model_input: list[str], params: dict[str, Any] | None = None
    ) -> list[dict[str, float]]:
        """Predict each molecule's target(s).

        Args:
            context: MLflow's model context (unused).
            model_input: Molecules as XYZ paths or SMILES.
            params: Unused.

        Returns:
            One mapping of target name to value (in the target's units) per molecule.
        """
        from molgnn.inference import predict

        out = predict(self.model, list(model_input))
        names = out.targets or [f"y{i}" for i in range(out.values.shape[1])]
        return [dict(zip(names, map(float, row), strict=True)) for row in out.values.tolist()]
