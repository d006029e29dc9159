"""Uncertainty: deep ensembles, MC dropout and calibrated (split-conformal) intervals.

An [`Ensemble`][molgnn.uncertainty.Ensemble] of `K` models, or one model with dropout run
`S` times ([`mc_dropout`][molgnn.uncertainty.mc_dropout]), gives each molecule a mean and a
standard deviation through [`molgnn.predict`][molgnn.inference.predict];
[`SplitConformal`][molgnn.uncertainty.SplitConformal] turns them into intervals with a chosen
coverage, calibrated on molecules the models never trained on (needs MAPIE, extra
`uncertainty`; importing this package does not import it).

```python
import molgnn
from molgnn.uncertainty import Ensemble, SplitConformal

ensemble = Ensemble.from_checkpoints(["m0/best.ckpt", "m1/best.ckpt", "m2/best.ckpt"])
result = molgnn.predict(ensemble, ["CCO"])  # result.values, result.std: [1, 1]
```
"""

from molgnn.uncertainty.calibration import (
    calibration_report,
    empirical_coverage,
    gaussian_interval,
    reliability_plot,
)
from molgnn.uncertainty.conformal import SplitConformal
from molgnn.uncertainty.ensemble import Ensemble, train_ensemble
from molgnn.uncertainty.sampling import dropout_layers, mc_dropout, sample_outputs

__all__ = [
    "Ensemble",
    "SplitConformal",
    "calibration_report",
    "dropout_layers",
    "empirical_coverage",
    "gaussian_interval",
    "mc_dropout",
    "reliability_plot",
    "sample_outputs",
    "train_ensemble",
]
