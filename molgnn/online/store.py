"""The online store: molecules, data versions and the model registry in one SQLite database.

Every change is one transaction, so a process killed at any moment leaves either the state
before the change or after it. Checkpoints are written atomically under ``models/`` and named by
their SHA-256 *before* the registering transaction commits.

Nothing the user saved is deleted on a guess:

- Every file a run is about to write is first recorded in a journal (a table of the database);
  [`Store.clean_orphans`][molgnn.online.Store.clean_orphans] removes only journalled files that no
  model references, so a checkpoint the registry does not know (for example after the database was
  lost) stays.
- A folder that holds checkpoints but no usable database is *damaged*, not new: opening it for
  writing raises [`DamagedStoreError`][molgnn.online.DamagedStoreError] and writes nothing.
- After every registered model the database is copied, atomically, to ``store.sqlite.backup``;
  [`Store.repair`][molgnn.online.Store.repair] restores from it and registers every checkpoint the
  registry lacks from the record that each checkpoint carries (its data version, config, settings
  and metrics).
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch_geometric.data import Data

from molgnn.io.atomic import write_atomic_with
from molgnn.online.versions import DataVersion, molecule_hash, version_id

__all__ = [
    "REGISTRY_RECORD",
    "AcquisitionRecord",
    "DamagedStoreError",
    "MlflowVersion",
    "ModelRecord",
    "Store",
]

#: The tables every store database has.
_TABLES = ("molecules", "versions", "models", "state")
#: Key of the registry record inside a checkpoint written by the online loop.
REGISTRY_RECORD = "online_registry"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS molecules (
    mol_id TEXT PRIMARY KEY,
    hash TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('train', 'val', 'test')),
    seq INTEGER NOT NULL,
    z BLOB NOT NULL,
    pos BLOB NOT NULL,
    y BLOB NOT NULL,
    y_cols INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS versions (
    id TEXT PRIMARY KEY,
    parent TEXT REFERENCES versions(id),
    size INTEGER NOT NULL,
    seq INTEGER NOT NULL UNIQUE,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS models (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    data_version TEXT NOT NULL REFERENCES versions(id),
    checkpoint TEXT NOT NULL,
    checkpoint_sha256 TEXT NOT NULL,
    parent_model INTEGER REFERENCES models(id),
    warm_start INTEGER NOT NULL,
    config TEXT NOT NULL,
    hyperparameters TEXT NOT NULL,
    val_mae REAL,
    test_mae REAL,
    metrics TEXT NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS state (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS journal (path TEXT PRIMARY KEY, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS mlflow_versions (
    model INTEGER NOT NULL REFERENCES models(id),
    tracking_uri TEXT NOT NULL,
    name TEXT NOT NULL,
    version INTEGER NOT NULL,
    run_id TEXT,
    created REAL NOT NULL,
    PRIMARY KEY (model, tracking_uri, name)
);
CREATE TABLE IF NOT EXISTS acquisitions (
    version TEXT PRIMARY KEY REFERENCES versions(id),
    strategy TEXT NOT NULL,
    model INTEGER REFERENCES models(id),
    offered INTEGER NOT NULL,
    chosen TEXT NOT NULL,
    scores TEXT NOT NULL,
    details TEXT NOT NULL,
    created REAL NOT NULL
);
"""


@dataclass(frozen=True)
class AcquisitionRecord:
    """How the molecules of one data version were chosen.

    Stores made before these records have none for their versions (the table is added,
    empty, when such a store is next opened for writing).

    Attributes:
        version: Id of the data version.
        strategy: `"initial"` (the first version, in the seeded order), `"stream"` (a chunk
            in arrival order) or the acquisition strategy that chose them (`"random"`,
            `"disagreement"`, `"mc-dropout"`, `"largest-error-oracle"`, `"lcb"`, `"ucb"`,
            `"ei"`).
        model: Id of the registered model that scored the candidates, or `None`.
        offered: Candidates offered to the strategy (the chunk's size for `"stream"`).
        chosen: Ids of the molecules it added, in the order chosen.
        scores: Each offered candidate's score (higher is chosen first; empty for
            `"initial"` and `"stream"`).
        details: The strategy's settings (e.g. `{"committee": 3, "scored_on": <version>}`),
            and, for a round with `top_fraction` set, `search`: the targeted search's count
            after the round (`found` of the source's `top` best molecules in the training
            data, `computed` molecules; see [`acquire_round`][molgnn.online.acquire_round]).
        created: Unix time of the version.
    """

    version: str
    strategy: str
    model: int | None
    offered: int
    chosen: list[str]
    scores: dict[str, float]
    details: dict[str, Any]
    created: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return dict(self.__dict__)


class DamagedStoreError(ValueError):
    """The store folder holds checkpoints but no usable database (or an unreadable one)."""


@dataclass(frozen=True)
class ModelRecord:
    """One registered model.

    Attributes:
        id: Registry id (1, 2, ...).
        data_version: Id of the data version the model was trained on.
        checkpoint: Checkpoint path, relative to the store's folder.
        checkpoint_sha256: SHA-256 of the checkpoint file.
        parent_model: Id of the model it was warm-started from, or ``None``.
        warm_start: Whether training started from ``parent_model``'s weights.
        config: The model config (``build_model(config)`` rebuilds the architecture).
        hyperparameters: The training settings.
        val_mae: Validation MAE on the fixed validation molecules (target units).
        test_mae: Test MAE on the fixed test molecules (target units).
        metrics: All final metrics (``data_size`` included).
        created: Unix time of registration.
    """

    id: int
    data_version: str
    checkpoint: str
    checkpoint_sha256: str
    parent_model: int | None
    warm_start: bool
    config: dict[str, Any]
    hyperparameters: dict[str, Any]
    val_mae: float | None
    test_mae: float | None
    metrics: dict[str, Any]
    created: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (``data_version`` included)."""
        return dict(self.__dict__)


@dataclass(frozen=True)
class MlflowVersion:
    """Where a model of the store is in an MLflow model registry.

    Written by the online loop once MLflow has registered the model (see
    [`molgnn.tracking.reconcile`][molgnn.tracking.reconcile], which rewrites these links from
    MLflow's own tags after a crash). Stores made before these links have none; the table is
    added, empty, when such a store is next opened for writing.

    Attributes:
        model: Id of the model in this store.
        tracking_uri: The MLflow tracking (and registry) URI.
        name: The registered model's name.
        version: Its MLflow version number.
        run_id: The MLflow run that trained the model, or `None`.
        created: Unix time the link was recorded.
    """

    model: int
    tracking_uri: str
    name: str
    version: int
    run_id: str | None
    created: float

    @property
    def model_uri(self) -> str:
        """`models:/<name>/<version>`, which [`molgnn.load`][molgnn.inference.load] reads."""
        return f"models:/{self.name}/{self.version}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return dict(self.__dict__)


def _encode(data: Data) -> tuple[bytes, bytes, bytes, int]:
    y = data.y.detach().cpu().to(torch.float64).reshape(1, -1)
    return (
        np.ascontiguousarray(data.z.cpu().numpy().astype("<i8")).tobytes(),
        np.ascontiguousarray(data.pos.detach().cpu().numpy().astype("<f8")).tobytes(),
        np.ascontiguousarray(y.numpy().astype("<f8")).tobytes(),
        y.size(1),
    )


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _decode(mol_id: str, z: bytes, pos: bytes, y: bytes, cols: int) -> Data:
    zt = torch.from_numpy(np.frombuffer(z, dtype="<i8").copy())
    pt = torch.from_numpy(np.frombuffer(pos, dtype="<f8").copy()).view(-1, 3).float()
    yt = torch.from_numpy(np.frombuffer(y, dtype="<f8").copy()).view(1, cols).float()
    return Data(z=zt, pos=pt, y=yt, mol_id=mol_id)


def _database_problem(path: Path) -> str | None:
    """Why ``path`` is not a usable store database (``None`` when it is)."""
    if not path.exists():
        return "is missing"
    if path.stat().st_size == 0:
        return "is empty"
    try:
        db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            names = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
            status = str(db.execute("PRAGMA quick_check").fetchone()[0])
        finally:
            db.close()
    except sqlite3.DatabaseError as err:
        return f"is not a readable SQLite database ({err})"
    missing = [t for t in _TABLES if t not in names]
    if missing:
        return f"lacks the store's tables ({', '.join(missing)})"
    if status != "ok":
        return f"fails SQLite's integrity check ({status})"
    return None


class Store:
    """A folder holding ``store.sqlite`` and ``models/*.ckpt``.

    Args:
        root: The store's folder (created if missing, unless ``readonly``).
        readonly: Open the database read-only; the store must exist and be healthy
            (default: ``False``). The registry's read commands open stores this way.

    Raises:
        DamagedStoreError: if the folder holds checkpoints but its database is missing, empty,
            unreadable or lacks the store's tables (nothing is written then; see
            [`repair`][molgnn.online.Store.repair]).
        ValueError: with ``readonly``, if there is no store at ``root``.
    """

    def __init__(self, root: str | Path, readonly: bool = False) -> None:
        self.root = Path(root)
        self.path = self.root / "store.sqlite"
        self.readonly = readonly
        problem = _database_problem(self.path)
        if problem is not None:
            checkpoints = self.checkpoint_files()
            if readonly and not checkpoints and problem == "is missing":
                raise ValueError(f"no online store at {self.root} (no store.sqlite there)")
            if not checkpoints and problem not in ("is missing", "is empty"):
                raise DamagedStoreError(
                    f"{self.path} is not a usable online store database: it {problem}. Nothing "
                    "was written; move it away or use another --store"
                )
            if checkpoints or readonly:
                raise DamagedStoreError(
                    f"the online store {self.root} is damaged: {self.path.name} {problem}, but "
                    f"models/ holds {len(checkpoints)} checkpoint(s). Nothing was written. Run "
                    f"`molgnn registry repair --store {self.root}` to rebuild the registry from "
                    "the backup and the checkpoints' own records"
                )
        if readonly:
            self.db = sqlite3.connect(
                f"{self.path.resolve().as_uri()}?mode=ro", uri=True, isolation_level=None
            )
            return
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "models").mkdir(exist_ok=True)
        self.db = self._connect(self.path)

    @staticmethod
    def _connect(path: Path) -> sqlite3.Connection:
        db = sqlite3.connect(path, isolation_level=None, timeout=30)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.execute("PRAGMA foreign_keys=ON")
            db.executescript(_SCHEMA)
        except sqlite3.DatabaseError as err:
            db.close()
            raise DamagedStoreError(
                f"{path} is not a usable online store database: {err}"
            ) from None
        return db

    def checkpoint_files(self) -> list[Path]:
        """The checkpoint files under ``models/``, sorted."""
        folder = self.root / "models"
        return sorted(folder.glob("*.ckpt")) if folder.is_dir() else []

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the database."""
        self.db.close()

    @contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the store's writer lock (one running loop per store).

        The lock is an advisory ``flock`` on ``.lock`` that the operating system releases when
        the process dies, so a killed run never leaves a stale lock. Without ``fcntl``
        (Windows) this does nothing.

        Raises:
            ValueError: if another process holds the lock.
        """
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows
            yield
            return
        fd = os.open(self.root / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise ValueError(
                    f"another process is writing to the store {self.root} "
                    "(a running `molgnn online`?); wait for it or stop it first"
                ) from None
            yield
        finally:
            os.close(fd)

    def work_dir(self) -> Path:
        """A fresh scratch folder inside the store, journalled first (see
        [`journal`][molgnn.online.Store.journal])."""
        path = self.root / f".work-{uuid.uuid4().hex}"
        self.journal(path)
        path.mkdir()
        return path

    def journal(self, path: Path) -> None:
        """Record that this run is about to write ``path`` (before writing it).

        [`clean_orphans`][molgnn.online.Store.clean_orphans] removes only journalled paths that no
        model references, so a crash between the write and the registration leaves nothing behind,
        and files the run did not write are never touched.
        """
        with self.transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO journal VALUES (?, ?)",
                (str(path.relative_to(self.root)), time.time()),
            )

    def journalled(self) -> list[str]:
        """Paths (relative to the store) that a run recorded before writing them."""
        tables = {row[0] for row in self.db.execute("SELECT name FROM sqlite_master")}
        if "journal" not in tables:  # a store made before the journal existed
            return []
        return [row[0] for row in self.db.execute("SELECT path FROM journal ORDER BY path")]

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT``, rolled back on any error."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    # -- state ----------------------------------------------------------------------------------
    def get_state(self, key: str, default: Any = None) -> Any:
        """A JSON value stored under ``key``."""
        row = self.db.execute("SELECT value FROM state WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else default

    @staticmethod
    def _set_state(db: sqlite3.Connection, key: str, value: Any) -> None:
        db.execute("INSERT OR REPLACE INTO state VALUES (?, ?)", (key, json.dumps(value)))

    def check_settings(self, settings: dict[str, Any]) -> None:
        """Record the settings that fix the data (first call) or check they did not change."""
        stored = self.get_state("settings")
        if stored is None:
            with self.transaction() as db:
                self._set_state(db, "settings", settings)
        elif stored != settings:
            changed = sorted(
                k for k in set(stored) | set(settings) if stored.get(k) != settings.get(k)
            )
            raise ValueError(
                f"{self.root} was created with other data settings ({', '.join(changed)}: "
                f"{[stored.get(k) for k in changed]} there, {[settings.get(k) for k in changed]} "
                "now); use a new --store or the same settings"
            )

    # -- molecules and versions -----------------------------------------------------------------
    def hold_out(self, val: Sequence[tuple[str, Data]], test: Sequence[tuple[str, Data]]) -> None:
        """Store the fixed validation and test molecules (once, in one transaction)."""
        if self.get_state("held_out"):
            return
        with self.transaction() as db:
            for role, mols in (("val", val), ("test", test)):
                for mol_id, data in mols:
                    db.execute(
                        "INSERT INTO molecules VALUES (?, ?, ?, -1, ?, ?, ?, ?)",
                        (mol_id, molecule_hash(mol_id, data), role, *_encode(data)),
                    )
            self._set_state(db, "held_out", True)

    def ingest(
        self,
        chunk: Sequence[tuple[str, Data]],
        cursor: int,
        acquisition: dict[str, Any] | None = None,
        state: dict[str, Any] | None = None,
    ) -> DataVersion | None:
        """Add a chunk to the training pool and create the new version, atomically.

        ``cursor`` (the stream position after the chunk) is saved in the same transaction, so a
        restart resumes the stream exactly where the last committed version ended. So are the
        `state` entries and the version's [`AcquisitionRecord`][molgnn.online.AcquisitionRecord]:
        `acquisition` holds its `strategy`, `model`, `offered`, `scores` and `details`
        (default: `"initial"` for the first version, else `"stream"`); its `chosen` are the
        molecules this call added.

        Args:
            chunk: `(molecule id, Data)` pairs; ids already in the store are skipped.
            cursor: The stream position after the chunk.
            acquisition: How the chunk was chosen (default: `None`: streamed).
            state: More state entries to commit with the version (default: `None`).

        Returns:
            The new version, or ``None`` for an empty chunk or one whose molecules are all
            already present.
        """
        with self.transaction() as db:
            latest = self.latest_version()
            seq = 0 if latest is None else latest.seq + 1
            added = 0
            chosen: list[str] = []
            for mol_id, data in chunk:
                if db.execute("SELECT 1 FROM molecules WHERE mol_id = ?", (mol_id,)).fetchone():
                    continue
                db.execute(
                    "INSERT INTO molecules VALUES (?, ?, 'train', ?, ?, ?, ?, ?)",
                    (mol_id, molecule_hash(mol_id, data), seq, *_encode(data)),
                )
                added += 1
                chosen.append(mol_id)
            self._set_state(db, "cursor", cursor)
            for key, value in (state or {}).items():
                self._set_state(db, key, value)
            if added == 0:
                return None
            members = db.execute(
                "SELECT mol_id, hash FROM molecules WHERE role = 'train' AND seq <= ?", (seq,)
            ).fetchall()
            version = DataVersion(
                id=version_id(members),
                parent=latest.id if latest else None,
                size=len(members),
                seq=seq,
                created=time.time(),
            )
            db.execute(
                "INSERT INTO versions VALUES (?, ?, ?, ?, ?)",
                (version.id, version.parent, version.size, version.seq, version.created),
            )
            how = dict(acquisition or {})
            db.execute(
                "INSERT INTO acquisitions VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    version.id,
                    str(how.get("strategy", "initial" if latest is None else "stream")),
                    how.get("model"),
                    int(how.get("offered", len(chunk))),
                    json.dumps(chosen),
                    json.dumps({k: float(v) for k, v in (how.get("scores") or {}).items()}),
                    json.dumps(how.get("details") or {}),
                    version.created,
                ),
            )
        return version

    def _has_table(self, name: str) -> bool:
        return bool(
            self.db.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)
            ).fetchone()
        )

    _ACQUISITION_COLUMNS = "version, strategy, model, offered, chosen, scores, details, created"

    @staticmethod
    def _acquisition(row: tuple[Any, ...]) -> AcquisitionRecord:
        return AcquisitionRecord(
            version=row[0],
            strategy=row[1],
            model=row[2],
            offered=row[3],
            chosen=json.loads(row[4]),
            scores=json.loads(row[5]),
            details=json.loads(row[6]),
            created=row[7],
        )

    def acquisitions(self) -> list[AcquisitionRecord]:
        """How each data version's molecules were chosen, oldest version first.

        Versions made before acquisition records existed have none.
        """
        if not self._has_table("acquisitions"):  # an older store opened read-only
            return []
        rows = self.db.execute(
            f"SELECT {', '.join('a.' + c.strip() for c in self._ACQUISITION_COLUMNS.split(','))} "
            "FROM acquisitions a JOIN versions v ON v.id = a.version ORDER BY v.seq"
        )
        return [self._acquisition(r) for r in rows]

    def acquisition(self, version: str) -> AcquisitionRecord | None:
        """How the molecules of `version` (an id or a unique prefix) were chosen, or `None`
        for a version made before acquisition records existed."""
        full = self.get_version(version).id
        if not self._has_table("acquisitions"):
            return None
        row = self.db.execute(
            f"SELECT {self._ACQUISITION_COLUMNS} FROM acquisitions WHERE version = ?", (full,)
        ).fetchone()
        return self._acquisition(row) if row else None

    def molecule_ids(self) -> set[str]:
        """Ids of every stored molecule (training, validation and test)."""
        return {row[0] for row in self.db.execute("SELECT mol_id FROM molecules")}

    def versions(self) -> list[DataVersion]:
        """All versions, oldest first."""
        rows = self.db.execute("SELECT id, parent, size, seq, created FROM versions ORDER BY seq")
        return [DataVersion(*row) for row in rows]

    def latest_version(self) -> DataVersion | None:
        """The newest version, or ``None``."""
        row = self.db.execute(
            "SELECT id, parent, size, seq, created FROM versions ORDER BY seq DESC LIMIT 1"
        ).fetchone()
        return DataVersion(*row) if row else None

    def get_version(self, version: str) -> DataVersion:
        """The version with id ``version`` (a unique prefix is enough)."""
        rows = self.db.execute(
            "SELECT id, parent, size, seq, created FROM versions WHERE id LIKE ?", (version + "%",)
        ).fetchall()
        if len(rows) != 1:
            raise ValueError(
                f"{'no' if not rows else 'more than one'} data version matches {version!r}"
            )
        return DataVersion(*rows[0])

    def molecules(self, role: str, version: DataVersion | None = None) -> list[Data]:
        """Molecules of a role (``train`` limited to ``version``), ordered by id."""
        if role not in ("train", "val", "test"):
            raise ValueError(f"unknown role {role!r}; roles: train, val, test")
        if role == "train":
            if version is None:
                raise ValueError("the training molecules need a data version")
            rows = self.db.execute(
                "SELECT mol_id, z, pos, y, y_cols FROM molecules WHERE role = 'train' AND seq <= ? "
                "ORDER BY mol_id",
                (version.seq,),
            )
        else:
            rows = self.db.execute(
                "SELECT mol_id, z, pos, y, y_cols FROM molecules WHERE role = ? ORDER BY mol_id",
                (role,),
            )
        return [_decode(*row) for row in rows]

    def manifest(self, version: DataVersion) -> list[tuple[str, str]]:
        """``(molecule id, hash)`` pairs of a version, sorted by id."""
        return self.db.execute(
            "SELECT mol_id, hash FROM molecules WHERE role = 'train' AND seq <= ? ORDER BY mol_id",
            (version.seq,),
        ).fetchall()

    # -- models ---------------------------------------------------------------------------------
    def register_model(
        self,
        data_version: str,
        checkpoint: Path,
        checkpoint_sha256: str,
        parent_model: int | None,
        warm_start: bool,
        config: dict[str, Any],
        hyperparameters: dict[str, Any],
        metrics: dict[str, Any],
        done: Sequence[Path] = (),
    ) -> ModelRecord:
        """Register a model whose checkpoint is already in place, in one transaction.

        The checkpoint and the ``done`` paths (for example the run's finished scratch folder)
        leave the journal in the same transaction, and the database is then backed up (see
        [`backup`][molgnn.online.Store.backup]).
        """
        created = time.time()
        finished = [checkpoint, *done]
        with self.transaction() as db:
            db.executemany(
                "DELETE FROM journal WHERE path = ?",
                [(str(p.relative_to(self.root)),) for p in finished],
            )
            cursor = db.execute(
                "INSERT INTO models (data_version, checkpoint, checkpoint_sha256, parent_model, "
                "warm_start, config, hyperparameters, val_mae, test_mae, metrics, created) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    data_version,
                    str(checkpoint.relative_to(self.root)),
                    checkpoint_sha256,
                    parent_model,
                    int(warm_start),
                    json.dumps(config),
                    json.dumps(hyperparameters),
                    metrics.get("val_mae"),
                    metrics.get("test_mae"),
                    json.dumps(metrics),
                    created,
                ),
            )
            model_id = cursor.lastrowid
        self.backup()
        return self.get_model(int(model_id or 0))

    @property
    def backup_path(self) -> Path:
        """Where [`backup`][molgnn.online.Store.backup] keeps the copy of the database."""
        return self.root / "store.sqlite.backup"

    def backup(self) -> Path:
        """Copy the database, consistently and atomically, to
        [`backup_path`][molgnn.online.Store.backup_path]."""
        tmp = self.root / f".backup-{uuid.uuid4().hex}.sqlite"
        try:
            target = sqlite3.connect(tmp)
            try:
                self.db.backup(target)
            finally:
                target.close()
            _fsync(tmp)
            os.replace(tmp, self.backup_path)
        finally:
            tmp.unlink(missing_ok=True)
        return self.backup_path

    # -- links to an MLflow model registry ------------------------------------------------------
    def link_mlflow_version(
        self, model: int, tracking_uri: str, name: str, version: int, run_id: str | None = None
    ) -> MlflowVersion:
        """Record that model `model` is version `version` of `name` in the MLflow registry at
        `tracking_uri` (replacing an older link of the same model, URI and name), in one
        transaction; the database is then backed up.

        Raises:
            ValueError: if the store has no model `model`.
        """
        self.get_model(model)
        created = time.time()
        with self.transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO mlflow_versions VALUES (?, ?, ?, ?, ?, ?)",
                (model, tracking_uri, name, int(version), run_id, created),
            )
        self.backup()
        return MlflowVersion(model, tracking_uri, name, int(version), run_id, created)

    def mlflow_versions(
        self, tracking_uri: str | None = None, name: str | None = None
    ) -> list[MlflowVersion]:
        """The recorded MLflow versions of this store's models, by model id, optionally only
        those of one tracking URI and registered-model name (empty for a store made before
        these links, opened read-only)."""
        if not self._has_table("mlflow_versions"):
            return []
        rows = self.db.execute(
            "SELECT model, tracking_uri, name, version, run_id, created FROM mlflow_versions "
            "WHERE (? IS NULL OR tracking_uri = ?) AND (? IS NULL OR name = ?) "
            "ORDER BY model, tracking_uri, name",
            (tracking_uri, tracking_uri, name, name),
        )
        return [MlflowVersion(*row) for row in rows]

    def heldout_digest(self, role: str = "test") -> str:
        """The content hash of the fixed held-out molecules of `role` (`"test"` or `"val"`).

        Computed like a data version's id (the SHA-256 of the `<id>\\t<hash>` lines, sorted by
        id), so two stores share a digest exactly when they hold out the same molecules; test
        MAEs are comparable only between models tested on one digest.

        Raises:
            ValueError: for another role, or before the held-out molecules are stored.
        """
        if role not in ("val", "test"):
            raise ValueError(f"held-out role must be 'val' or 'test', got {role!r}")
        members = self.db.execute(
            "SELECT mol_id, hash FROM molecules WHERE role = ? ORDER BY mol_id", (role,)
        ).fetchall()
        if not members:
            raise ValueError(f"{self.root} holds no {role} molecules yet")
        return version_id(members)

    def _record(self, row: tuple[Any, ...]) -> ModelRecord:
        return ModelRecord(
            id=row[0],
            data_version=row[1],
            checkpoint=row[2],
            checkpoint_sha256=row[3],
            parent_model=row[4],
            warm_start=bool(row[5]),
            config=json.loads(row[6]),
            hyperparameters=json.loads(row[7]),
            val_mae=row[8],
            test_mae=row[9],
            metrics=json.loads(row[10]),
            created=row[11],
        )

    _MODEL_COLUMNS = (
        "id, data_version, checkpoint, checkpoint_sha256, parent_model, warm_start, config, "
        "hyperparameters, val_mae, test_mae, metrics, created"
    )

    def models(self) -> list[ModelRecord]:
        """All registered models, oldest first."""
        rows = self.db.execute(f"SELECT {self._MODEL_COLUMNS} FROM models ORDER BY id")
        return [self._record(r) for r in rows]

    def get_model(self, model_id: int) -> ModelRecord:
        """The model with id ``model_id``."""
        row = self.db.execute(
            f"SELECT {self._MODEL_COLUMNS} FROM models WHERE id = ?", (model_id,)
        ).fetchone()
        if row is None:
            raise ValueError(f"no model {model_id} in {self.root}")
        return self._record(row)

    def latest_model(self) -> ModelRecord | None:
        """The most recently registered model."""
        models = self.models()
        return models[-1] if models else None

    def best_model(self) -> ModelRecord | None:
        """The model with the lowest validation MAE."""
        scored = [m for m in self.models() if m.val_mae is not None]
        return min(scored, key=lambda m: m.val_mae or 0.0) if scored else None

    def lineage(self, model_id: int) -> list[ModelRecord]:
        """The model and its warm-start ancestors, newest first."""
        chain = [self.get_model(model_id)]
        while chain[-1].parent_model is not None:
            chain.append(self.get_model(chain[-1].parent_model))
        return chain

    def clean_orphans(self) -> list[Path]:
        """Delete what a killed run left: journalled files that no model references.

        Only paths recorded by [`journal`][molgnn.online.Store.journal] (or
        [`work_dir`][molgnn.online.Store.work_dir]) before they were written are candidates, so
        checkpoints the registry does not know for another reason (a lost database, files copied in
        by hand) are never deleted; [`verify`][molgnn.online.Store.verify] reports them. Call it
        only while holding [`lock`][molgnn.online.Store.lock].

        Returns:
            The paths removed.
        """
        referenced = {m.checkpoint for m in self.models()}
        journalled = self.journalled()
        removed = []
        for relative in journalled:
            path = self.root / relative
            if relative not in referenced and path.exists():
                if path.is_dir():
                    shutil.rmtree(path)
                else:
                    path.unlink()
                removed.append(path)
        if journalled:
            with self.transaction() as db:
                db.executemany("DELETE FROM journal WHERE path = ?", [(p,) for p in journalled])
        return removed

    def manifest_text(self, version: DataVersion) -> str:
        """The manifest as text, one ``<molecule id>\\t<sha256>`` line per molecule.

        Its SHA-256 is the version id (``sha256sum`` of this text gives ``version.id``), so a
        manifest committed to git or tracked by DVC can be checked without molgnn.
        """
        return "".join(f"{mol_id}\t{mol_hash}\n" for mol_id, mol_hash in self.manifest(version))

    def verify(self, checkpoints: bool = True) -> list[str]:
        """Check the store's consistency; returns the problems found (empty when healthy).

        Checks SQLite's ``integrity_check``, that versions form one chain (``seq`` 0, 1, ...,
        each the parent of the next, growing in size), that each version id is the hash of its
        manifest, that each version's acquisition record lists exactly the molecules it added, that
        every model's data version exists, that every checkpoint under
        ``models/`` is registered (or journalled by an interrupted run, which the next run
        removes) and, with ``checkpoints``, that every registered checkpoint exists and has the
        registered SHA-256.
        """
        from molgnn.io.checkpoint import file_sha256

        problems = []
        status = self.integrity_check()
        if status != "ok":
            problems.append(f"SQLite integrity_check: {status}")
        previous: DataVersion | None = None
        for k, version in enumerate(self.versions()):
            if version.seq != k:
                problems.append(f"version {version.id[:12]} has seq {version.seq}, expected {k}")
            expected_parent = previous.id if previous is not None else None
            if version.parent != expected_parent:
                problems.append(
                    f"version {version.id[:12]} has parent {version.parent}, "
                    f"expected {expected_parent}"
                )
            manifest = self.manifest(version)
            if version_id(manifest) != version.id:
                problems.append(f"version {version.id[:12]} does not match its manifest's hash")
            if len(manifest) != version.size:
                problems.append(
                    f"version {version.id[:12]} says {version.size} molecules, "
                    f"its manifest has {len(manifest)}"
                )
            if previous is not None and version.size <= previous.size:
                problems.append(f"version {version.id[:12]} is not larger than its parent")
            previous = version
        for record in self.acquisitions():
            added = {
                row[0]
                for row in self.db.execute(
                    "SELECT m.mol_id FROM molecules m JOIN versions v ON m.seq = v.seq "
                    "WHERE m.role = 'train' AND v.id = ?",
                    (record.version,),
                )
            }
            if set(record.chosen) != added or len(record.chosen) != len(added):
                problems.append(
                    f"version {record.version[:12]}: its acquisition record does not list the "
                    f"molecules it added ({len(record.chosen)} listed, {len(added)} added)"
                )
        known = {v.id for v in self.versions()}
        for model in self.models():
            if model.data_version not in known:
                problems.append(f"model {model.id} refers to unknown version {model.data_version}")
            if model.parent_model is not None and model.parent_model >= model.id:
                problems.append(f"model {model.id} has a later parent {model.parent_model}")
            if checkpoints:
                path = self.root / model.checkpoint
                if not path.is_file():
                    problems.append(f"model {model.id}: checkpoint {path} is missing")
                elif file_sha256(path) != model.checkpoint_sha256:
                    problems.append(f"model {model.id}: checkpoint {path} has another SHA-256")
        referenced = {self.root / m.checkpoint for m in self.models()}
        pending = {self.root / p for p in self.journalled()}  # an interrupted run's, cleaned next
        for path in self.checkpoint_files():
            if path not in referenced and path not in pending:
                problems.append(
                    f"checkpoint {path} is not registered (run `molgnn registry repair --store "
                    f"{self.root}` to register it from its own record)"
                )
        return problems

    def integrity_check(self) -> str:
        """SQLite's ``PRAGMA integrity_check`` (``"ok"`` when healthy)."""
        return str(self.db.execute("PRAGMA integrity_check").fetchone()[0])

    # -- repair ---------------------------------------------------------------------------------
    @classmethod
    def repair(cls, root: str | Path) -> list[str]:
        """Rebuild a damaged store's registry without losing anything; returns what was done.

        1. A database that is missing, empty, unreadable or without the store's tables is
           moved aside (``store.sqlite.damaged-<time>``, never deleted) and replaced by the
           backup that [`backup`][molgnn.online.Store.backup] keeps, when that backup is healthy, or
           else by an empty database.
        2. Every checkpoint under ``models/`` that no model references is registered from the
           record the online loop writes into it (data version, parent, config, settings,
           metrics), oldest first. A data version that only a checkpoint knows is recreated
           without its molecules, which [`verify`][molgnn.online.Store.verify] then reports.

        Checkpoints without such a record are left in place and reported.

        Raises:
            ValueError: if ``root`` holds no store, or another process is writing to it.
        """
        root = Path(root)
        path = root / "store.sqlite"
        if not path.exists() and not (root / "models").is_dir():
            raise ValueError(f"no online store at {root} (neither store.sqlite nor models/)")
        done: list[str] = []
        problem = _database_problem(path)
        if problem is not None:
            stamp = time.strftime("%Y%m%d-%H%M%S")
            for suffix in ("", "-wal", "-shm"):
                part = root / f"store.sqlite{suffix}"
                if part.exists():
                    aside = root / f"store.sqlite.damaged-{stamp}{suffix}"
                    os.replace(part, aside)
                    if not suffix:
                        done.append(f"moved the damaged database ({problem}) aside to {aside.name}")
            backup = root / "store.sqlite.backup"
            if backup.exists() and _database_problem(backup) is None:
                with backup.open("rb") as source:
                    write_atomic_with(path, lambda f: shutil.copyfileobj(source, f), durable=True)
                done.append(f"restored the database from {backup.name}")
            else:
                cls._connect(path).close()
                done.append("created an empty database (no healthy backup to restore)")
        store = cls(root)
        try:
            with store.lock():
                done += store._register_unknown_checkpoints()
        finally:
            store.close()
        return done

    def _register_unknown_checkpoints(self) -> list[str]:
        from molgnn.io.checkpoint import file_sha256, load_checkpoint

        known = {self.root / m.checkpoint for m in self.models()}
        found = []
        done = []
        for path in self.checkpoint_files():
            if path in known:
                continue
            try:
                record = load_checkpoint(path).get(REGISTRY_RECORD)
            except ValueError as err:
                done.append(f"left {path.name} in place: it does not load ({err})")
                continue
            if not isinstance(record, dict):
                done.append(f"left {path.name} in place: it carries no online-registry record")
                continue
            found.append((float(record.get("created", 0.0)), path, record))
        for _, path, record in sorted(found, key=lambda item: item[0]):
            version = DataVersion(**record["data_version"])
            if not self.db.execute("SELECT 1 FROM versions WHERE id = ?", (version.id,)).fetchone():
                with self.transaction() as db:
                    db.execute(
                        "INSERT INTO versions VALUES (?, ?, ?, ?, ?)",
                        (version.id, version.parent, version.size, version.seq, version.created),
                    )
                done.append(
                    f"recreated data version {version.id[:12]} from {path.name} "
                    "(its molecules were lost with the database)"
                )
            parent_sha = record.get("parent_checkpoint_sha256")
            parent = None
            if parent_sha is not None:
                row = self.db.execute(
                    "SELECT id FROM models WHERE checkpoint_sha256 = ?", (parent_sha,)
                ).fetchone()
                parent = int(row[0]) if row else None
            model = self.register_model(
                data_version=version.id,
                checkpoint=path,
                checkpoint_sha256=file_sha256(path),
                parent_model=parent,
                warm_start=bool(record.get("warm_start", False)),
                config=record["config"],
                hyperparameters=record["hyperparameters"],
                metrics=record["metrics"],
            )
            done.append(f"registered {path.name} as model {model.id}")
        return done
