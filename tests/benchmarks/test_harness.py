"""The benchmarks' shared harness (benchmarks/_harness): real timing of a tiny model, the result
file and its reader, the molecules file, the optimiser, the table."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
import torch
from _harness import (
    RESULT_FORMAT,
    Column,
    Timing,
    draw_batches,
    format_table,
    fused_adamw_supported,
    load_molecules,
    machine_meta,
    make_optimizer,
    measure_throughput,
    open_qm9,
    read_result,
    save_molecules,
    to_device,
    write_json,
    write_result,
)

from molgnn.models import build_model

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
TINY = {"hidden_channels": 16, "num_layers": 1, "num_heads": 2, "num_rbf": 8}


@pytest.fixture
def batches(tiny_qm9):
    ds = open_qm9(tiny_qm9)
    return draw_batches(ds, count=3, batch_size=4, seed=0)


def test_times_a_real_tiny_model_and_writes_a_result_the_reader_accepts(batches, tmp_path):
    torch.manual_seed(0)
    model = build_model("et-small", **TINY)
    before = [p.detach().clone() for p in model.parameters()]
    on_cpu = [to_device(b, "cpu") for b in batches]
    speed = measure_throughput(model, on_cpu, Timing(warmup=1, steps=2, repeats=2))

    # the training phase really stepped the optimiser: the weights moved
    assert any(not torch.equal(a, p) for a, p in zip(before, model.parameters()))
    assert not model.training  # inference ran last, in eval mode
    assert len(speed.train) == len(speed.infer) == 2
    assert all(math.isfinite(r) and r > 0 for r in speed.train + speed.infer)
    atoms = sum(b.z.numel() for b in on_cpu[1:]) / 2
    assert speed.atoms_per_step == atoms
    assert speed.optimizer == "AdamW(lr=0.0001, fused=True)"  # torch fuses AdamW on a CPU
    row = {"model": "et-tiny", **speed.to_dict()}
    assert row["train_mol_per_s"] == pytest.approx(sum(speed.train) / 2)  # the median of two
    assert row["train_repeats_mol_per_s"] == speed.train
    assert row["train_spread"] >= 0 and row["infer_spread"] >= 0

    path = write_result(
        tmp_path / "out" / "r.json",
        "gnn_throughput",
        {**machine_meta("cpu"), "steps": 2},
        rows=[row],
    )
    result = read_result(path, "gnn_throughput")
    assert result["format"] == RESULT_FORMAT and result["benchmark"] == "gnn_throughput"
    assert result["rows"] == [json.loads(json.dumps(row))]
    meta = result["meta"]
    assert meta["steps"] == 2 and meta["device"] == "cpu" and meta["cpu_model"]
    assert meta["torch_threads"] == torch.get_num_threads()
    for key in ("load_at_start", "load_at_end"):
        assert set(meta[key]) == {"load_average", "tasks_running_total", "uptime_s"}
    assert [p.name for p in path.parent.iterdir()] == ["r.json"]  # no temporary file left

    with pytest.raises(ValueError, match="not 'et_throughput'"):
        read_result(path, "et_throughput")


def test_reader_refuses_other_files(tmp_path):
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"meta": {}, "rows": []}))
    with pytest.raises(ValueError, match="is not a molgnn-benchmark/1 result file"):
        read_result(other)
    other.write_text("{not json")
    with pytest.raises(ValueError, match="is not JSON"):
        read_result(other)
    with pytest.raises(ValueError, match="the file format's own"):
        write_result(tmp_path / "x.json", "b", {}, meta={})
    with pytest.raises(ValueError, match="the file format's own"):
        write_result(tmp_path / "x.json", "b", {}, format="mine")
    assert not (tmp_path / "x.json").exists()


def test_not_finite_numbers_are_written_as_null_with_a_warning(tmp_path, capsys):
    path = write_json(tmp_path / "x.json", {"rows": [{"a": float("nan"), "b": 1.5}]})
    assert json.loads(path.read_text()) == {"rows": [{"a": None, "b": 1.5}]}
    assert "$.rows[0].a = nan" in capsys.readouterr().err


def test_batches_are_seeded_and_the_molecules_file_round_trips(tiny_qm9, batches, tmp_path):
    ds = open_qm9(tiny_qm9)
    again = draw_batches(ds, count=3, batch_size=4, seed=0)
    other = draw_batches(ds, count=3, batch_size=4, seed=1)
    same = all(torch.equal(a[k], b[k]) for a, b in zip(batches, again) for k in a)
    assert same
    assert not all(torch.equal(a["pos"], b["pos"]) for a, b in zip(batches, other))
    for b in batches:
        assert b["y"].shape == (4, 1) and int(b["batch"].max()) == 3

    path = save_molecules(tmp_path / "mols.pt", {"tiny": batches}, seed=0)
    loaded = load_molecules(path, "tiny", batch_size=4, count=2)
    assert len(loaded) == 2
    assert all(torch.equal(a[k], b[k]) for a, b in zip(batches, loaded) for k in a)
    with pytest.raises(ValueError, match="batch size 4, this run needs 8"):
        load_molecules(path, "tiny", batch_size=8, count=2)
    with pytest.raises(ValueError, match="holds 3 batches, this run needs 5"):
        load_molecules(path, "tiny", batch_size=4, count=5)


def test_the_optimiser_is_fused_adamw_where_torch_has_the_kernel():
    cpu = make_optimizer(torch.nn.Linear(3, 1))
    assert type(cpu) is torch.optim.AdamW and cpu.defaults["fused"] is True
    assert not fused_adamw_supported("meta")
    meta = make_optimizer(torch.nn.Linear(3, 1, device="meta"))
    assert type(meta) is torch.optim.AdamW and not meta.defaults["fused"]
    with pytest.raises(ValueError, match="timing needs 2 batches, got 0"):
        measure_throughput(torch.nn.Linear(3, 1), [], Timing(warmup=1, steps=1, repeats=1))
    with pytest.raises(ValueError, match="steps and repeats must be positive"):
        Timing(warmup=0, steps=0, repeats=1)


def test_table_widths_missing_values_and_error_rows():
    columns = [
        Column("config", "config", align="<"),
        Column("impl", "impl", align="<"),
        Column("rate", "train mol/s", ".1f"),
        Column("x", "x", ".2f"),
    ]
    rows = [
        {"config": "tiny", "impl": "molgnn-et", "rate": 1234.56, "x": None},
        {"config": "tiny", "impl": "torchmd-net", "error": "boom"},
    ]
    header, rule, first, second = format_table(rows, columns)
    assert header == "config impl        train mol/s x"
    assert rule == "-" * len(header)
    assert first == "tiny   molgnn-et        1234.6 -"
    assert second == "tiny   torchmd-net ERROR: boom"


def test_every_script_uses_the_harness_and_builds_no_optimiser_of_its_own():
    scripts = sorted(BENCHMARKS.glob("*.py"))
    assert scripts
    for script in scripts:
        text = script.read_text()
        assert re.search(r"^from _harness import", text, re.M), script.name
        assert "torch.optim." not in text, f"{script.name}: use _harness.make_optimizer"
        assert "default_data_root" not in text, f"{script.name}: use molgnn.data.qm9_root"
