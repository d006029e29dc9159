"""Runs a tiny online loop in a subprocess, optionally SIGKILLing itself at a chosen moment.

Usage: ``python online_worker.py STORE [KILL]`` where KILL is ``commit:N`` (die inside the
N-th committing transaction, after its writes and before COMMIT), ``checkpoint:N`` (die right
after the N-th checkpoint is renamed into models/, before it is registered), ``epoch:N`` (die
in the middle of the N-th training epoch) or absent (run to the end).
"""

from __future__ import annotations

import os
import signal
import sys

import torch
from torch_geometric.data import Data

from molgnn.testing import random_molecule

TINY = {"hidden_channels": 8, "num_layers": 1, "num_heads": 2, "num_rbf": 8}


def source(n: int = 70) -> list[Data]:
    """``n`` small labelled molecules with stable ids."""
    mols = []
    for i in range(n):
        mol = random_molecule(3 + i % 4, seed=i)
        mol.y = torch.tensor([[float(mol.z.sum()) / 10.0 + 0.1 * (i % 3)]])
        mol.mol_id = f"mol-{i:03d}"
        mols.append(mol)
    return mols


def config(store: str, **changes: object) -> object:
    from molgnn.online import OnlineConfig

    settings: dict[str, object] = dict(
        store=store, model={"preset": "et-small", **TINY}, subset=70, initial=20,
        chunk=10, growth=0.5, val=8, test=8, epochs=1, batch_size=16, seed=0,
    )  # fmt: skip
    settings.update(changes)
    return OnlineConfig.from_dict(settings)


def _die() -> None:
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def install_kill(kind: str, count: int) -> None:
    """Arrange a SIGKILL at the ``count``-th event of ``kind``."""
    import molgnn.online.loop as loop
    import molgnn.online.store as store_module

    seen = {"n": 0}

    def hit() -> bool:
        seen["n"] += 1
        return seen["n"] == count

    if kind == "commit":
        original = store_module.Store.__init__

        def init(self: object, root: object) -> None:
            original(self, root)  # type: ignore[arg-type]
            self.db.set_trace_callback(  # type: ignore[attr-defined]
                lambda sql: _die() if sql == "COMMIT" and hit() else None
            )

        store_module.Store.__init__ = init  # type: ignore[method-assign]
    elif kind == "checkpoint":
        real_replace = os.replace

        def replace(src: object, dst: object) -> None:
            real_replace(src, dst)  # type: ignore[arg-type]
            if str(dst).endswith(".ckpt") and "models" in str(dst) and hit():
                _die()

        loop.os.replace = replace  # type: ignore[assignment]
    elif kind == "epoch":
        from molgnn.training import Trainer

        real_epoch = Trainer.train_epoch

        def train_epoch(self: Trainer, loader: object) -> float:
            if hit():
                _die()
            return real_epoch(self, loader)  # type: ignore[arg-type]

        Trainer.train_epoch = train_epoch  # type: ignore[method-assign]
    else:
        raise ValueError(f"unknown kill point {kind!r}")


def main() -> None:
    from molgnn.online import run_online

    store = sys.argv[1]
    if len(sys.argv) > 2:
        kind, count = sys.argv[2].split(":")
        install_kill(kind, int(count))
    run_online(config(store), source=source(), verbose=True)  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
