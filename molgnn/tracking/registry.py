"""The model registry on MLflow: numbered versions of a registered model and its `champion`.

[`register`][molgnn.tracking.register] makes a new version of a registered model from a
tracked run's logged model (see [`FitTracker`][molgnn.tracking.FitTracker]) and tags it with what
links it back:

| tag | value |
| --- | --- |
| `molgnn.source` | the logged model's URI (finds the version again: never registered twice) |
| `molgnn.test_mae` | the test MAE, in the target's units |
| `molgnn.heldout_digest` | the content hash of the molecules it was tested on |
| `molgnn.champion_decision` | what the champion rule decided for it, in words |

The online loop adds `molgnn.data_version` (the data version's id), `molgnn.data_size`,
`molgnn.store`, `molgnn.store_model` (the model's id in the store) and
`molgnn.checkpoint_sha256`.

**The champion rule.** The alias `champion` moves to a new version only when its test MAE is
strictly lower than the current champion's *on the same held-out set* (the same
`molgnn.heldout_digest`). The first version of a registered model becomes its champion. A
version tested on another held-out set is not compared, so it never takes the alias by itself
(a lower MAE on other molecules proves nothing); move the alias to it on purpose with
[`promote`][molgnn.tracking.promote]. Each version's decision is made once and
recorded in its `molgnn.champion_decision` tag.

MLflow is imported only when one of these functions runs. One process at a time should
register versions of one registered model (the online loop holds its store's lock).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from molgnn.online import Store
    from molgnn.tracking.runs import TrackedRun

__all__ = [
    "CHAMPION",
    "RegisteredVersion",
    "champion",
    "promote",
    "reconcile",
    "register",
    "versions",
]

#: The alias of the best version on the champion's held-out set.
CHAMPION = "champion"

SOURCE_TAG = "molgnn.source"
TEST_MAE_TAG = "molgnn.test_mae"
HELDOUT_TAG = "molgnn.heldout_digest"
DECISION_TAG = "molgnn.champion_decision"


@dataclass(frozen=True)
class RegisteredVersion:
    """One version of a registered model, as the registry holds it.

    Attributes:
        name: The registered model's name.
        version: The version number (1, 2, ...).
        source: The logged model it was made from (its `molgnn.source` tag, else MLflow's
            source).
        run_id: The MLflow run that trained it, or `None`.
        test_mae: Its test MAE (`molgnn.test_mae`), or `None` for a version molgnn did not
            register.
        heldout_digest: The held-out set's digest (`molgnn.heldout_digest`), or `None`.
        aliases: Its aliases (`("champion",)` for the champion).
        tags: All its tags.
    """

    name: str
    version: int
    source: str
    run_id: str | None
    test_mae: float | None
    heldout_digest: str | None
    aliases: tuple[str, ...] = ()
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def model_uri(self) -> str:
        """`models:/<name>/<version>`, which [`molgnn.load`][molgnn.inference.load] reads."""
        return f"models:/{self.name}/{self.version}"


def _mlflow() -> Any:
    try:
        import mlflow
    except ImportError:
        raise ImportError("the model registry needs MLflow: pip install 'molgnn[track]'") from None
    return mlflow


def _client(uri: str) -> Any:
    """An MLflow client of the registry at `uri` that has answered once."""
    if not uri:
        raise ValueError("the model registry needs a tracking URI (e.g. sqlite:///mlflow.db)")
    mlflow = _mlflow()
    try:
        client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
        client.search_registered_models(max_results=1)
    except Exception as err:  # MLflow raises its own, SQLAlchemy's and requests' errors
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise ValueError(f"cannot use the MLflow registry at {uri!r}: {first}") from None
    return client


def _check_name(name: str) -> None:
    if not name or not name.strip():
        raise ValueError("a registered model needs a non-empty name")
    bad = sorted(set(name) & set("'\"`/@:"))
    if bad:
        raise ValueError(
            f"registered model name {name!r} contains {' '.join(bad)}; use letters, digits, "
            "'-', '_' and '.' (the name goes into models:/<name>@<alias> URIs)"
        )


def _error_code(err: BaseException) -> str:
    return str(getattr(err, "error_code", ""))


def _ensure_registered_model(client: Any, name: str) -> Any:
    """The registered model `name`, created on first use."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_registered_model(name)
    except MlflowException as err:
        if _error_code(err) != "RESOURCE_DOES_NOT_EXIST":
            raise
    try:
        client.create_registered_model(
            name, description="Registered by molgnn (see molgnn.tracking.registry)."
        )
    except MlflowException as err:
        if _error_code(err) != "RESOURCE_ALREADY_EXISTS":  # another process made it meanwhile
            raise
    return client.get_registered_model(name)


def _model_versions(client: Any, name: str) -> list[Any]:
    """Every version of `name` (MLflow's ``ModelVersion``), oldest first."""
    found: list[Any] = []
    token = None
    while True:
        page = client.search_model_versions(f"name='{name}'", page_token=token)
        found.extend(page)
        token = page.token
        if not token:
            break
    return sorted(found, key=lambda mv: int(mv.version))


def _float(text: str | None) -> float | None:
    try:
        return float(text) if text is not None else None
    except ValueError:
        return None


def _registered(mv: Any, aliases: Mapping[str, Any]) -> RegisteredVersion:
    tags = dict(mv.tags or {})
    version = int(mv.version)
    return RegisteredVersion(
        name=str(mv.name),
        version=version,
        source=tags.get(SOURCE_TAG, str(mv.source)),
        run_id=mv.run_id or None,
        test_mae=_float(tags.get(TEST_MAE_TAG)),
        heldout_digest=tags.get(HELDOUT_TAG),
        aliases=tuple(sorted(a for a, v in aliases.items() if int(v) == version)),
        tags=tags,
    )


def _model_id(model_uri: str) -> str | None:
    """The logged-model id of a ``models:/m-<id>`` URI (MLflow 3's logged models)."""
    rest = model_uri.removeprefix("models:/")
    return rest if rest != model_uri and rest.startswith("m-") and "/" not in rest else None


def _decide(client: Any, name: str, version: int, test_mae: float, heldout: str) -> str:
    """Apply the champion rule to `version` (once: the decision is recorded in a tag)."""
    aliases = dict(client.get_registered_model(name).aliases or {})
    current = aliases.get(CHAMPION)
    if current is None:
        client.set_registered_model_alias(name, CHAMPION, str(version))
        decision = "champion: the first version"
    elif int(current) == version:  # set before a crash, the decision tag not yet written
        decision = "champion"
    else:
        held = client.get_model_version(name, str(current))
        held_mae = _float((held.tags or {}).get(TEST_MAE_TAG))
        held_digest = (held.tags or {}).get(HELDOUT_TAG)
        if held_mae is None or held_digest != heldout:
            decision = (
                f"not compared: champion v{current} was tested on another held-out set; "
                "promote this version explicitly to make it the champion"
            )
        elif test_mae < held_mae:
            client.set_registered_model_alias(name, CHAMPION, str(version))
            decision = f"champion: test MAE {test_mae:.6g} beat v{current}'s {held_mae:.6g}"
        else:
            decision = f"not champion: v{current} has test MAE {held_mae:.6g} <= {test_mae:.6g}"
    client.set_model_version_tag(name, str(version), DECISION_TAG, decision)
    return decision


def register(
    uri: str,
    name: str,
    tracked: TrackedRun,
    test_mae: float,
    heldout_digest: str,
    tags: Mapping[str, str] | None = None,
) -> int:
    """Make `tracked`'s logged model a new version of the registered model `name`.

    The registered model is created on first use. If a version made from the same logged
    model (`molgnn.source` tag) already exists, as after a crash, that version is returned and
    nothing is registered twice. The `champion` alias then moves here only when `test_mae`
    is strictly lower than the champion's on the same held-out set (the same
    `heldout_digest`), or when there is no champion yet; a champion tested on another held-out
    set is not compared and keeps the alias (see [`promote`][molgnn.tracking.promote]). The
    decision is made once per version and recorded in its `molgnn.champion_decision` tag.

    Args:
        uri: The MLflow tracking (and registry) URI.
        name: The registered model's name (e.g. `"qm9-gap-et"`).
        tracked: The finished run and its logged model
            ([`FitTracker.finish`][molgnn.tracking.FitTracker.finish]).
        test_mae: The model's test MAE in the target's units.
        heldout_digest: The content hash of the molecules `test_mae` was measured on.
        tags: More version tags (default: `None`).

    Returns:
        The version number.

    Raises:
        ValueError: for an empty or unusable name, a negative or non-finite `test_mae`, or an
            empty `heldout_digest`.
        ImportError: without MLflow (`pip install 'molgnn[track]'`).
    """
    _check_name(name)
    test_mae = float(test_mae)
    if not (math.isfinite(test_mae) and test_mae >= 0):
        raise ValueError(f"test_mae must be a finite, non-negative number, got {test_mae}")
    if not heldout_digest:
        raise ValueError("heldout_digest must name the held-out set the test MAE was measured on")
    client = _client(uri)
    _ensure_registered_model(client, name)
    mv = next(
        (v for v in _model_versions(client, name) if v.tags.get(SOURCE_TAG) == tracked.model_uri),
        None,
    )
    if mv is None:
        all_tags = {
            **{str(k): str(v) for k, v in (tags or {}).items()},
            SOURCE_TAG: tracked.model_uri,
            TEST_MAE_TAG: repr(test_mae),
            HELDOUT_TAG: heldout_digest,
        }
        from molgnn.tracking.runs import _tracking_uri_set

        # MLflow's SQL registry looks a logged model up through the process-wide tracking URI.
        with _tracking_uri_set(uri):
            mv = client.create_model_version(
                name,
                source=tracked.model_uri,
                run_id=tracked.run_id,
                tags=all_tags,
                model_id=_model_id(tracked.model_uri),
            )
    version = int(mv.version)
    if DECISION_TAG not in (mv.tags or {}):
        _decide(client, name, version, test_mae, heldout_digest)
    return version


def versions(uri: str, name: str) -> list[RegisteredVersion]:
    """Every version of the registered model `name`, oldest first.

    Raises:
        ValueError: if the registry has no model `name`.
        ImportError: without MLflow.
    """
    client = _client(uri)
    aliases = _aliases(client, name)
    return [_registered(mv, aliases) for mv in _model_versions(client, name)]


def champion(uri: str, name: str) -> RegisteredVersion | None:
    """The version that holds the `champion` alias, or `None` when no version does.

    Raises:
        ValueError: if the registry has no model `name`.
        ImportError: without MLflow.
    """
    client = _client(uri)
    aliases = _aliases(client, name)
    if CHAMPION not in aliases:
        return None
    return _registered(client.get_model_version(name, str(aliases[CHAMPION])), aliases)


def promote(uri: str, name: str, version: int) -> None:
    """Move the `champion` alias to `version` by hand (e.g. the first version tested on a new
    held-out set, which the champion rule never compares with the old champion).

    Raises:
        ValueError: if the registry has no model `name` or no such version.
        ImportError: without MLflow.
    """
    client = _client(uri)
    _aliases(client, name)
    known = [int(mv.version) for mv in _model_versions(client, name)]
    if int(version) not in known:
        raise ValueError(f"registered model {name!r} has no version {version} (versions: {known})")
    client.set_registered_model_alias(name, CHAMPION, str(int(version)))
    client.set_model_version_tag(
        name, str(int(version)), DECISION_TAG, "champion: promoted by hand"
    )


def _aliases(client: Any, name: str) -> dict[str, Any]:
    from molgnn.inference.loading import registered_model

    _check_name(name)
    return dict(registered_model(client, name).aliases or {})


def reconcile(uri: str, name: str, store: Store, experiment: str = "molgnn-online") -> list[str]:
    """Make the MLflow registry and an online store's registry agree, after a crash or when
    tracking is turned on for an existing store; returns what was done.

    Call it while holding the store's [`lock`][molgnn.online.Store.lock]; the online loop does,
    each time it starts with MLflow on. For every model of the store, oldest first:

    - a version of `name` whose `molgnn.checkpoint_sha256` tag is the model's checkpoint
      SHA-256 is that model's version: nothing is registered twice, and a missing or stale
      link in the store ([`Store.mlflow_versions`][molgnn.online.Store.mlflow_versions]) is
      rewritten;
    - a model without a version is registered: from its own training run when that run
      finished and logged the model (its `molgnn.checkpoint_sha256` tag), else from a new run
      that logs the store's checkpoint and metrics, so nothing is lost;
    - a version whose champion decision was interrupted gets it.

    Runs of this store still marked `RUNNING` belong to killed processes (the lock says no
    other process is writing) and are marked `KILLED`.

    Args:
        uri: The MLflow tracking (and registry) URI.
        name: The registered model's name.
        store: The online store (opened for writing).
        experiment: The MLflow experiment of recovered runs (default: `"molgnn-online"`).

    Raises:
        ImportError: without MLflow.
    """
    from molgnn.tracking import _online

    return _online.reconcile(uri, name, store, experiment)
