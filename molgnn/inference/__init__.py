"""Inference: load a trained model and predict for new molecules.

Nothing here imports [`molgnn.training`][molgnn.training]: a checkpoint is read with
[`molgnn.io`][molgnn.io] and the model rebuilt with [`molgnn.models`][molgnn.models]. The HTTP
server needs the extra ``serve`` and so is not imported here: it is
[`molgnn.inference.server.create_app`][molgnn.inference.server.create_app].

```python
import molgnn
model = molgnn.load("runs/gap/best.ckpt")
result = molgnn.predict(model, ["water.xyz", "CCO"])  # result.values: [M, 1] in eV
```
"""

from molgnn.inference.checks import (
    MIN_DISTANCE,
    PredictionWarning,
    check_molecule,
    model_elements,
    molecule_warnings,
    training_max_atoms,
)
from molgnn.inference.loading import load
from molgnn.inference.molecules import molecule_from_smiles, to_molecules
from molgnn.inference.prediction import Predictions, predict

__all__ = [
    "MIN_DISTANCE",
    "PredictionWarning",
    "Predictions",
    "check_molecule",
    "load",
    "model_elements",
    "molecule_from_smiles",
    "molecule_warnings",
    "predict",
    "to_molecules",
    "training_max_atoms",
]
