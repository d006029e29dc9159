"""Load a trained model from a molgnn checkpoint or an MLflow registry
([`molgnn.load`][molgnn.inference.load])."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from molgnn.io.checkpoint import load_checkpoint, model_from_checkpoint

__all__ = ["load", "registered_model"]

_REGISTRY_SCHEME = "models:/"


def load(
    path: str | Path,
    map_location: str | torch.device = "cpu",
    tracking_uri: str | None = None,
) -> torch.nn.Module:
    """Load a molgnn checkpoint, or a version of a registered model, and return the ready model,
    in eval mode.

    The model predicts in the target's units (see ``model.checkpoint_info["target"]``).

    Example:
        ```python
        model = molgnn.load("runs/gap/best.ckpt")
        pred = model(z, pos, batch)  # z [N], pos [N, 3], batch [N] -> [B, 1] in eV
        champion = molgnn.load("models:/qm9-gap-et@champion")  # needs MLFLOW_TRACKING_URI
        ```

    A `models:/<name>@<alias>` or `models:/<name>/<version>` URI is resolved in the MLflow
    registry at `tracking_uri` (else `$MLFLOW_TRACKING_URI`): the version's artifacts are
    downloaded to a temporary folder, and the one `.ckpt` file among them is read with the
    same safe loader as a file (`weights_only=True`). The registry's record is kept in
    ``model.checkpoint_info["registry"]`` (`uri`, `name`, `version`, `tracking_uri`).

    Args:
        path: A ``.ckpt`` file written by molgnn (training, sweeps, the online loop), or a
            `models:/` URI of a version registered by molgnn
            ([`register`][molgnn.tracking.register]).
        map_location: Device to load the weights onto (default: ``"cpu"``).
        tracking_uri: The MLflow tracking URI for a `models:/` URI (default: `None`:
            `$MLFLOW_TRACKING_URI`).

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        ValueError: one line naming ``path``, for anything that is not a loadable molgnn model
            checkpoint (see [`load_checkpoint`][molgnn.io.load_checkpoint] and
            [`model_from_checkpoint`][molgnn.io.model_from_checkpoint]); for a `models:/` URI,
            a malformed URI, no tracking URI, an unknown registered model, alias or version, or
            a version whose artifacts hold no molgnn checkpoint (or several).
        ImportError: for a `models:/` URI without MLflow (`pip install 'molgnn[track]'`).
    """
    if isinstance(path, str) and path.startswith(_REGISTRY_SCHEME):
        return _load_registered(path, map_location, tracking_uri)
    return model_from_checkpoint(load_checkpoint(path, map_location), source=path)


def _parse(uri: str) -> tuple[str, str | None, int | None]:
    """``models:/name@alias`` -> (name, alias, None); ``models:/name/3`` -> (name, None, 3)."""
    rest = uri[len(_REGISTRY_SCHEME) :]
    form = "use models:/<name>@<alias> or models:/<name>/<version>"
    bad = sorted(set(rest) & set("'\"`"))
    if bad:
        raise ValueError(f"{uri}: a registered model's name cannot contain {' '.join(bad)}")
    if "@" in rest:
        name, _, alias = rest.partition("@")
        if name and alias and "/" not in name and "/" not in alias:
            return name, alias, None
    elif rest.count("/") == 1:
        name, _, number = rest.partition("/")
        if name and number.isdigit() and int(number) > 0:
            return name, None, int(number)
        if name and number in ("latest", "champion"):
            raise ValueError(f"{uri}: '{number}' is not a version number; {form}")
    raise ValueError(f"{uri} is not a registered-model URI; {form}")


def _sqlite_file(uri: str) -> Path | None:
    if not uri.startswith("sqlite:///"):
        return None
    return Path(uri[len("sqlite:///") :].split("?", 1)[0])


def registered_model(client: Any, name: str, context: str = "") -> Any:
    """MLflow's registered model `name` (through `client`, an ``MlflowClient``); for a name the
    registry lacks, a ``ValueError`` that lists the names it has, after ``context`` (e.g.
    ``"models:/x@champion: "``)."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_registered_model(name)
    except MlflowException as err:
        if str(getattr(err, "error_code", "")) != "RESOURCE_DOES_NOT_EXIST":
            raise
    known = sorted(rm.name for rm in client.search_registered_models(max_results=100))
    raise ValueError(
        f"{context}the registry has no model named {name!r} (registered models: "
        f"{', '.join(known) if known else 'none'})"
    ) from None


def _resolve(client: Any, uri: str, name: str, alias: str | None, number: int) -> int:
    """The version number `uri` names; a clear error for an unknown name, alias or version."""
    registered = registered_model(client, name, f"{uri}: ")
    aliases = {str(a): int(v) for a, v in dict(registered.aliases or {}).items()}
    if alias is not None:
        if alias not in aliases:
            have = ", ".join(f"{a} (v{v})" for a, v in sorted(aliases.items())) or "none"
            raise ValueError(f"{uri}: {name!r} has no alias {alias!r} (its aliases: {have})")
        return aliases[alias]
    versions = sorted(
        int(mv.version) for mv in client.search_model_versions(f"name='{name}'", max_results=10000)
    )
    if number not in versions:
        have = ", ".join(str(v) for v in versions) or "none"
        raise ValueError(f"{uri}: {name!r} has no version {number} (its versions: {have})")
    return number


def _load_registered(
    uri: str, map_location: str | torch.device, tracking_uri: str | None
) -> torch.nn.Module:
    name, alias, number = _parse(uri)
    tracking = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
    if not tracking:
        raise ValueError(
            f"{uri}: no MLflow registry to look it up in; set MLFLOW_TRACKING_URI (e.g. "
            "sqlite:///path/to/mlflow.db) or pass tracking_uri="
        )
    database = _sqlite_file(tracking)
    if database is not None and not database.is_file():  # MLflow would create an empty one
        raise ValueError(f"{uri}: the tracking URI {tracking} names no database ({database})")
    try:
        import mlflow
    except ImportError:
        raise ImportError(f"loading {uri} needs MLflow: pip install 'molgnn[track]'") from None
    try:
        client = mlflow.MlflowClient(tracking_uri=tracking, registry_uri=tracking)
        version = _resolve(client, uri, name, alias, number or 0)
        location = client.get_model_version_download_uri(name, str(version))
    except ValueError:
        raise
    except Exception as err:  # MLflow raises its own, SQLAlchemy's and requests' errors
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise ValueError(f"{uri}: cannot use the MLflow registry at {tracking}: {first}") from None
    with tempfile.TemporaryDirectory(prefix="molgnn-registry-") as tmp:
        folder = Path(
            mlflow.artifacts.download_artifacts(
                artifact_uri=location, dst_path=tmp, tracking_uri=tracking
            )
        )
        found = sorted(folder.rglob("*.ckpt")) if folder.is_dir() else []
        if len(found) != 1:
            what = "no molgnn checkpoint (.ckpt file)" if not found else f"{len(found)} .ckpt files"
            raise ValueError(
                f"{uri} (version {version} of {name!r}) holds {what}; molgnn.load reads the "
                "versions that molgnn registers, whose artifacts hold one checkpoint"
            )
        source = f"{uri} (version {version}, {found[0].name})"
        try:
            payload = load_checkpoint(found[0], map_location)
        except ValueError as err:
            raise ValueError(f"{source}: {err}") from None
        model = model_from_checkpoint(payload, source=source)
    info = dict(getattr(model, "checkpoint_info", None) or {})
    info["registry"] = {"uri": uri, "name": name, "version": version, "tracking_uri": tracking}
    model.checkpoint_info = info  # type: ignore[assignment]
    return model
