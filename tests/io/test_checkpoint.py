"""The checkpoint file format: atomic writes, safe loading, refused files."""

import pickle

import pytest
import torch

from molgnn.io import FORMAT_VERSION, file_sha256, load_checkpoint, save_checkpoint


class Evil:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_roundtrip_and_atomic_write(tmp_path):
    path = save_checkpoint(
        {"state_dict": {"w": torch.ones(2)}, "metrics": {"mae": 1.5}}, tmp_path / "a.ckpt"
    )
    payload = load_checkpoint(path)
    assert payload["format_version"] == FORMAT_VERSION
    assert torch.equal(payload["state_dict"]["w"], torch.ones(2))
    assert [p.name for p in tmp_path.iterdir()] == ["a.ckpt"]  # no temporary files left
    digest = file_sha256(path)
    save_checkpoint({"metrics": {"mae": 2.0}}, path)
    assert file_sha256(path) != digest


def test_failed_write_keeps_the_old_file(tmp_path):
    path = save_checkpoint({"metrics": {"mae": 1.0}}, tmp_path / "a.ckpt")
    with pytest.raises((AttributeError, pickle.PicklingError)):
        save_checkpoint({"bad": lambda: 0}, path)  # cannot be pickled
    assert load_checkpoint(path)["metrics"] == {"mae": 1.0}
    assert [p.name for p in tmp_path.iterdir()] == ["a.ckpt"]


def test_pickled_object_is_refused(tmp_path, capsys):
    path = tmp_path / "evil.ckpt"
    torch.save({"format": "molgnn-checkpoint", "format_version": 1, "x": Evil()}, path)
    with pytest.raises(ValueError, match="weights_only"):
        load_checkpoint(path)
    assert "must never run" not in capsys.readouterr().out


def test_newer_format_truncated_and_foreign_files(tmp_path):
    newer = tmp_path / "newer.ckpt"
    torch.save({"format": "molgnn-checkpoint", "format_version": FORMAT_VERSION + 1}, newer)
    with pytest.raises(ValueError, match="Upgrade molgnn"):
        load_checkpoint(newer)
    good = save_checkpoint({"metrics": {}}, tmp_path / "good.ckpt")
    truncated = tmp_path / "truncated.ckpt"
    truncated.write_bytes(good.read_bytes()[:50])
    with pytest.raises(ValueError, match="truncated or corrupt"):
        load_checkpoint(truncated)
    foreign = tmp_path / "foreign.ckpt"
    torch.save({"state_dict": {}}, foreign)
    with pytest.raises(ValueError, match="not a molgnn checkpoint"):
        load_checkpoint(foreign)
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "missing.ckpt")
