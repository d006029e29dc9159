"""``molgnn registry acquisitions`` on a real small acquisition run of ``molgnn online``."""

import json
import statistics
from pathlib import Path

import pytest

from molgnn.cli import main
from molgnn.online import Store

FIXTURE = Path(__file__).parents[1] / "fixtures" / "qm9pack"  # 30 QM9 molecules


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("MOLGNN_QM9PACK_DIR", str(FIXTURE))
    root = tmp_path_factory.mktemp("acquire")
    args = ["online", "--store", str(root / "store"), "--data-root", str(root / "qm9"),
            "--subset", "30", "--val", "4", "--test", "4", "--initial", "8", "--growth", "0.3",
            "--epochs", "1", "--batch-size", "8", "--acquire", "lcb", "--objective", "minimize",
            "--kappa", "0.5", "--pool", "6", "--batch", "3", "--max-chunks", "3",
            "--model", "pooled", "--set", "model.hidden_channels=8", "--set", "model.num_layers=1",
            "--set", "model.num_rbf=8", "--set", "model.dropout=0.2",
            "--set", "uncertainty=mc-dropout", "--set", "mc_dropout_samples=4",
            "--set", "top_fraction=0.1"]  # fmt: skip
    assert main(args) == 0
    mp.undo()
    return root / "store"


def registry(capsys, *args):
    code = main(["registry", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def records(root):
    s = Store(root, readonly=True)
    try:
        return s.versions(), s.acquisitions()
    finally:
        s.close()


def test_summary_per_version_matches_the_store(store, capsys):
    versions, expected = records(store)
    assert [r.strategy for r in expected] == ["initial", "lcb", "lcb"]
    code, out, _ = registry(capsys, "acquisitions", "--store", str(store), "--json")
    rows = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and [r["version"] for r in rows] == [v.id for v in versions]
    assert [r["size"] for r in rows] == [8, 11, 14]
    first = rows[0]
    assert (first["strategy"], first["chosen"], first["scored"]) == ("initial", 8, 0)
    assert first["score_min"] is None
    for row, record in zip(rows[1:], expected[1:], strict=True):
        chosen = [record.scores[m] for m in record.chosen]
        assert (row["strategy"], row["offered"], row["chosen"], row["scored"]) == ("lcb", 6, 3, 3)
        assert row["model"] == record.model is not None
        assert row["score_min"] == min(chosen) and row["score_max"] == max(chosen)
        assert row["score_mean"] == pytest.approx(statistics.fmean(chosen))
        assert row["details"]["kappa"] == 0.5 and row["details"]["search"]["top"] == 3
    # The text table says the same, one line per version after the header.
    code, out, _ = registry(capsys, "acquisitions", "--store", str(store))
    lines = out.splitlines()
    assert code == 0 and len(lines) == 4 and lines[0].split()[:3] == ["seq", "data", "version"]
    assert lines[1].split()[2:4] == ["8", "initial"]
    cells = lines[2].split()
    record = expected[1]
    search = record.details["search"]
    assert cells[2:7] == ["11", "lcb", str(record.model), "6", "3"]
    assert cells[7] == f"{rows[1]['score_min']:.4g}" and cells[9] == f"{rows[1]['score_max']:.4g}"
    assert lines[2].endswith(f"{search['found']} of {search['top']}")


def test_per_molecule_scores_of_one_version(store, capsys):
    versions, expected = records(store)
    record = expected[2]
    code, out, _ = registry(
        capsys, "acquisitions", versions[2].id[:10], "--store", str(store), "--json"
    )
    rows = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and len(rows) == 6  # every candidate offered
    assert [r["rank"] for r in rows] == list(range(1, 7))
    assert {r["mol_id"]: r["score"] for r in rows} == record.scores
    assert [r["score"] for r in rows] == sorted(record.scores.values(), reverse=True)
    assert [r["mol_id"] for r in rows if r["chosen"]] == record.chosen  # the best three
    assert [r["chosen"] for r in rows] == [True] * 3 + [False] * 3
    code, out, _ = registry(capsys, "acquisitions", versions[2].id[:10], "--store", str(store))
    lines = out.splitlines()
    assert code == 0 and lines[0].startswith(f"data version {versions[2].id[:12]} (seq 2")
    assert f"lcb, scored by model {record.model}; 3 of 6 candidates chosen" in lines[0]
    assert lines[1].startswith("details: ") and json.loads(lines[1][9:]) == record.details
    table = lines[3:]
    assert [row.split()[1] for row in table] == [r["mol_id"] for r in rows]
    assert [row.endswith("yes") for row in table] == [r["chosen"] for r in rows]
    # The first version was not scored: its molecules, in the order taken.
    code, out, _ = registry(capsys, "acquisitions", versions[0].id, "--store", str(store), "--json")
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["mol_id"] for r in rows] == expected[0].chosen and rows[0]["score"] is None


def test_versions_name_their_strategy_and_errors_are_clear(store, capsys):
    code, out, _ = registry(capsys, "versions", "--store", str(store), "--json")
    assert code == 0 and [json.loads(x)["strategy"] for x in out.splitlines()] == [
        "initial",
        "lcb",
        "lcb",
    ]
    code, out, _ = registry(capsys, "versions", "--store", str(store))
    assert [line.split()[-1] for line in out.splitlines()] == ["initial", "lcb", "lcb"]
    code, _, err = registry(capsys, "acquisitions", "ffffffff", "--store", str(store))
    assert code == 1 and "ffffffff" in err
