"""The code MLflow keeps with a logged molgnn model (MLflow's "models from code").

Loading the model runs this file, which hands MLflow a
[`MolgnnPyfunc`][molgnn.tracking.pyfunc.MolgnnPyfunc]; nothing is unpickled.
"""

from mlflow.models import set_model

from molgnn.tracking.pyfunc import MolgnnPyfunc

set_model(MolgnnPyfunc())
