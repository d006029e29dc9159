import tarfile
import time
from pathlib import Path

import pytest
import torch

from molgnn.data import HARTREE_TO_EV, QM9, QM9_SIZE, qm9pack_dir

FIXTURE = Path(__file__).parents[1] / "fixtures" / "qm9pack"


def test_fixture_source_methane_spot_checks(tmp_path):
    ds = QM9(str(tmp_path), target=["gap", "U0", "U0_atom"], source_dir=FIXTURE, progress=False)
    assert len(ds) == 30
    m = ds[0]
    assert m.z.tolist() == [6, 1, 1, 1, 1]
    assert (int(m.idx), m.name, m.smiles) == (1, "gdb_1", "C")
    assert m.y.shape == (1, 3)
    assert m.y[0, 0].item() == pytest.approx(0.5048 * HARTREE_TO_EV, abs=1e-4)  # 13.736 eV
    assert m.y[0, 0].item() == pytest.approx(13.736, abs=1e-3)
    assert m.y[0, 1].item() == pytest.approx(-40.47893 * HARTREE_TO_EV, rel=1e-6)
    atomization = (-40.47893 - (-37.846772 - 4 * 0.500273)) * HARTREE_TO_EV
    assert m.y[0, 2].item() == pytest.approx(atomization, abs=2e-3)
    assert m.pos.shape == (5, 3) and m.pos.dtype == torch.float32
    assert m.pos[0].tolist() == pytest.approx([-0.0126981359, 1.0858041578, 0.0080009958])
    assert ds.units == ("eV", "eV", "eV")
    assert ds.atomref("U0_atom")[6].item() == pytest.approx(-37.846772 * HARTREE_TO_EV)


def test_processed_files_are_keyed_by_options(tmp_path):
    a = QM9(str(tmp_path), target="gap", limit=10, source_dir=FIXTURE, progress=False)
    b = QM9(str(tmp_path), target="gap", limit=20, source_dir=FIXTURE, progress=False)
    c = QM9(str(tmp_path), target=["homo", "lumo"], limit=10, source_dir=FIXTURE, progress=False)
    assert (len(a), len(b), len(c)) == (10, 20, 10)
    assert len({a.processed_paths[0], b.processed_paths[0], c.processed_paths[0]}) == 3
    again = QM9(str(tmp_path), target="gap", limit=10, source_dir=FIXTURE, progress=False)
    assert torch.equal(again._data.y, a._data.y)


def test_unknown_target_lists_valid_ones(tmp_path):
    with pytest.raises(ValueError, match="valid targets are: mu, alpha"):
        QM9(str(tmp_path), target="hmo", source_dir=FIXTURE)


def test_no_source_gives_a_clear_message(tmp_path, monkeypatch):
    monkeypatch.setenv("MOLGNN_QM9PACK_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError, match="qm9pack CSV files"):
        QM9(str(tmp_path / "root"), progress=False)
    monkeypatch.setattr("molgnn.data.qm9.qm9pack_dir", lambda: None)
    with pytest.raises(FileNotFoundError, match=r"pip install 'molgnn\[qm9\]'"):
        QM9(str(tmp_path / "root"), download=False, progress=False)


def test_truncated_csv_is_reported(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    text = (FIXTURE / "qm9_part1.csv").read_text().splitlines()
    # The file ends in the middle of molecule 5's coordinates.
    cut = text[5][: text[5].index("XYZ") if "XYZ" in text[5] else text[5].index("[[") + 40]
    (src / "qm9_part1.csv").write_text("\n".join([*text[:5], cut]) + "\n")
    with pytest.raises(ValueError, match="truncated or corrupt"):
        QM9(str(tmp_path / "root"), source_dir=src, progress=False)


def _official_file(idx: int, symbols, coords, props) -> str:
    lines = [str(len(symbols)), f"gdb {idx}\t" + "\t".join(props)]
    for s, (x, y, z) in zip(symbols, coords):
        lines.append(f"{s}\t{x}\t{y}\t{z}\t0.0")
    lines += ["1.0\t2.0", "C\tC", "InChI=1S/CH4/h1H4\tInChI=1S/CH4/h1H4"]
    return "\n".join(lines) + "\n"


def test_official_release_in_raw_is_read_first(tmp_path):
    raw = tmp_path / "raw"
    folder = raw / "dsgdb9nsd.xyz"
    folder.mkdir(parents=True)
    props = ["157.7118", "157.70997", "157.70699", "0.", "13.21", "-0.3877", "0.1171", "0.5048",
             "35.3641", "0.044749", "-40.47893", "-40.476062", "-40.475117", "-40.498597", "6.469"]  # fmt: skip
    methane = [(-0.0127, 1.0858, 0.0080), (0.0022, -0.0060, 0.0020), (1.0117, 1.4638, 0.0003),
               (-0.5408, 1.4475, -0.8766), (-0.5238, 1.4379, "9.063972942*^-1")]  # fmt: skip
    (folder / "dsgdb9nsd_000001.xyz").write_text(_official_file(1, "CHHHH", methane, props))
    water = [(0.0, 0.0, 0.0), (0.96, 0.0, 0.0), (-0.24, 0.93, 0.0)]
    (folder / "dsgdb9nsd_000003.xyz").write_text(_official_file(3, "OHH", water, props))
    (folder / "dsgdb9nsd_000002.xyz").write_text(
        _official_file(2, "NHHH", [*water, (0, 0, 1.0)], props)
    )
    (raw / "uncharacterized.txt").write_text("header\n\n    2   ignored 1 2\n")
    ds = QM9(str(tmp_path), target="gap", progress=False)
    assert len(ds) == 2  # molecule 2 is listed as uncharacterized
    assert [int(d.idx) for d in ds] == [1, 3]
    assert ds[0].y.item() == pytest.approx(13.736, abs=1e-3)
    assert ds[0].pos[4, 2].item() == pytest.approx(0.9063972942)
    # The same files as a .tar.bz2 archive.
    root2 = tmp_path / "archive"
    (root2 / "raw").mkdir(parents=True)
    with tarfile.open(root2 / "raw" / "dsgdb9nsd.xyz.tar.bz2", "w:bz2") as tar:
        for f in sorted(folder.iterdir()):
            tar.add(f, arcname=f.name)
    (root2 / "raw" / "uncharacterized.txt").write_text((raw / "uncharacterized.txt").read_text())
    assert [int(d.idx) for d in QM9(str(root2), progress=False)] == [1, 3]


@pytest.mark.slow
@pytest.mark.skipif(
    qm9pack_dir() is None, reason="needs the qm9pack wheel (pip install 'molgnn[qm9]')"
)
def test_full_dataset(tmp_path):
    start = time.perf_counter()
    ds = QM9(str(tmp_path), target=["gap", "U0"], progress=False)
    first = time.perf_counter() - start
    start = time.perf_counter()
    ds = QM9(str(tmp_path), target=["gap", "U0"], progress=False)
    assert time.perf_counter() - start < 3.0 + first  # generous: a second load must not reprocess
    assert len(ds) == QM9_SIZE
    assert ds[0].z.tolist() == [6, 1, 1, 1, 1]
    assert ds[0].y[0, 0].item() == pytest.approx(13.736, abs=1e-3)
    assert int(ds[-1].idx) == 133_885
    assert torch.isfinite(ds._data.pos).all() and torch.isfinite(ds._data.y).all()
    assert set(ds._data.z.unique().tolist()) == {1, 6, 7, 8, 9}
