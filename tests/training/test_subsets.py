"""Random QM9 subsets in training: the config, the checkpoint record and rebuilding from it."""

import numpy as np
import pytest
import torch

from molgnn.cli import main
from molgnn.cli.train import config_from_args
from molgnn.data import QM9
from molgnn.io import load_checkpoint, save_checkpoint
from molgnn.training import TrainConfig, Trainer, fit
from molgnn.training.data import dataset_from_checkpoint, load_dataset

TINY = {"hidden_channels": 8, "num_layers": 1, "num_heads": 2, "num_rbf": 8}


def _config(root, out, **changes):
    values = dict(model={"preset": "et-small", **TINY}, subset=12, subset_seed=4, epochs=1, warmup_steps=1,
                  batch_size=4, data_root=str(root), out_dir=str(out))  # fmt: skip
    values.update(changes)
    return TrainConfig(**values)


def test_subset_seed_is_validated_and_settable():
    assert TrainConfig().subset_seed == 0
    assert TrainConfig().with_assignments(["subset_seed=7"]).subset_seed == 7
    for bad in (-1, True, 1.5):
        with pytest.raises(ValueError, match="subset_seed"):
            TrainConfig(subset_seed=bad)


def test_train_cli_passes_subset_and_seed():
    from molgnn.cli import build_parser

    args = build_parser().parse_args(["train", "--subset", "500", "--subset-seed", "3"])
    config = config_from_args(args)
    assert (config.subset, config.subset_seed) == (500, 3)


def test_load_dataset_draws_the_configs_subset(tiny_qm9, tmp_path):
    config = _config(tiny_qm9, tmp_path)
    ids = load_dataset(config).molecule_ids
    assert np.array_equal(ids, QM9(str(tiny_qm9), subset=12, subset_seed=4).molecule_ids)
    other = load_dataset(config.replace(subset_seed=5)).molecule_ids
    assert not np.array_equal(ids, other)


def test_checkpoints_record_the_subsets_molecule_ids(tiny_qm9, tmp_path):
    result = fit(_config(tiny_qm9, tmp_path / "run"), verbose=False)
    expected = QM9(str(tiny_qm9), subset=12, subset_seed=4, progress=False).molecule_ids
    for path in (result.best_checkpoint, result.last_checkpoint):
        record = load_checkpoint(path)["data"]
        assert (record["subset"], record["subset_seed"]) == (12, 4)
        assert record["molecule_ids"].dtype == torch.long
        assert record["molecule_ids"].tolist() == expected.tolist()
    # The record rebuilds the same molecules, so the split indices point at the same ones.
    rebuilt = dataset_from_checkpoint(result.best_checkpoint)
    assert rebuilt.molecule_ids.tolist() == expected.tolist()
    test = load_checkpoint(result.best_checkpoint)["data"]["split"]["test"]
    trainer = Trainer.resume(result.last_checkpoint, progress=False)
    assert trainer.dataset.molecule_ids.tolist() == expected.tolist()
    assert [int(rebuilt[int(i)].idx) for i in test] == [
        int(trainer.dataset[int(i)].idx) for i in test
    ]


def test_rebuild_selects_by_id_when_the_config_does_not_describe_the_data(tiny_qm9, tmp_path):
    # A dataset handed to fit() directly: the config's subset says nothing about it, the ids do.
    data = QM9(str(tiny_qm9), first=15, progress=False)
    result = fit(_config(tiny_qm9, tmp_path / "run"), dataset=data[torch.arange(14, -1, -1)],
                 verbose=False)  # fmt: skip
    rebuilt = dataset_from_checkpoint(result.best_checkpoint)
    assert rebuilt.molecule_ids.tolist() == list(range(15, 0, -1))
    assert [int(m.idx) for m in rebuilt] == list(range(15, 0, -1))


def test_rebuild_of_older_and_id_less_checkpoints(tiny_qm9, tmp_path):
    result = fit(_config(tiny_qm9, tmp_path / "run"), verbose=False)
    payload = load_checkpoint(result.best_checkpoint)
    # Written before subsets were random draws: subset=N meant the first N molecules.
    old = {**payload, "data": {k: v for k, v in payload["data"].items()
                               if k not in ("molecule_ids", "subset_seed")}}  # fmt: skip
    assert dataset_from_checkpoint(old).molecule_ids.tolist() == list(range(1, 13))
    path = save_checkpoint(old, tmp_path / "old.ckpt")
    assert dataset_from_checkpoint(path).molecule_ids.tolist() == list(range(1, 13))
    # Molecules from elsewhere (an online store's data version) have no QM9 ids to rebuild from.
    online = {**payload, "data": {**payload["data"], "dataset": "ListDataset",
                                  "molecule_ids": None}}  # fmt: skip
    with pytest.raises(ValueError, match="ListDataset dataset has no QM9 ids"):
        dataset_from_checkpoint(online)
    # Ids that the QM9 source lacks are named.
    alien = {**payload, "data": {**payload["data"], "molecule_ids": torch.tensor([1, 99_999])}}
    with pytest.raises(ValueError, match="1 of the checkpoint's 2 molecules are not in"):
        dataset_from_checkpoint(alien)


def test_online_config_draws_its_subset_and_keys_the_store_on_the_seed(tmp_path):
    from molgnn.online import OnlineConfig

    config = OnlineConfig.from_dict(
        {"store": str(tmp_path / "s"), "subset": 30, "val": 4, "test": 4, "initial": 10}
    )
    assert config.data_settings()["subset_seed"] == 0
    with pytest.raises(ValueError, match="subset_seed"):
        OnlineConfig.from_dict({"store": str(tmp_path / "s"), "subset_seed": -1})


def test_online_cli_streams_a_random_subset(tiny_qm9, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MOLGNN_DATA", str(tmp_path / "data"))
    store = tmp_path / "store"
    args = ["online", "--store", str(store), "--subset", "20", "--subset-seed", "2", "--val", "4",
            "--test", "4", "--initial", "10", "--chunk", "5", "--epochs", "1", "--max-chunks",
            "1", "--quiet", "--data-root", str(tiny_qm9)]  # fmt: skip
    for key, value in TINY.items():
        args += ["--set", f"model.{key}={value}"]
    assert main(args) == 0
    from molgnn.online import Store

    opened = Store(store)
    mols = [*opened.molecules("val"), *opened.molecules("test"),
            *opened.molecules("train", opened.versions()[-1])]  # fmt: skip
    ids = {int(m.mol_id.removeprefix("qm9-")) for m in mols}
    drawn = set(QM9(str(tiny_qm9), subset=20, subset_seed=2, progress=False).molecule_ids.tolist())
    assert len(ids) == 4 + 4 + 10 and ids <= drawn
    capsys.readouterr()
    # The same store with another draw is refused.
    args[args.index("--subset-seed") + 1] = "3"
    assert main(args) == 1
    assert "subset_seed" in capsys.readouterr().err
