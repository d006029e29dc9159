"""A damaged store database costs no checkpoint: it is refused, reported, and repaired.

The store's database is emptied, deleted or overwritten with garbage after a real online run.
After each: no checkpoint is lost, the read-only registry commands leave the file as it was,
``verify`` fails with a message that names the damage, a new ``molgnn online`` run refuses to
write, and ``molgnn registry repair`` restores the registry.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from molgnn.cli import main
from molgnn.online import DamagedStoreError, Store, run_online

sys.path.insert(0, str(Path(__file__).parent))
import online_worker as worker


@pytest.fixture(scope="module")
def trained_store(tmp_path_factory) -> Path:
    """A store after a real run of the online loop: 3 data versions, 2 models."""
    root = tmp_path_factory.mktemp("store") / "s"
    run_online(worker.config(str(root), subset=50), worker.source(50), verbose=False)
    return root


def registry_rows(root: Path) -> list[tuple]:
    with Store(root, readonly=True) as store:
        return [
            (m.id, m.data_version, m.checkpoint, m.checkpoint_sha256, m.parent_model, m.val_mae)
            for m in store.models()
        ]


def damage(root: Path, how: str) -> None:
    db = root / "store.sqlite"
    for suffix in ("-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    if how == "empty":
        db.write_bytes(b"")
    elif how == "deleted":
        db.unlink()
    elif how == "garbage":  # keep the header, overwrite the pages
        data = bytearray(db.read_bytes())
        data[100:] = b"\xde\xad\xbe\xef" * ((len(data) - 100) // 4) + b"\x00" * (
            (len(data) - 100) % 4
        )
        db.write_bytes(bytes(data))
    elif how == "not_sqlite":
        db.write_bytes(b"these are not the pages you are looking for" * 50)
    else:
        raise AssertionError(how)


def cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err


@pytest.mark.parametrize("how", ["empty", "deleted", "garbage", "not_sqlite"])
@pytest.mark.parametrize("backup", [True, False])
def test_damaged_database_loses_nothing_and_repairs(trained_store, tmp_path, capsys, how, backup):
    root = tmp_path / "s"
    shutil.copytree(trained_store, root)
    before = registry_rows(root)
    checkpoints = sorted(p.name for p in (root / "models").glob("*.ckpt"))
    assert len(before) == 2 and len(checkpoints) == 2
    if not backup:
        (root / "store.sqlite.backup").unlink()
    damage(root, how)
    snapshot = (root / "store.sqlite").read_bytes() if how != "deleted" else None

    # Read-only commands report the damage and write nothing.
    for action in ("verify", "list", "best"):
        code, _, err = cli(capsys, "registry", action, "--store", str(root))
        assert code == 1 and "damaged" in err and "molgnn registry repair" in err, err
        assert "2 checkpoint(s)" in err
    if snapshot is None:
        assert not (root / "store.sqlite").exists()
    else:
        assert (root / "store.sqlite").read_bytes() == snapshot

    # A new run refuses to write, and deletes nothing.
    with pytest.raises(DamagedStoreError, match="Nothing was written"):
        run_online(worker.config(str(root), subset=50, seed=7), worker.source(50), verbose=False)
    assert sorted(p.name for p in (root / "models").glob("*.ckpt")) == checkpoints

    # Repair restores the registry; nothing is deleted on the way.
    code, out, _ = cli(capsys, "registry", "repair", "--store", str(root))
    assert sorted(p.name for p in (root / "models").glob("*.ckpt")) == checkpoints
    if how != "deleted":
        assert list(root.glob("store.sqlite.damaged-*")), "the damaged database was kept"
    after = registry_rows(root)
    if backup:  # the backup holds everything, molecules included
        assert code == 0 and "verify ok" in out, out
        assert after == before
    else:  # from the checkpoints' own records: the registry, but not the molecules
        assert code == 1 and "its molecules were lost" in out, out
        assert [(r[1], r[2], r[3], r[5]) for r in after] == [
            (r[1], r[2], r[3], r[5]) for r in before
        ]
        assert after[1][4] == after[0][0]  # the warm-start lineage is rebuilt too


def test_unregistered_checkpoints_are_reported_and_registered(trained_store, tmp_path, capsys):
    """The reported case: an emptied database that an old verify gave a fresh schema."""
    root = tmp_path / "s"
    shutil.copytree(trained_store, root)
    before = registry_rows(root)
    (root / "store.sqlite").unlink()
    (root / "store.sqlite.backup").unlink()
    import sqlite3

    from molgnn.online.store import _SCHEMA

    db = sqlite3.connect(root / "store.sqlite")  # the fresh, empty schema old code wrote
    db.executescript(_SCHEMA)
    db.close()
    code, out, _ = cli(capsys, "registry", "verify", "--store", str(root))
    assert code == 1 and out.count("is not registered") == 2, out
    # A new run does not take the unknown checkpoints for its own leftovers.
    with Store(root) as store:
        assert store.clean_orphans() == []
    assert len(list((root / "models").glob("*.ckpt"))) == 2
    code, out, _ = cli(capsys, "registry", "repair", "--store", str(root))
    assert "registered" in out and len(registry_rows(root)) == len(before)


def test_repair_of_a_healthy_store_changes_nothing(trained_store, tmp_path, capsys):
    root = tmp_path / "s"
    shutil.copytree(trained_store, root)
    before = registry_rows(root)
    code, out, _ = cli(capsys, "registry", "repair", "--store", str(root))
    assert code == 0 and "verify ok" in out and registry_rows(root) == before


def test_no_store_is_a_clear_error(tmp_path, capsys):
    code, _, err = cli(capsys, "registry", "verify", "--store", str(tmp_path / "nothing"))
    assert code == 1 and "no online store" in err
    code, _, err = cli(capsys, "registry", "repair", "--store", str(tmp_path / "nothing"))
    assert code == 1 and "no online store" in err
