import pytest
import torch

from molgnn.data import parse_xyz, read_xyz

WATER = "3\nwater\nO 0.0 0.0 0.0\nH 0.96 0.0 0.0\nH -0.24 0.93 0.0\n"


def test_single_and_multi_molecule(tmp_path):
    path = tmp_path / "w.xyz"
    path.write_text(WATER)
    mol = read_xyz(path)
    assert mol.z.tolist() == [8, 1, 1] and mol.name == "water"
    assert torch.allclose(mol.pos[1], torch.tensor([0.96, 0.0, 0.0]))
    path.write_text(WATER + "\n2\nh2\n1 0 0 0\nH 0 0 0.74\n")
    mols = read_xyz(path)
    assert isinstance(mols, list) and [m.z.tolist() for m in mols] == [[8, 1, 1], [1, 1]]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("2\nx\nO 0 0 0\nQq 1 0 0\n", r"line 4: unknown element 'Qq'"),
        ("2\nx\nO 0 0 0\nH nan 0 0\n", r"line 4: coordinate 'nan' is NaN or infinite"),
        ("2\nx\nO 0 0 0\nH inf 0 0\n", r"line 4: coordinate 'inf' is NaN or infinite"),
        (
            "3\nx\nO 0 0 0\nH 1 0 0\n",
            r"line 5: truncated file: the count line \(line 1\) says 3 atoms, found 2",
        ),
        ("1\nx\nO 0 0 0\nH 1 0 0\n", r"line 4: expected the atom count of a new molecule"),
        ("2\nx\nO 0 0 0\nH 0 0 0\n", r"lines 3 and 4: atoms 1 and 2 are at the same position"),
        ("0\nempty\n", r"line 1: empty molecule"),
        ("", r"no molecule found"),
        ("two\nx\n", r"line 1: expected the number of atoms"),
    ],
)
def test_bad_files_name_file_line_and_problem(tmp_path, text, message):
    path = tmp_path / "bad.xyz"
    path.write_text(text)
    with pytest.raises(ValueError, match=message) as err:
        read_xyz(path)
    assert str(path) in str(err.value)


def test_missing_file():
    with pytest.raises(FileNotFoundError):
        read_xyz("/nonexistent/file.xyz")
    assert parse_xyz(WATER, "s")[0].z.numel() == 3
