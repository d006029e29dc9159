from pathlib import Path

from molgnn.cli import main

FIXTURE = Path(__file__).parents[1] / "fixtures" / "qm9pack"


def test_data_qm9_summary(tmp_path, capsys):
    code = main(["data", "qm9", "--root", str(tmp_path), "--source-dir", str(FIXTURE),
                 "--target", "gap", "U0"])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0
    assert "QM9: 30 molecules" in out
    gap_line = next(line for line in out.splitlines() if line.strip().startswith("gap"))
    assert "eV" in gap_line and "HOMO-LUMO gap" in gap_line


def test_unknown_target_is_a_clean_error(tmp_path, capsys):
    code = main(
        ["data", "qm9", "--root", str(tmp_path), "--source-dir", str(FIXTURE), "--target", "gapp"]
    )
    assert code == 1
    assert "unknown QM9 target 'gapp'" in capsys.readouterr().err
