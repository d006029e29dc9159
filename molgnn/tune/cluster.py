"""Join a Ray cluster that uses Ray's token authentication.

``ray start --head`` turns on token authentication whenever the head machine has a token
(``ray get-auth-token --generate`` writes one, and so does a first local ``ray.init()``); a
process that joins such a cluster must send the same token. Ray looks for it, in this order
(Ray 2.60, ``AuthenticationTokenLoader``):

1. the ``RAY_AUTH_TOKEN`` environment variable;
2. the file that ``RAY_AUTH_TOKEN_PATH`` names;
3. ``~/.ray/auth_token``.

``RAY_AUTH_MODE`` is ``token`` or ``disabled``. Ray itself switches a joining driver to
``token`` only for ``ray.init(address="auto")``, never for an explicit ``HOST:PORT``, so
[`prepare_token_auth`][molgnn.tune.prepare_token_auth] does it for both when ``RAY_AUTH_MODE`` is
unset and a token is there; a cluster without authentication accepts such a driver too. It never
turns authentication off: an explicit ``RAY_AUTH_MODE=disabled`` is the user's own choice.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = [
    "AUTH_MODES",
    "ClusterConnectionError",
    "auth_token_source",
    "join_error",
    "prepare_token_auth",
]

#: The values of ``RAY_AUTH_MODE`` that Ray knows.
AUTH_MODES = ("token", "disabled")

_MODE = "RAY_AUTH_MODE"
_TOKEN = "RAY_AUTH_TOKEN"
_TOKEN_PATH = "RAY_AUTH_TOKEN_PATH"
_HOW_TO_SET = (
    "set RAY_AUTH_TOKEN to the output of `ray get-auth-token` on the head node "
    "(or copy the head node's ~/.ray/auth_token to this machine, or point "
    "RAY_AUTH_TOKEN_PATH at a copy of it)"
)


class ClusterConnectionError(ConnectionError):
    """molgnn could not join the Ray cluster; the message (one line) says what to set."""


def _default_token_path() -> Path:
    return Path.home() / ".ray" / "auth_token"


def _has_content(path: Path) -> bool:
    try:
        return bool(path.read_text().strip())
    except (OSError, UnicodeDecodeError):
        return False


def auth_token_source() -> str | None:
    """Where Ray would read this process's auth token from, or ``None`` when there is none.

    Follows Ray's order: a non-empty ``RAY_AUTH_TOKEN``, else the file that a non-empty
    ``RAY_AUTH_TOKEN_PATH`` names, else ``~/.ray/auth_token``. As in Ray, a
    ``RAY_AUTH_TOKEN`` of blanks means no token, and a ``RAY_AUTH_TOKEN_PATH`` is not
    skipped when its file is missing or empty: that is an error.

    Returns:
        ``"RAY_AUTH_TOKEN"``, ``"RAY_AUTH_TOKEN_PATH (<file>)"``,
        ``"~/.ray/auth_token (<file>)"`` or ``None``.

    Raises:
        ClusterConnectionError: ``RAY_AUTH_TOKEN_PATH`` names a missing or empty file.
    """
    token = os.environ.get(_TOKEN, "")
    if token:
        return _TOKEN if token.strip() else None
    path = os.environ.get(_TOKEN_PATH, "")
    if path:
        if not _has_content(Path(path)):
            raise ClusterConnectionError(
                f"{_TOKEN_PATH}={path} is set but that file is missing or empty: put the "
                "head node's token in it (`ray get-auth-token` on the head node prints it) "
                f"or unset {_TOKEN_PATH}"
            )
        return f"{_TOKEN_PATH} ({path})"
    default = _default_token_path()
    if _has_content(default):
        return f"~/.ray/auth_token ({default})"
    return None


def _refresh_ray_config() -> None:
    """Make this process's Ray read ``RAY_AUTH_MODE`` again (Ray caches it)."""
    try:
        from ray._raylet import AuthenticationTokenLoader, Config  # type: ignore[attr-defined]
    except ImportError:  # pragma: no cover - a Ray without token authentication
        return
    Config.initialize("")  # before the token cache, as Ray's own tests do
    AuthenticationTokenLoader.instance().reset_cache()


def prepare_token_auth() -> str | None:
    """Before joining a cluster: use this machine's auth token if it has one.

    With ``RAY_AUTH_MODE`` unset and a token found (see
    [`auth_token_source`][molgnn.tune.auth_token_source]), sets ``RAY_AUTH_MODE=token`` for this
    process and the processes it starts, as ``ray.init`` does for ``address="auto"``. Only a driver
    needs this: the trials run in worker processes of the nodes, which ``ray start`` configured.

    Returns:
        Where the token comes from, or ``None``.

    Raises:
        ClusterConnectionError: ``RAY_AUTH_MODE`` is not a mode Ray knows, or is ``token``
            while no token is found, or ``RAY_AUTH_TOKEN_PATH`` names a missing file.
    """
    mode = os.environ.get(_MODE, "")
    if mode and mode.strip().lower() not in AUTH_MODES:
        raise ClusterConnectionError(
            f"{_MODE}={mode} is not a mode Ray knows: use 'token', or unset it "
            "(molgnn then uses a token when it finds one)"
        )
    if mode.strip().lower() == "disabled":
        return None  # the user's own choice; Ray reads no token then
    source = auth_token_source()
    if not mode:
        if source is not None:
            os.environ[_MODE] = "token"
            _refresh_ray_config()
    elif source is None:  # RAY_AUTH_MODE=token
        raise ClusterConnectionError(
            f"{_MODE}=token but no Ray auth token was found: {_HOW_TO_SET}"
        )
    return source


def _chain_text(err: BaseException) -> str:
    parts: list[str] = []
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        parts.append(f"{type(current).__name__}: {current}")
        current = current.__cause__ or current.__context__
    return "\n".join(parts)


def join_error(address: str, err: BaseException, source: str | None) -> ClusterConnectionError:
    """A one-line explanation of why joining the cluster at ``address`` failed.

    Args:
        address: The address given (``"auto"`` or ``HOST:PORT``).
        err: What ``ray.init`` raised.
        source: Where the token came from ([`prepare_token_auth`][molgnn.tune.prepare_token_auth]),
            or ``None``.

    Returns:
        The error to raise.
    """
    text = _chain_text(err)
    where = (
        "the Ray cluster (--address auto)" if address == "auto" else f"the Ray cluster at {address}"
    )
    if any(word in text for word in ("InvalidAuthToken", "Unauthenticated", "AuthenticationError")):
        mode = os.environ.get(_MODE, "").strip().lower()
        if mode == "disabled":
            return ClusterConnectionError(
                f"{where} requires an auth token but {_MODE}=disabled is set here: unset "
                f"{_MODE} and {_HOW_TO_SET}"
            )
        if source is None:
            return ClusterConnectionError(
                f"{where} requires an auth token (Ray's token authentication) and none was "
                f"found here: {_HOW_TO_SET}"
            )
        return ClusterConnectionError(
            f"{where} rejected the auth token from {source}: it is not the head node's "
            "token; set RAY_AUTH_TOKEN to the output of `ray get-auth-token` on the head node"
        )
    first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return ClusterConnectionError(f"could not join {where}: {first}")
