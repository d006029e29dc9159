#!/usr/bin/env python
"""``molgnn serve`` under load: latency, throughput and memory against concurrent clients.

Starts ``molgnn serve`` on 127.0.0.1 (a free port) with a molgnn ET (``--checkpoint``, or a
randomly initialised ``--preset``: its speed is that of a trained one) and, for each
concurrency ``C`` of the sweep, runs ``C`` client threads for ``--duration`` seconds. Each client
keeps one HTTP connection and sends ``POST /predict`` requests of ``--molecules-per-request``
QM9 molecules (as XYZ text) drawn at random from ``--subset`` molecules drawn at random from all
of QM9 (``molgnn.data.QM9``, offline qm9pack data). Per concurrency: p50/p99 latency, requests/s,
molecules/s and its ratio to the first concurrency of the sweep, errors (any answer but a 200
with a value for every molecule, or no answer), the peak resident memory of the server process
and of its workers (sampled from ``/proc``), and the server's own count of answered requests
(``/metrics``), which must equal the clients'. The issue's target: under 32 concurrent clients,
no errors and p99 below 10 x p50.

    python benchmarks/serve_load.py                                # et-small, C = 1, 8, 32, 20 s
    python benchmarks/serve_load.py --checkpoint runs/gap/best.ckpt --workers 4
    python benchmarks/serve_load.py --concurrency 1 4 16 64 --duration 30 --molecules-per-request 8

The clients run in this process and share its CPUs with the server: on a small machine they
take a part of it (recorded: ``client_cpu_s``). Run it on a quiet machine; the load averages
before the run and each concurrency are recorded. Prints a table and writes JSON (default:
benchmarks/results/serve_load.json).
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from _harness import (
    RESULTS_DIR,
    Column,
    load,
    log,
    machine_meta,
    open_qm9,
    print_table,
    write_result,
)

DEFAULT_OUT = RESULTS_DIR / "serve_load.json"
#: Element symbols of QM9's atomic numbers, for the XYZ texts.
SYMBOLS = {1: "H", 6: "C", 7: "N", 8: "O", 9: "F"}
#: The issue's target: p99 latency below this multiple of p50, without errors.
P99_OVER_P50_TARGET = 10.0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument(
        "--checkpoint",
        help="serve this checkpoint, or anything molgnn.load takes (default: a random ET)",
    )
    p.add_argument("--preset", default="et-small", help="model preset (default: et-small)")
    p.add_argument("--hidden-channels", type=int, help="change the preset's hidden_channels")
    p.add_argument("--num-layers", type=int, help="change the preset's num_layers")
    p.add_argument("--num-heads", type=int, help="change the preset's num_heads")
    p.add_argument("--num-rbf", type=int, help="change the preset's num_rbf")
    p.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    p.add_argument("--duration", type=float, default=20.0, help="seconds per concurrency")
    p.add_argument("--warmup", type=float, default=3.0, help="untimed seconds before the sweep")
    p.add_argument("--molecules-per-request", type=int, default=1)
    p.add_argument("--workers", type=int, default=2, help="molgnn serve --workers (default: 2)")
    p.add_argument("--threads", type=int, help="molgnn serve --threads: torch threads per worker")
    p.add_argument("--request-timeout", type=float, default=30.0)
    p.add_argument("--subset", type=int, default=2000, help="QM9 molecules to draw from")
    p.add_argument("--data-root", type=Path, help="QM9 folder (default: <data root>/qm9)")
    p.add_argument("--seed", type=int, default=0, help="subset, requests and weights")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"JSON (default: {DEFAULT_OUT})")
    args = p.parse_args(argv)
    if min(args.concurrency) < 1 or args.molecules_per_request < 1 or args.workers < 1:
        p.error("--concurrency, --molecules-per-request and --workers must be positive")
    if not (args.duration > 0 and args.warmup >= 0 and args.subset > 0):
        p.error("--duration and --subset must be positive, --warmup non-negative")
    return args


# -- the molecules and the model ----------------------------------------------------------------


def xyz_text(mol: Any) -> str:
    lines = [str(mol.z.numel()), str(getattr(mol, "name", ""))]
    for z, (x, y, w) in zip(mol.z.tolist(), mol.pos.tolist()):
        lines.append(f"{SYMBOLS[z]} {x:.6f} {y:.6f} {w:.6f}")
    return "\n".join(lines) + "\n"


def write_checkpoint(args: argparse.Namespace, elements: list[int], path: Path) -> dict[str, Any]:
    """A randomly initialised ET of ``--preset`` (with the size options), saved to ``path``."""
    import torch

    from molgnn.io import save_checkpoint
    from molgnn.models import build_model

    sizes = {
        k: getattr(args, k)
        for k in ("hidden_channels", "num_layers", "num_heads", "num_rbf")
        if getattr(args, k) is not None
    }
    torch.manual_seed(args.seed)
    model = build_model(args.preset, **sizes)
    save_checkpoint(
        {
            "model_config": model.config.to_dict(),
            "state_dict": model.state_dict(),
            "target": {"names": ["gap"], "units": ["eV"]},
            "normalization": {"standardize": False, "atomref": False},
            "data": {"dataset": "QM9", "elements": elements},
        },
        path,
    )
    return {
        "preset": args.preset,
        **sizes,
        "parameters": sum(p.numel() for p in model.parameters()),
    }


# -- the server ---------------------------------------------------------------------------------


class Server:
    """``python -m molgnn.cli serve`` in a subprocess; its stderr is collected."""

    def __init__(
        self, checkpoint: str | Path, workers: int, request_timeout: float, threads: int | None
    ) -> None:
        start = time.monotonic()
        self.proc = subprocess.Popen(
            [
                sys.executable, "-m", "molgnn.cli", "serve", str(checkpoint), "--host",
                "127.0.0.1", "--port", "0", "--workers", str(workers), "--request-timeout",
                str(request_timeout), *(["--threads", str(threads)] if threads else []),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )  # fmt: skip
        self.stderr: list[str] = []
        self.port: int | None = None
        ready = threading.Event()

        def drain() -> None:
            assert self.proc.stderr is not None
            for line in self.proc.stderr:
                self.stderr.append(line)
                if self.port is None and line.startswith("molgnn serve: serving "):
                    self.port = int(line.split(" on http://", 1)[1].split()[0].rsplit(":", 1)[1])
                    ready.set()
            ready.set()

        threading.Thread(target=drain, daemon=True).start()
        ready.wait(600)
        if self.port is None:
            self.stop()
            raise RuntimeError("molgnn serve did not start:\n" + "".join(self.stderr))
        self.start_s: float = time.monotonic() - start

    def get(self, path: str) -> tuple[int, bytes]:
        assert self.port is not None
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            conn.request("GET", path)
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()

    def processes(self) -> list[int]:
        """The server's pid, then every process under it (fork server, workers, ...)."""
        parents: dict[int, int] = {}
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    stat = (entry / "stat").read_text()
                except OSError:
                    continue
                parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
        found, frontier = [self.proc.pid], [self.proc.pid]
        while frontier:
            frontier = [p for p, ppid in parents.items() if ppid in frontier]
            found.extend(frontier)
        return found

    def answered_ok(self) -> float:
        """The server's count of ``/predict`` requests answered 200 (``/metrics``)."""
        from prometheus_client.parser import text_string_to_metric_families

        status, text = self.get("/metrics")
        if status != 200:
            raise RuntimeError(f"GET /metrics answered {status}")
        for family in text_string_to_metric_families(text.decode()):
            for sample in family.samples:
                if sample.name == "molgnn_serve_requests_total" and sample.labels == {
                    "endpoint": "/predict",
                    "status": "200",
                }:
                    return sample.value
        return 0.0

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


class MemorySampler:
    """The peak RSS of the server process and the sum over its descendants, every 0.2 s."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.server_mb = 0.0
        self.workers_mb = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            main, *others = self.server.processes()
            self.server_mb = max(self.server_mb, rss_mb(main) or 0.0)
            self.workers_mb = max(self.workers_mb, sum(rss_mb(p) or 0.0 for p in others))
            self._stop.wait(0.2)

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


# -- the clients --------------------------------------------------------------------------------


def client(
    port: int,
    bodies: list[bytes],
    molecules: int,
    seed: int,
    deadline: float,
    out: list[tuple[float, float, int, bool]],
) -> None:
    """Send requests until ``deadline``; append (start, latency s, molecules, ok) for each."""
    rng = random.Random(seed)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    headers = {"Content-Type": "application/json"}
    try:
        while time.perf_counter() < deadline:
            body = bodies[rng.randrange(len(bodies))]
            start = time.perf_counter()
            try:
                conn.request("POST", "/predict", body, headers)
                response = conn.getresponse()
                payload = response.read()
                latency = time.perf_counter() - start
                records = json.loads(payload).get("results", [])
                values = sum(1 for r in records if not r.get("error") and r.get("gap") is not None)
                ok = response.status == 200 and values == molecules
            except (OSError, http.client.HTTPException, ValueError):
                latency, values, ok = time.perf_counter() - start, 0, False
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
            out.append((start, latency, values, ok))
    finally:
        conn.close()


def percentile(values: list[float], q: float) -> float:
    """The ``q``-th percentile (0-100) of ``values``, linearly interpolated."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    rank = (len(ordered) - 1) * q / 100.0
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def run_level(
    server: Server, bodies: list[bytes], args: argparse.Namespace, concurrency: int, seconds: float
) -> dict[str, Any]:
    """``concurrency`` clients for ``seconds``; the row of the table."""
    assert server.port is not None
    load_before = load()["load_average"]
    counted_before = server.answered_ok()
    results: list[list[tuple[float, float, int, bool]]] = [[] for _ in range(concurrency)]
    cpu_before = time.process_time()
    begin = time.perf_counter()
    deadline = begin + seconds
    with MemorySampler(server) as memory:
        seeds = [args.seed * 100_003 + concurrency * 1009 + c for c in range(concurrency)]
        threads = [
            threading.Thread(
                target=client,
                args=(server.port, bodies, args.molecules_per_request, seed, deadline, out),
            )
            for seed, out in zip(seeds, results)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    done = [r for per_client in results for r in per_client]
    elapsed = max((start + latency for start, latency, _, _ in done), default=deadline) - begin
    latencies = [latency for _, latency, _, ok in done if ok]
    errors = sum(1 for *_, ok in done if not ok)
    p50, p99 = percentile(latencies, 50), percentile(latencies, 99)
    counted = server.answered_ok() - counted_before
    return {
        "concurrency": concurrency,
        "requests": len(done),
        "errors": errors,
        "p50_ms": 1000 * p50,
        "p99_ms": 1000 * p99,
        "mean_ms": 1000 * sum(latencies) / len(latencies) if latencies else math.nan,
        "p99_over_p50": p99 / p50 if p50 > 0 else math.nan,
        "requests_per_s": (len(done) - errors) / elapsed,
        "molecules_per_s": sum(values for _, _, values, _ in done) / elapsed,
        "seconds": elapsed,
        "server_rss_peak_mb": memory.server_mb,
        "workers_rss_peak_mb": memory.workers_mb,
        "server_counted_ok": counted,
        "client_cpu_s": time.process_time() - cpu_before,
        "load_before": load_before,
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    meta = machine_meta("cpu")
    log(f"load average at start: {meta['load_at_start']['load_average']}")
    ds = open_qm9(args.data_root, subset=args.subset, seed=args.seed)
    mols = [ds[i] for i in range(len(ds))]
    rng = random.Random(args.seed)
    bodies = []
    for _ in range(max(256, 4 * len(mols) // args.molecules_per_request)):
        picked = [rng.choice(mols) for _ in range(args.molecules_per_request)]
        items = [{"xyz": xyz_text(m)} for m in picked]
        body = items[0] if len(items) == 1 else {"molecules": items}
        bodies.append(json.dumps(body).encode())
    atoms = sum(m.z.numel() for m in mols) / len(mols)
    with tempfile.TemporaryDirectory(prefix="molgnn-serve-load-") as tmp:
        checkpoint: str | Path
        if args.checkpoint is not None:
            checkpoint, model = args.checkpoint, {"checkpoint": args.checkpoint}
        else:
            checkpoint = Path(tmp) / "model.ckpt"
            elements = sorted({int(z) for m in mols for z in m.z.tolist()})
            model = write_checkpoint(args, elements, checkpoint)
        log(f"starting molgnn serve ({args.workers} worker(s)) ...")
        server = Server(checkpoint, args.workers, args.request_timeout, args.threads)
        try:
            log(f"serving on port {server.port} after {server.start_s:.1f} s")
            if args.warmup > 0:
                run_level(server, bodies, args, 1, args.warmup)
            rows = []
            for concurrency in args.concurrency:
                log(f"{concurrency} client(s) for {args.duration:g} s ...")
                rows.append(run_level(server, bodies, args, concurrency, args.duration))
        finally:
            server.stop()
    base = rows[0]["molecules_per_s"]
    for row in rows:
        row["throughput_x_first"] = row["molecules_per_s"] / base if base > 0 else math.nan
        row["meets_target"] = bool(row["errors"] == 0 and row["p99_over_p50"] < P99_OVER_P50_TARGET)
    first = args.concurrency[0]
    print_table(
        rows,
        [
            Column("concurrency", "clients"),
            Column("requests", "requests", ","),
            Column("errors", "errors", ","),
            Column("p50_ms", "p50 ms", ".1f"),
            Column("p99_ms", "p99 ms", ".1f"),
            Column("p99_over_p50", "p99/p50", ".1f"),
            Column("molecules_per_s", "mol/s", ".1f"),
            Column("throughput_x_first", f"x {first} client(s)", ".2f"),
            Column("server_rss_peak_mb", "server MB", ".0f"),
            Column("workers_rss_peak_mb", "workers MB", ".0f"),
        ],
        title=(
            f"molgnn serve, {args.workers} worker(s), {args.molecules_per_request} molecule(s) "
            f"per request ({atoms:.1f} atoms on average), {args.duration:g} s per row; target: "
            f"no errors and p99 < {P99_OVER_P50_TARGET:g} x p50"
        ),
    )
    settings = {
        "model": model,
        "workers": args.workers,
        "threads_per_worker": args.threads,
        "request_timeout": args.request_timeout,
        "molecules_per_request": args.molecules_per_request,
        "duration_s": args.duration,
        "warmup_s": args.warmup,
        "subset": len(mols),
        "seed": args.seed,
        "mean_atoms_per_molecule": atoms,
        "server_start_s": server.start_s,
        "p99_over_p50_target": P99_OVER_P50_TARGET,
        "memory_note": "peak VmRSS sampled every 0.2 s: the server process, and the sum over "
        "its descendants (fork server, resource tracker, workers)",
    }
    write_result(args.out, "serve_load", {**meta, **settings}, rows=rows)
    log(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
