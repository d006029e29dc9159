"""Checkpoints that torchmd-net's own tools write convert, and predict what torchmd-net predicts.

A small dataset in torchmd-net's ``Custom`` format (one ``.npy`` per molecule) is written from
QM9 molecules drawn at random. ``torchmd-train`` trains on it with torchmd-net's defaults
(``reduce_op: add``), with ``standardize`` and ``derivative``, and again with
``reduce_op: mean``. ``torchmd-train`` cannot build an atom-reference prior on a ``Custom``
dataset (its ``Atomref`` asks the dataset for ``get_atomref``, and ``LearnableAtomref`` rejects
the ``dataset`` argument that the script passes), so the prior models are trained with
torchmd-net's own Lightning module and data module instead, the way the script does it.
Each checkpoint is then loaded by ``molgnn.interop.from_torchmdnet`` and by torchmd-net's
``load_model`` and compared on held-out molecules.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

pytest.importorskip("torchmdnet.models.model", reason="needs torchmd-net 3.x (CI installs it)")
pytest.importorskip("lightning", reason="torchmd-net trains with Lightning")

from torchmdnet.models.model import load_model

from molgnn.data import QM9
from molgnn.interop import from_torchmdnet
from molgnn.models import build_model
from molgnn.nn import Atomref

pytestmark = [pytest.mark.interop, pytest.mark.slow]

NUM_TRAIN = 48  # molecules in the torchmd-net dataset
NUM_HELD_OUT = 12  # molecules it never saw
#: A small ET in torchmd-train's vocabulary; everything else stays at torchmd-train's defaults.
MODEL = {
    "model": "equivariant-transformer",
    "embedding_dimension": 32,
    "num_layers": 2,
    "num_rbf": 16,
    "num_heads": 4,
    "neighbor_embedding": True,
}


@pytest.fixture(scope="module")
def molecules(tmp_path_factory):
    """Random QM9 molecules with U0 and gap: (training ones, held-out ones)."""
    root = tmp_path_factory.mktemp("qm9")
    data = QM9(
        str(root), target=["U0", "gap"], subset=NUM_TRAIN + NUM_HELD_OUT, subset_seed=12,
        progress=False,
    )  # fmt: skip
    mols = [data[i] for i in range(len(data))]
    return mols[:NUM_TRAIN], mols[NUM_TRAIN:]


def write_custom(folder: Path, mols, column: int) -> dict[str, str]:
    """torchmd-net's Custom format: coordinates [1, N, 3], atomic numbers [N], energy [1, 1]."""
    folder.mkdir(parents=True, exist_ok=True)
    for k, mol in enumerate(mols):
        np.save(folder / f"pos_{k:04d}.npy", mol.pos.numpy().astype(np.float32)[None])
        np.save(folder / f"z_{k:04d}.npy", mol.z.numpy().astype(np.int64))
        energy = mol.y[0, column].numpy().astype(np.float32).reshape(1, 1)
        np.save(folder / f"energy_{k:04d}.npy", energy)
    return {
        "dataset": "Custom",
        "coord_files": str(folder / "pos_*.npy"),
        "embed_files": str(folder / "z_*.npy"),
        "energy_files": str(folder / "energy_*.npy"),
    }


def training_conf(tmp: Path, mols, column: int, **options) -> dict:
    conf = {
        **MODEL,
        **write_custom(tmp / "data", mols, column),
        "num_epochs": 1,
        "batch_size": 16,
        "ngpus": 1,  # Lightning rejects 0; on a machine without a GPU this is one CPU process
        "num_workers": 0,
        "train_size": 32,
        "val_size": 8,
        "test_size": 8,
        "save_interval": 1,
        "log_dir": str(tmp / "logs"),
        **options,
    }
    return conf


def torchmd_train(tmp: Path, conf: dict) -> Path:
    """Run torchmd-net's ``torchmd-train --conf`` and return the checkpoint it wrote."""
    exe = shutil.which("torchmd-train", path=str(Path(sys.executable).parent))
    assert exe is not None, "torchmd-net's torchmd-train script is not installed"
    path = tmp / "conf.yaml"
    path.write_text(yaml.safe_dump(conf))
    run = subprocess.run(
        [exe, "--conf", str(path)], cwd=tmp, capture_output=True, text=True, timeout=900
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    ckpts = sorted((tmp / "logs").glob("epoch=*.ckpt"))
    assert ckpts, f"torchmd-train wrote no checkpoint: {sorted((tmp / 'logs').iterdir())}"
    return ckpts[-1]


def train_with_prior(tmp: Path, conf: dict, prior) -> tuple[Path, torch.nn.Module]:
    """torchmd-train's own steps, with the prior built here instead of by the dataset.

    Returns the checkpoint and the trained torchmd-net model that wrote it.
    """
    import lightning.pytorch as pl
    from torchmdnet.data import DataModule
    from torchmdnet.module import LNNP
    from torchmdnet.scripts.train import get_argparse

    path = tmp / "conf.yaml"
    path.write_text(yaml.safe_dump(conf))
    args = get_argparse().parse_args(["--conf", str(path)])
    args.inference_batch_size = args.batch_size
    Path(args.log_dir).mkdir(parents=True, exist_ok=True)  # as torchmd-train's get_args does
    args.prior_model = type(prior).__name__
    args.prior_args = [prior.get_init_args()]
    pl.seed_everything(args.seed, workers=True)
    data = DataModule(args)
    data.prepare_data()
    data.setup("fit")
    module = LNNP(args, prior_model=[prior], mean=data.mean, std=data.std)
    trainer = pl.Trainer(
        max_epochs=args.num_epochs, accelerator="cpu", devices=1, logger=False,
        enable_checkpointing=False, enable_progress_bar=False, default_root_dir=str(tmp),
    )  # fmt: skip
    trainer.fit(module, data)
    ckpt = tmp / "logs" / "with_prior.ckpt"
    trainer.save_checkpoint(ckpt)
    return ckpt, module.model


def as_batch(mols, dtype):
    z = torch.cat([m.z for m in mols])
    pos = torch.cat([m.pos for m in mols]).to(dtype)
    batch = torch.cat([torch.full((m.z.numel(),), k) for k, m in enumerate(mols)])
    return z, pos, batch


def compare(ckpt: Path, held_out, dtype, reference=None):
    """Energies and forces of molgnn's conversion and of torchmd-net's model.

    The reference is torchmd-net's ``load_model(ckpt)`` unless one is given.
    """
    ours = from_torchmdnet(ckpt).to(dtype)
    theirs = (reference if reference is not None else load_model(str(ckpt))).to(dtype).eval()
    z, pos, batch = as_batch(held_out, dtype)
    y, forces = ours(z, pos.clone(), batch)
    y_ref, forces_ref = theirs(z, pos.clone(), batch)
    return ours, (y.detach(), forces.detach()), (y_ref.detach(), forces_ref.detach())


def assert_equal_float64(ckpt: Path, held_out, reference=None) -> tuple[float, float]:
    _, (y, f), (y_ref, f_ref) = compare(ckpt, held_out, torch.float64, reference)
    de, df = (y - y_ref).abs().max().item(), (f - f_ref).abs().max().item()
    assert de < 1e-8 and df < 1e-8, f"max |dE| = {de:.2e} eV, max |dF| = {df:.2e} eV/Å"
    assert y.shape == (len(held_out), 1) and f.shape == (sum(m.z.numel() for m in held_out), 3)
    return de, df


def assert_equal_float32(ckpt: Path, held_out, reference=None) -> None:
    # U0 totals are ~1e4 eV, so float32 carries ~1e-3 eV of rounding: compare relatively.
    _, (y, f), (y_ref, f_ref) = compare(ckpt, held_out, torch.float32, reference)
    torch.testing.assert_close(y, y_ref, rtol=2e-6, atol=1e-4)
    scale = f_ref.abs().max().item()
    torch.testing.assert_close(f, f_ref, rtol=1e-4, atol=1e-4 * max(scale, 1.0))


def test_torchmd_train_defaults_reduce_add(molecules, tmp_path):
    """torchmd-train's defaults: reduce_op add, standardize and derivative (U0 in eV)."""
    train, held_out = molecules
    conf = training_conf(tmp_path, train, column=0, standardize=True, derivative=True)
    assert "reduce_op" not in conf  # torchmd-train's own default applies: "add"
    ckpt = torchmd_train(tmp_path, conf)
    hparams = torch.load(ckpt, map_location="cpu", weights_only=False)["hyper_parameters"]
    assert hparams["reduce_op"] == "add" and hparams["standardize"] and hparams["derivative"]
    model = from_torchmdnet(ckpt)
    assert model.config.reduce_op == "sum" and model.config.derivative
    assert model.config.head == "equivariant_scalar"
    assert model.std.item() != 1.0 and model.mean.item() != 0.0  # standardisation carried over
    de, df = assert_equal_float64(ckpt, held_out)
    print(f"reduce add: max |dE| {de:.2e} eV, max |dF| {df:.2e} eV/Å (float64)")
    assert_equal_float32(ckpt, held_out)


def test_torchmd_train_reduce_mean(molecules, tmp_path):
    """reduce_op mean: torchmd-net divides each sum by atoms + 1; the conversion does too."""
    train, held_out = molecules
    conf = training_conf(
        tmp_path, train, column=1, reduce_op="mean", standardize=True, derivative=True
    )
    ckpt = torchmd_train(tmp_path, conf)
    model = from_torchmdnet(ckpt)
    assert model.config.reduce_op == "torchmdnet_mean"
    de, df = assert_equal_float64(ckpt, held_out)
    print(f"reduce mean: max |dE| {de:.2e} eV, max |dF| {df:.2e} eV/Å (float64)")
    assert_equal_float32(ckpt, held_out)
    # molgnn's own "mean" (sum / atoms) is a different model: the quirk is what makes them equal.
    plain = build_model(model.config.replace(reduce_op="mean")).double()
    plain.load_state_dict(model.state_dict())
    z, pos, batch = as_batch(held_out, torch.float64)
    y_plain = plain.eval()(z, pos, batch)[0]
    y_conv = model.double()(z, pos, batch)[0]
    assert (y_plain - y_conv).abs().max().item() > 1e-3


@pytest.mark.parametrize("kind", ["Atomref", "LearnableAtomref"])
def test_lightning_checkpoint_with_atomref_prior(molecules, tmp_path, kind):
    """torchmd-net's U0 recipe: an atom-reference prior and no standardisation."""
    from torchmdnet import priors

    train, held_out = molecules
    if kind == "Atomref":  # QM9's isolated-atom energies, as torchmd-net's QM9 dataset gives them
        prior = priors.Atomref(max_z=100)
        with torch.no_grad():
            prior.initial_atomref.copy_(Atomref.from_qm9("U0").weight.view(-1, 1))
            prior.reset_parameters()
    else:
        prior = priors.LearnableAtomref(max_z=100)
    conf = training_conf(tmp_path, train, column=0, standardize=False, derivative=True)
    ckpt, trained = train_with_prior(tmp_path, conf, prior)
    model = from_torchmdnet(ckpt)
    assert model.config.prior == ("atomref" if kind == "Atomref" else "learnable_atomref")
    assert model.prior.weight.requires_grad == (kind == "LearnableAtomref")
    assert model.prior.weight.abs().max().item() > 0  # the prior holds real values
    # torchmd-net 3.1's load_model cannot rebuild a LearnableAtomref (it passes the prior a
    # ``dataset`` argument that LearnableAtomref does not take), so that checkpoint is compared
    # with the torchmd-net model that wrote it.
    reference = None if kind == "Atomref" else trained
    if kind == "LearnableAtomref":
        with pytest.raises(TypeError, match="dataset"):
            load_model(str(ckpt))
    de, df = assert_equal_float64(ckpt, held_out, reference)
    print(f"{kind}: max |dE| {de:.2e} eV, max |dF| {df:.2e} eV/Å (float64)")
    assert_equal_float32(ckpt, held_out, reference)
