"""The online store: molecules, data versions and the model registry in one SQLite database.

Every change is one transaction, so a process killed at any moment leaves either the state
before the change or after it. Checkpoints are written atomically under ``models/`` and named by
their SHA-256 *before* the registering transaction commits; a checkpoint without a registry row
is an orphan that :meth:`Store.clean_orphans` removes.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch_geometric.data import Data

from molgnn.online.versions import DataVersion, molecule_hash, version_id

__all__ = ["ModelRecord", "Store"]

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
"""


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


def _encode(data: Data) -> tuple[bytes, bytes, bytes, int]:
    y = data.y.detach().cpu().to(torch.float64).reshape(1, -1)
    return (
        np.ascontiguousarray(data.z.cpu().numpy().astype("<i8")).tobytes(),
        np.ascontiguousarray(data.pos.detach().cpu().numpy().astype("<f8")).tobytes(),
        np.ascontiguousarray(y.numpy().astype("<f8")).tobytes(),
        y.size(1),
    )


def _decode(mol_id: str, z: bytes, pos: bytes, y: bytes, cols: int) -> Data:
    zt = torch.from_numpy(np.frombuffer(z, dtype="<i8").copy())
    pt = torch.from_numpy(np.frombuffer(pos, dtype="<f8").copy()).view(-1, 3).float()
    yt = torch.from_numpy(np.frombuffer(y, dtype="<f8").copy()).view(1, cols).float()
    return Data(z=zt, pos=pt, y=yt, mol_id=mol_id)


class Store:
    """A folder holding ``store.sqlite`` and ``models/*.ckpt``.

    Args:
        root: The store's folder (created if missing).
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "models").mkdir(exist_ok=True)
        self.path = self.root / "store.sqlite"
        self.db = sqlite3.connect(self.path, isolation_level=None, timeout=30)
        try:
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=FULL")
            self.db.execute("PRAGMA foreign_keys=ON")
            self.db.executescript(_SCHEMA)
        except sqlite3.DatabaseError as err:
            self.db.close()
            raise ValueError(f"{self.path} is not a usable online store database: {err}") from None

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
        """A fresh scratch folder inside the store, removed by :meth:`clean_orphans` if left."""
        return Path(tempfile.mkdtemp(prefix=".work-", dir=self.root))

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

    def ingest(self, chunk: Sequence[tuple[str, Data]], cursor: int) -> DataVersion | None:
        """Add a chunk to the training pool and create the new version, atomically.

        ``cursor`` (the stream position after the chunk) is saved in the same transaction, so a
        restart resumes the stream exactly where the last committed version ended.

        Returns:
            The new version, or ``None`` for an empty chunk or one whose molecules are all
            already present.
        """
        with self.transaction() as db:
            latest = self.latest_version()
            seq = 0 if latest is None else latest.seq + 1
            added = 0
            for mol_id, data in chunk:
                if db.execute("SELECT 1 FROM molecules WHERE mol_id = ?", (mol_id,)).fetchone():
                    continue
                db.execute(
                    "INSERT INTO molecules VALUES (?, ?, 'train', ?, ?, ?, ?, ?)",
                    (mol_id, molecule_hash(mol_id, data), seq, *_encode(data)),
                )
                added += 1
            self._set_state(db, "cursor", cursor)
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
        return version

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
    ) -> ModelRecord:
        """Register a model whose checkpoint is already in place, in one transaction."""
        created = time.time()
        with self.transaction() as db:
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
        return self.get_model(int(model_id or 0))

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
        """Delete what a killed run left: unregistered checkpoints and scratch folders.

        Call it only while holding :meth:`lock` (another running loop's files would look
        like orphans).

        Returns:
            The paths removed.
        """
        referenced = {self.root / m.checkpoint for m in self.models()}
        removed = []
        for path in sorted((self.root / "models").iterdir()):
            if path not in referenced:
                if path.is_dir():
                    shutil.rmtree(path)
                else:
                    path.unlink()
                removed.append(path)
        for path in sorted(self.root.glob(".work-*")):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
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
        manifest, that every model's data version exists and, with ``checkpoints``, that every
        registered checkpoint exists and has the registered SHA-256.
        """
        from molgnn.training.checkpoint import file_sha256

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
        return problems

    def integrity_check(self) -> str:
        """SQLite's ``PRAGMA integrity_check`` (``"ok"`` when healthy)."""
        return str(self.db.execute("PRAGMA integrity_check").fetchone()[0])
