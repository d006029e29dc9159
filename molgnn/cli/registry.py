"""``molgnn registry``: read an online store's model registry and data versions.

Actions: ``list`` (all models), ``show ID``, ``best`` (lowest validation MAE),
``lineage ID`` (the model and its warm-start ancestors, newest first), ``versions`` (with the
strategy that chose each version's molecules), ``acquisitions`` (per data version: the
strategy, the model that scored the candidates, how many were offered and chosen, the chosen
molecules' scores, min/mean/max, and the targeted search's count of top molecules found),
``acquisitions VERSION`` (every candidate that version's round offered, with its score, best
first, and whether it was chosen), ``manifest VERSION`` (the manifest whose SHA-256 is the
version id), ``verify``
(consistency check, unregistered checkpoints included; exit code 1 on problems) and ``repair``
(rebuild a damaged registry from the store's backup and the checkpoints' own records; nothing
is deleted). ``--json`` prints one JSON object per line. Every action but ``repair`` opens the
store read-only.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

__all__ = ["add_parser", "run"]

_ACTIONS = (
    "list",
    "show",
    "best",
    "lineage",
    "versions",
    "acquisitions",
    "manifest",
    "verify",
    "repair",
)


def add_parser(subparsers: Any) -> None:
    """Register ``molgnn registry``."""
    p = subparsers.add_parser(
        "registry",
        help="inspect the model registry and data versions of an online store",
        description=__doc__,
    )
    p.add_argument("action", choices=_ACTIONS)
    p.add_argument(
        "ref",
        nargs="?",
        help="model id (show, lineage) or data version, an id or a unique prefix (manifest, "
        "acquisitions)",
    )
    p.add_argument("--store", required=True, help="the store folder of `molgnn online`")
    p.add_argument("--json", action="store_true", help="machine-readable: one object per line")
    p.set_defaults(func=run)


def _model_id(action: str, ref: str | None) -> int:
    if ref is None:
        raise ValueError(f"registry {action} needs a model id")
    try:
        return int(ref)
    except ValueError:
        raise ValueError(f"registry {action}: model ids are integers, got {ref!r}") from None


def _row(m: Any, sizes: dict[str, int]) -> str:
    test = f"{m.test_mae:.4g}" if m.test_mae is not None else "-"
    val = f"{m.val_mae:.4g}" if m.val_mae is not None else "-"
    parent = str(m.parent_model) if m.parent_model is not None else "-"
    return (
        f"{m.id:>4}  {m.data_version[:12]}  {sizes.get(m.data_version, 0):>7}  {val:>10}  "
        f"{test:>10}  {parent:>6}  {'warm' if m.warm_start else 'scratch'}"
    )


def run(args: argparse.Namespace) -> int:
    """Run ``molgnn registry``; returns the exit code."""
    import sqlite3

    from molgnn.online import Store

    if args.action == "repair":
        return _repair(args)
    store = Store(args.store, readonly=True)
    try:
        return _run(store, args)
    except sqlite3.DatabaseError as err:
        raise ValueError(
            f"the online store {args.store} has a damaged database ({err}); run "
            f"`molgnn registry repair --store {args.store}`"
        ) from None
    finally:
        store.close()


def _repair(args: argparse.Namespace) -> int:
    from molgnn.online import Store

    for line in Store.repair(args.store):
        print(line if not args.json else json.dumps({"done": line}))
    store = Store(args.store, readonly=True)
    try:
        problems = store.verify()
        models = len(store.models())
    finally:
        store.close()
    if args.json:
        print(json.dumps({"ok": not problems, "problems": problems, "models": models}))
    else:
        for problem in problems:
            print(problem)
        print(
            f"repaired: {models} models registered;",
            "verify ok" if not problems else f"{len(problems)} problem(s) remain",
        )
    return 0 if not problems else 1


def _run(store: Any, args: argparse.Namespace) -> int:
    versions = store.versions()
    sizes = {v.id: v.size for v in versions}
    if args.action == "versions":
        how = {r.version: r.strategy for r in store.acquisitions()}
        for v in versions:
            if args.json:
                print(json.dumps({**v.__dict__, "strategy": how.get(v.id)}))
            else:
                parent = v.parent[:12] if v.parent else "-"
                print(
                    f"{v.seq:>4}  {v.id[:12]}  parent {parent:>12}  {v.size:>7} molecules  "
                    f"{how.get(v.id, '-')}"
                )
        return 0
    if args.action == "acquisitions":
        if args.ref is not None:
            return _candidates(store, args.ref, args.json)
        return _acquisitions(store, versions, args.json)
    if args.action == "manifest":
        if args.ref is None:
            raise ValueError("registry manifest needs a data version id (a unique prefix will do)")
        sys.stdout.write(store.manifest_text(store.get_version(args.ref)))
        return 0
    if args.action == "verify":
        problems = store.verify()
        if args.json:
            print(json.dumps({"ok": not problems, "problems": problems}))
        else:
            for problem in problems:
                print(problem)
            print(
                "ok" if not problems else f"{len(problems)} problem(s)",
                f"({len(versions)} data versions, {len(store.models())} models)",
            )
        return 0 if not problems else 1
    if args.action == "list":
        models = store.models()
    elif args.action == "best":
        best = store.best_model()
        models = [best] if best else []
    elif args.action == "show":
        models = [store.get_model(_model_id("show", args.ref))]
    else:
        models = store.lineage(_model_id("lineage", args.ref))
    if args.json:
        for m in models:
            print(json.dumps({**m.to_dict(), "data_size": sizes.get(m.data_version)}))
        return 0
    if args.action == "show":
        for key, value in {
            **models[0].to_dict(),
            "data_size": sizes.get(models[0].data_version),
        }.items():
            print(f"{key:>18}: {value}")
        return 0
    if not models:
        print("no models registered yet")
        return 0
    print(
        f"{'id':>4}  {'data version':12}  {'size':>7}  {'val MAE':>10}  {'test MAE':>10}  "
        f"{'parent':>6}  start"
    )
    for m in models:
        print(_row(m, sizes))
    return 0


def _score_summary(record: Any) -> dict[str, Any]:
    """The chosen molecules' scores: count, min, mean, max (`None` without scores)."""
    scores = [record.scores[m] for m in record.chosen if m in record.scores]
    return {
        "scored": len(scores),
        "score_min": min(scores) if scores else None,
        "score_mean": sum(scores) / len(scores) if scores else None,
        "score_max": max(scores) if scores else None,
    }


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def _acquisitions(store: Any, versions: list[Any], as_json: bool) -> int:
    """One line per data version: how its molecules were chosen."""
    records = {r.version: r for r in store.acquisitions()}
    if not as_json:
        print(
            f"{'seq':>4}  {'data version':12}  {'size':>7}  {'strategy':<22}  {'model':>5}  "
            f"{'offered':>7}  {'chosen':>6}  {'score min':>10}  {'mean':>10}  {'max':>10}  top found"
        )
    for v in versions:
        record = records.get(v.id)
        if record is None:  # made before the store recorded acquisitions
            row: dict[str, Any] = {"version": v.id, "seq": v.seq, "size": v.size, "strategy": None}
        else:
            row = {
                "version": v.id,
                "seq": v.seq,
                "size": v.size,
                "strategy": record.strategy,
                "model": record.model,
                "offered": record.offered,
                "chosen": len(record.chosen),
                **_score_summary(record),
                "details": record.details,
            }
        if as_json:
            print(json.dumps(row))
            continue
        if record is None:
            print(f"{v.seq:>4}  {v.id[:12]}  {v.size:>7}  {'(not recorded)':<22}")
            continue
        search = record.details.get("search")
        found = f"{search['found']} of {search['top']}" if search else "-"
        model = str(record.model) if record.model is not None else "-"
        print(
            f"{v.seq:>4}  {v.id[:12]}  {v.size:>7}  {record.strategy:<22}  {model:>5}  "
            f"{record.offered:>7}  {len(record.chosen):>6}  {_number(row['score_min']):>10}  "
            f"{_number(row['score_mean']):>10}  {_number(row['score_max']):>10}  {found}"
        )
    return 0


def _candidates(store: Any, ref: str, as_json: bool) -> int:
    """Every candidate of one version's round, best score first, and whether it was chosen."""
    version = store.get_version(ref)
    record = store.acquisition(version.id)
    if record is None:
        raise ValueError(
            f"data version {version.id[:12]} has no acquisition record (it was made before the "
            "store recorded them)"
        )
    chosen = set(record.chosen)
    if record.scores:
        ranked = sorted(record.scores.items(), key=lambda item: (-item[1], item[0]))
        rows = [(mol, score, mol in chosen) for mol, score in ranked]
    else:  # the first version, or a streamed chunk: nothing was scored
        rows = [(mol, None, True) for mol in record.chosen]
    if as_json:
        for rank, (mol, score, was_chosen) in enumerate(rows, start=1):
            print(json.dumps({"rank": rank, "mol_id": mol, "score": score, "chosen": was_chosen}))
        return 0
    model = f", scored by model {record.model}" if record.model is not None else ""
    print(
        f"data version {version.id[:12]} (seq {version.seq}, {version.size} molecules): "
        f"{record.strategy}{model}; {len(record.chosen)} of {record.offered} candidates chosen"
    )
    if record.details:
        print(f"details: {json.dumps(record.details)}")
    print(f"{'rank':>5}  {'molecule':<24}  {'score':>12}  chosen")
    for rank, (mol, score, was_chosen) in enumerate(rows, start=1):
        print(f"{rank:>5}  {mol:<24}  {_number(score):>12}  {'yes' if was_chosen else ''}")
    return 0
