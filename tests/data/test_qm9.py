import tarfile
import time
from pathlib import Path

import numpy as np
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
    a = QM9(str(tmp_path), target="gap", first=10, source_dir=FIXTURE, progress=False)
    b = QM9(str(tmp_path), target="gap", first=20, source_dir=FIXTURE, progress=False)
    c = QM9(str(tmp_path), target=["homo", "lumo"], first=10, source_dir=FIXTURE, progress=False)
    d = QM9(str(tmp_path), target="gap", subset=10, source_dir=FIXTURE, progress=False)
    e = QM9(str(tmp_path), target="gap", subset=10, subset_seed=1, source_dir=FIXTURE,
            progress=False)  # fmt: skip
    assert (len(a), len(b), len(c), len(d), len(e)) == (10, 20, 10, 10, 10)
    paths = {ds.processed_paths[0] for ds in (a, b, c, d, e)}
    assert len(paths) == 5
    again = QM9(str(tmp_path), target="gap", first=10, source_dir=FIXTURE, progress=False)
    assert torch.equal(again._data.y, a._data.y)
    again = QM9(str(tmp_path), target="gap", subset=10, subset_seed=1, source_dir=FIXTURE,
                progress=False)  # fmt: skip
    assert again.processed_paths == e.processed_paths
    assert np.array_equal(again.molecule_ids, e.molecule_ids)


def _fixture(tmp_path, **kwargs):
    return QM9(str(tmp_path), source_dir=FIXTURE, progress=False, **kwargs)


def test_subset_is_a_seeded_uniform_draw_from_the_whole_file(tmp_path):
    full = _fixture(tmp_path)
    a = _fixture(tmp_path / "a", subset=10, subset_seed=3)
    again = _fixture(tmp_path / "b", subset=10, subset_seed=3, force_reload=True)
    other = _fixture(tmp_path / "a", subset=10, subset_seed=4)
    assert np.array_equal(a.molecule_ids, again.molecule_ids)  # reproducible from the seed
    assert not np.array_equal(a.molecule_ids, other.molecule_ids)  # another seed, another draw
    for ds in (a, other):
        ids = ds.molecule_ids
        assert ids.dtype == np.int64 and ids.shape == (10,)
        assert len(set(ids.tolist())) == 10  # without replacement
        assert ids.tolist() == sorted(ids.tolist())  # kept in QM9 order
        assert set(ids.tolist()) <= set(full.molecule_ids.tolist())
    # The documented draw: the first N of default_rng(seed).permutation(n), in file order.
    rows = np.sort(np.random.default_rng(3).permutation(30)[:10])
    assert a.molecule_ids.tolist() == full.molecule_ids[rows].tolist()
    assert a.molecule_ids.max() > 10  # not the first molecules of the file
    # A smaller subset with the same seed lies inside a larger one.
    small = _fixture(tmp_path / "a", subset=4, subset_seed=3)
    assert set(small.molecule_ids.tolist()) <= set(a.molecule_ids.tolist())


def test_subset_molecules_equal_the_full_sets(tmp_path):
    full = _fixture(tmp_path, target=["gap", "U0_atom"])
    sub = _fixture(tmp_path, target=["gap", "U0_atom"], subset=12, subset_seed=5)
    by_id = {int(m.idx): m for m in full}
    for i, mol_id in enumerate(sub.molecule_ids.tolist()):
        mol, ref = sub[i], by_id[mol_id]
        assert int(mol.idx) == mol_id and mol.name == f"gdb_{mol_id}"
        assert mol.smiles == ref.smiles
        assert torch.equal(mol.z, ref.z) and torch.equal(mol.pos, ref.pos)
        assert torch.equal(mol.y, ref.y)


def test_first_keeps_file_order_and_molecule_ids_follow_views(tmp_path):
    ds = _fixture(tmp_path, first=10)
    assert ds.molecule_ids.tolist() == list(range(1, 11))
    assert [int(m.idx) for m in ds] == list(range(1, 11))
    assert len(_fixture(tmp_path, first=100)) == 30  # more than the file holds: all of it
    perm = torch.tensor([7, 2, 5])
    assert ds[perm].molecule_ids.tolist() == [8, 3, 6]
    assert "first=10" in repr(ds)


def test_subset_and_first_options_are_checked(tmp_path):
    with pytest.raises(ValueError, match=r"subset .* or first .* not both"):
        _fixture(tmp_path, subset=5, first=5)
    with pytest.raises(TypeError, match=r"limit.*subset=N.*first=N"):
        _fixture(tmp_path, limit=5)
    for kwargs, name in (
        ({"subset": 0}, "subset"), ({"first": -1}, "first"), ({"subset": 2.5}, "subset"),
        ({"subset": 5, "subset_seed": -1}, "subset_seed"),
    ):  # fmt: skip
        with pytest.raises(ValueError, match=name):
            _fixture(tmp_path, **kwargs)
    with pytest.raises(ValueError, match="subset=31 exceeds the 30 molecules"):
        _fixture(tmp_path, subset=31)


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
    # A subset of the official release slices each molecule's atoms out of the parsed file.
    seed = next(s for s in range(20) if np.random.default_rng(s).permutation(2)[0] == 1)
    one = QM9(str(root2), subset=1, subset_seed=seed, progress=False)
    assert one.molecule_ids.tolist() == [3] and one[0].z.tolist() == [8, 1, 1]
    assert torch.allclose(one[0].pos, torch.tensor(water))
    assert QM9(str(root2), first=1, progress=False).molecule_ids.tolist() == [1]


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


@pytest.mark.skipif(
    qm9pack_dir() is None, reason="needs the qm9pack wheel (pip install 'molgnn[qm9]')"
)
def test_subsets_of_the_real_qm9_are_representative(tmp_path):
    """QM9's file order runs from small to large molecules; a subset must not."""
    sub = QM9(str(tmp_path), target="gap", subset=2000, progress=False)
    first = QM9(str(tmp_path), target="gap", first=2000, progress=False)

    def heavy(ds):
        return float((ds._data.z > 1).sum()) / len(ds)

    assert len(sub) == 2000 and len(set(sub.molecule_ids.tolist())) == 2000
    # All of QM9 averages 8.80 heavy atoms per molecule (standard error of a 2,000-molecule
    # draw: about 0.01); the first 2,000 in file order average 6.48.
    assert abs(heavy(sub) - 8.80) < 0.1
    assert heavy(first) < 7.0
    assert sub.molecule_ids.max() > 120_000 and first.molecule_ids.max() < 2_100


def test_data_cli_offers_subset_and_first(tmp_path, capsys):
    from molgnn.cli import main

    base = ["data", "qm9", "--root", str(tmp_path), "--source-dir", str(FIXTURE), "--target", "gap"]
    assert main([*base, "--subset", "7", "--subset-seed", "1"]) == 0
    assert "QM9: 7 molecules" in capsys.readouterr().out
    assert main([*base, "--first", "5"]) == 0
    out = capsys.readouterr().out
    assert "QM9: 5 molecules, 19 atoms" in out  # 5 + 4 + 3 + 4 + 3 atoms: the first five
    assert main([*base, "--limit", "5"]) == 1
    err = capsys.readouterr().err
    assert "--limit was removed" in err and "--subset N" in err and "--first N" in err
    with pytest.raises(SystemExit):
        main([*base, "--subset", "5", "--first", "5"])
