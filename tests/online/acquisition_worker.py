"""Runs a tiny online loop with acquisition in a subprocess, optionally SIGKILLing itself.

Usage: ``python acquisition_worker.py STORE STRATEGY [KILL]``. KILL is one of
``online_worker.py``'s (``commit:N``, ``checkpoint:N``, ``epoch:N``) or ``acquire:N`` (die inside
the N-th acquisition round's transaction, after its writes and before COMMIT) or ``score:N``
(die while the N-th round scores its candidates).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import online_worker as worker

#: The acquisition settings of every run (54 molecules to acquire from after the held-out 16).
ACQUIRE = {"pool": 10, "batch": 5, "committee": 2}


#: The targeted search of the kill tests: expected improvement over MC dropout of a pooled GNN.
TARGETED = {
    "ei": {
        "uncertainty": "mc-dropout",
        "mc_dropout_samples": 8,
        "model": {"preset": "pooled", "hidden_channels": 8, "num_layers": 1, "num_rbf": 8,
                  "dropout": 0.2},
    },
}  # fmt: skip


def config(store: str, strategy: str) -> object:
    return worker.config(store, acquire=strategy, **ACQUIRE, **TARGETED.get(strategy, {}))


def install_kill(kind: str, count: int) -> None:
    """Arrange a SIGKILL at the ``count``-th event of ``kind``."""
    import molgnn.online.acquisition as acquisition
    import molgnn.online.store as store_module

    seen = {"n": 0}

    def hit() -> bool:
        seen["n"] += 1
        return seen["n"] == count

    if kind == "acquire":
        inside = {"round": False}
        original_init = store_module.Store.__init__
        original_ingest = store_module.Store.ingest

        def init(self: object, root: object) -> None:
            original_init(self, root)  # type: ignore[arg-type]
            self.db.set_trace_callback(  # type: ignore[attr-defined]
                lambda sql: worker._die() if sql == "COMMIT" and inside["round"] and hit() else None
            )

        def ingest(
            self: object,
            chunk: object,
            cursor: int,
            acquisition: object = None,
            state: object = None,
        ) -> object:
            inside["round"] = acquisition is not None
            try:
                return original_ingest(self, chunk, cursor, acquisition, state)  # type: ignore[arg-type]
            finally:
                inside["round"] = False

        store_module.Store.__init__ = init  # type: ignore[method-assign]
        store_module.Store.ingest = ingest  # type: ignore[method-assign,assignment]
    elif kind == "score":
        for cls in acquisition.ACQUISITION_STRATEGIES.values():
            real = cls.scores

            def scores(self: object, *args: object, _real: object = real) -> object:
                if hit():
                    worker._die()
                return _real(self, *args)  # type: ignore[operator]

            cls.scores = scores  # type: ignore[method-assign,assignment]
    else:
        worker.install_kill(kind, count)


def main() -> None:
    from molgnn.online import run_online

    store, strategy = sys.argv[1], sys.argv[2]
    if len(sys.argv) > 3:
        kind, count = sys.argv[3].split(":")
        install_kill(kind, int(count))
    run_online(config(store, strategy), source=worker.source(), verbose=True)  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
