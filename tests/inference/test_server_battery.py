"""The HTTP server under bad and expensive input: ``molgnn serve`` in a real subprocess.

Two servers run for the module, on 127.0.0.1 and a port the OS picks: one with a small random
model and a 2 s request limit, one with NaN weights and a 60 s limit (for SIGTERM during a slow
request). Every refused body must get its 4xx, a message naming the problem and no traceback,
in the response or on the server's stderr.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import torch

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
pytest.importorskip("rdkit")

from molgnn.cli import main
from molgnn.io import save_checkpoint
from molgnn.models import build_model

sys.path.insert(0, str(Path(__file__).parent))
from inference_battery import WATER

#: Changes to the ``et-qm9`` preset for the served model (larger than the batteries' ``TINY``).
SERVED_MODEL = {"hidden_channels": 16, "num_layers": 1, "num_heads": 2, "num_rbf": 8}
#: 300 carbons and 602 hydrogens: inside the default limits (1000 atoms, 1000 characters), but
#: RDKit's embedding of it runs far longer than the test servers' limits.
SLOW_SMILES = "C" * 300
REQUEST_TIMEOUT = 2
SHUTDOWN_TIMEOUT = 1
#: Helper processes of the server that the SIGTERM test stops, checked at the module's end.
HELPERS: list[int] = []


def _write_checkpoint(path: Path, nan_weights: bool = False) -> Path:
    torch.manual_seed(0)
    model = build_model("et-qm9", **SERVED_MODEL)
    state = model.state_dict()
    if nan_weights:
        state = {k: v.fill_(float("nan")) if v.is_floating_point() else v for k, v in state.items()}
    return save_checkpoint(
        {
            "model_config": model.config.to_dict(),
            "state_dict": state,
            "target": {"names": ["gap"], "units": ["eV"]},
            "normalization": {"standardize": False, "atomref": False},
            "data": {"dataset": "QM9", "elements": [1, 6, 7, 8]},
            "metrics": {"test_mae_mev": float("nan") if nan_weights else 123.0},
        },
        path,
    )


class Server:
    """``python -m molgnn.cli serve`` in a subprocess, its stderr collected."""

    def __init__(self, checkpoint: Path, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "molgnn.cli", "serve", str(checkpoint), "--port", "0", *args],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self.stderr: list[str] = []
        self.base: str | None = None
        self._serving = threading.Event()
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.stderr.append(line)
            if self.base is None and line.startswith("molgnn serve: serving "):
                self.base = line.split(" on ", 1)[1].split()[0]
                self._serving.set()
        self._serving.set()

    def wait_ready(self, timeout: float = 180.0) -> None:
        deadline = time.monotonic() + timeout
        self._serving.wait(timeout)
        while self.base is not None and time.monotonic() < deadline:
            try:
                if self.get("/health", timeout=2.0)[0] == 200:
                    return
            except OSError:
                time.sleep(0.1)
        pytest.fail(f"the server did not start: {''.join(self.stderr)}")

    def request(
        self, path: str, body: bytes | None = None, timeout: float = 30.0
    ) -> tuple[int, str]:
        assert self.base is not None
        req = urllib.request.Request(
            self.base + path, data=body, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(req, timeout=timeout) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as err:
            return err.code, err.read().decode()

    def get(self, path: str, timeout: float = 30.0) -> tuple[int, str]:
        return self.request(path, timeout=timeout)

    def post(self, payload: object, timeout: float = 30.0) -> tuple[int, dict]:
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        status, text = self.request("/predict", body, timeout)
        return status, _strict_json(text)

    def descendants(self) -> list[list[int]]:
        """Processes under the server by generation, from /proc: its helpers (the fork server,
        multiprocessing's resource tracker), then the workers the fork server started."""
        parents: dict[int, int] = {}
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    stat = (entry / "stat").read_text()
                except OSError:
                    continue
                parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
        generations, frontier = [], [self.proc.pid]
        while frontier:
            frontier = [p for p, ppid in parents.items() if ppid in frontier]
            generations.append(frontier)
        return generations[:-1]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _strict_json(text: str) -> dict:
    def refuse(constant: str) -> None:
        raise AssertionError(f"invalid JSON constant {constant} in {text[:200]}")

    return json.loads(text, parse_constant=refuse)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    root = tmp_path_factory.mktemp("serve")
    good = Server(
        _write_checkpoint(root / "good.ckpt"),
        "--request-timeout",
        str(REQUEST_TIMEOUT),
        "--workers",
        "2",
    )
    broken = Server(
        _write_checkpoint(root / "nan.ckpt", nan_weights=True),
        "--request-timeout",
        "60",
        "--workers",
        "1",
        "--shutdown-timeout",
        str(SHUTDOWN_TIMEOUT),
    )
    try:  # both start at once: their start-up is most of this module's time
        good.wait_ready()
        broken.wait_ready()
        yield good, broken
    finally:
        good.stop()
        broken.stop()
    for server in (good, broken):
        assert "Traceback" not in "".join(server.stderr), "".join(server.stderr)
    # The fork server and resource tracker of the server stopped by SIGTERM exit too, once
    # their interpreters have shut down (a few seconds with torch loaded).
    deadline = time.monotonic() + 20
    while any(_alive(pid) for pid in HELPERS) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [pid for pid in HELPERS if _alive(pid)], "helper processes outlived the server"


@pytest.fixture(scope="module")
def server(servers):
    return servers[0]


def test_model_reports_limits_and_health_is_exact(server):
    assert server.get("/health") == (200, '{"status":"ok"}')
    status, text = server.get("/model")
    info = _strict_json(text)
    assert status == 200 and info["targets"] == ["gap"] and info["elements"] == [1, 6, 7, 8]
    assert info["limits"] == {
        "max_request_bytes": 1_000_000,
        "max_molecules": 1000,
        "max_atoms": 1000,
        "max_smiles_length": 1000,
        "request_timeout": REQUEST_TIMEOUT,
        "workers": 2,
    }


def test_good_molecules_get_values(server):
    status, body = server.post({"molecules": [{"xyz": WATER, "name": "w"}, {"smiles": "CCO"}]})
    assert status == 200, body
    water, ethanol = body["results"]
    assert water["index"] == 0 and water["name"] == "w" and isinstance(water["gap"], float)
    assert water["generated_geometry"] is False
    assert ethanol["index"] == 1 and ethanol["name"] == "CCO" and isinstance(ethanol["gap"], float)
    assert ethanol["generated_geometry"] is True


XYZ_1001 = "1001\nbig\n" + "".join(f"C {i * 1.5} 0 0\n" for i in range(1001))

BAD_BODIES = {
    "empty body": (b"", 400, ["body is empty"]),
    "not JSON": (b"{not json", 400, ["invalid JSON", "line 1 column 2"]),
    "invalid UTF-8": (b'{"smiles": "\xff\xfe"}', 400, ["not valid UTF-8", "0xff", "position 12"]),
    "NaN literal": (b'{"smiles": NaN}', 400, ["NaN is not valid JSON"]),
    "nested too deeply": (b"[" * 100_000, 400, ["nested too deeply"]),
    "a list": (b"[1, 2]", 422, ["expected a JSON object", "got a list"]),
    "a string": (b'"CCO"', 422, ["expected a JSON object", "got a string"]),
    "no fields": (b"{}", 422, ["molecule 0", "missing 'xyz' or 'smiles'"]),
    "unknown field": (b'{"smile": "CCO"}', 422, ["unknown field(s) 'smile'", "'smiles'"]),
    "smiles a number": (b'{"smiles": 5}', 422, ["'smiles' must be a string", "got a number"]),
    "xyz null": (b'{"xyz": null}', 422, ["'xyz' must be a string", "got null"]),
    "both": ({"smiles": "C", "xyz": WATER}, 422, ["exactly one of 'xyz' or 'smiles'"]),
    "empty smiles": ({"smiles": " "}, 422, ["'smiles' is empty"]),
    "name a number": ({"smiles": "C", "name": 3}, 422, ["'name' must be a string"]),
    "unknown element": (
        {"xyz": "2\nx\nO 0 0 0\nQq 1 0 0\n"},
        422,
        ["molecule 0", "line 4", "unknown element 'Qq'"],
    ),
    "NaN coordinate": ({"xyz": "1\nx\nO nan 0 0\n"}, 422, ["molecule 0", "line 3", "NaN"]),
    "empty molecule": ({"xyz": "0\n\n"}, 422, ["molecule 0", "0 atoms"]),
    "truncated xyz": ({"xyz": "2\nx\nO 0 0 0\n"}, 422, ["molecule 0", "truncated"]),
    "element never trained": (
        {"xyz": "2\nx\nS 0 0 0\nH 1.3 0 0\n"},
        422,
        ["molecule 0", "S never seen in training"],
    ),
    "unparsable SMILES": ({"smiles": "C1CC("}, 422, ["molecule 0", "SMILES", "C1CC("]),
    "SMILES too long": ({"smiles": "C" * 1001}, 422, ["1001 characters", "max_smiles_length"]),
    "SMILES too many atoms": ({"smiles": "C" * 1000}, 422, ["3002 atoms", "max_atoms"]),
    "XYZ too many atoms": ({"xyz": XYZ_1001}, 422, ["1001 atoms", "max_atoms"]),
    "molecules not a list": ({"molecules": "CCO"}, 422, ["'molecules' must be a list"]),
    "molecules empty": ({"molecules": []}, 422, ["'molecules' is empty"]),
    "molecules and smiles": (
        {"molecules": [{"smiles": "C"}], "smiles": "C"},
        422,
        ["no other top-level field", "'smiles'"],
    ),
    "too many molecules": ({"molecules": [{"smiles": "C"}] * 1001}, 413, ["1001", "max_molecules"]),
    "too many in one XYZ": ({"xyz": WATER * 1001}, 413, ["1000", "max_molecules"]),
    "body too large": (
        json.dumps({"xyz": "x" * 1_000_001}).encode(),
        413,
        ["1000000 bytes", "max_request_bytes"],
    ),
}


@pytest.mark.parametrize("case", list(BAD_BODIES))
def test_bad_body_gets_4xx_naming_the_problem(server, case):
    payload, expected, names = BAD_BODIES[case]
    start = time.monotonic()
    status, body = server.post(payload)
    assert status == expected, body
    assert time.monotonic() - start < REQUEST_TIMEOUT, "refused only after the time limit"
    for name in names:
        assert name in body["error"], (name, body["error"])
    assert "Traceback" not in json.dumps(body)


def test_oversized_bodies_get_413_however_they_are_sent(server):
    import http.client

    assert server.base is not None
    host, port = server.base.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    try:  # a huge Content-Length is refused before any of the body is sent
        conn.putrequest("POST", "/predict")
        conn.putheader("Content-Length", str(10**12))
        conn.endheaders()
        response = conn.getresponse()
        assert (
            response.status == 413
            and "max_request_bytes" in _strict_json(response.read().decode())["error"]
        )
    finally:
        conn.close()
    chunks = iter([b'{"xyz": "', b"x" * 600_000, b"x" * 600_000, b'"}'])  # chunked, no length
    status, text = server.request("/predict", chunks)  # type: ignore[arg-type]
    assert status == 413 and "1000000 bytes" in _strict_json(text)["error"]


def test_batch_keeps_good_molecules_and_names_bad_ones(server):
    molecules = [
        {"xyz": WATER},
        {"xyz": "2\nx\nO 0 0 0\nQq 1 0 0\n"},
        {"smiles": 5},
        "CCO",
        {"smiles": "C" * 1000},
    ]
    status, body = server.post({"molecules": molecules})
    assert status == 200
    results = body["results"]
    assert [r["index"] for r in results] == [0, 1, 2, 3, 4]
    assert isinstance(results[0]["gap"], float) and not results[0].get("error")
    for index, name in [
        (1, "unknown element 'Qq'"),
        (2, "must be a string"),
        (3, "expected an object"),
        (4, "max_atoms"),
    ]:
        assert f"molecule {index}" in results[index]["error"] and name in results[index]["error"]
        assert "gap" not in results[index]


def test_health_stays_fast_while_slow_requests_run(server):
    replies: dict[int, tuple[int, dict]] = {}

    def slow(k: int) -> None:
        replies[k] = server.post({"smiles": SLOW_SMILES}, timeout=60)

    threads = [threading.Thread(target=slow, args=(k,)) for k in range(2)]  # both workers busy
    for thread in threads:
        thread.start()
    latencies = []
    while any(thread.is_alive() for thread in threads):
        start = time.monotonic()
        assert server.get("/health", timeout=5) == (200, '{"status":"ok"}')
        latencies.append(time.monotonic() - start)
        time.sleep(0.1)
    assert len(latencies) >= 5 and max(latencies) < 1.0, latencies
    for status, body in replies.values():
        assert status == 503, body
        assert (
            f"limit of {REQUEST_TIMEOUT} s" in body["error"] and "request_timeout" in body["error"]
        )
    # The killed workers are replaced: the server predicts again.
    deadline = time.monotonic() + 30
    while True:
        status, body = server.post({"smiles": "CCO"})
        if status == 200 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert status == 200 and isinstance(body["results"][0]["gap"], float), body


def test_nan_model_gives_null_and_an_error(servers):
    broken = servers[1]
    status, text = broken.request(
        "/predict", json.dumps({"molecules": [{"xyz": WATER}, {"smiles": "CO"}]}).encode()
    )
    assert status == 200  # and _strict_json below refuses NaN and Infinity
    for index, record in enumerate(_strict_json(text)["results"]):
        assert record["gap"] is None
        assert f"molecule {index}" in record["error"] and "non-finite" in record["error"]
    status, body = broken.post({"xyz": WATER})
    assert status == 200 and body["results"][0]["gap"] is None and body["results"][0]["error"]
    status, text = broken.get("/model")
    assert status == 200 and _strict_json(text)["metrics"]["test_mae_mev"] is None


def test_sigterm_during_a_slow_request_exits_promptly(servers):
    broken = servers[1]
    helpers, workers = broken.descendants()
    assert helpers and workers, "no worker processes found"
    HELPERS.extend(helpers)
    reply: list[object] = []

    def slow() -> None:
        reply.append(broken.post({"smiles": SLOW_SMILES}, timeout=60))

    thread = threading.Thread(target=slow)
    thread.start()
    time.sleep(1.0)
    assert thread.is_alive() and broken.get("/health", timeout=5)[0] == 200
    start = time.monotonic()
    broken.proc.send_signal(signal.SIGTERM)
    broken.proc.wait(timeout=15)
    took = time.monotonic() - start
    assert took < SHUTDOWN_TIMEOUT + 3.0, f"exit took {took:.1f} s"
    thread.join(10)
    assert not thread.is_alive() and reply, "the slow request got no answer"
    status, body = reply[0]  # type: ignore[misc]
    assert status == 503 and "shutting down" in body["error"]
    assert not [pid for pid in workers if _alive(pid)], "workers outlived the server"


@pytest.mark.parametrize(
    "args, names",
    [
        (["--port", "99999"], ["--port", "0 and 65535", "99999"]),
        (["--port", "-1"], ["--port"]),
        (["--request-timeout", "0"], ["--request-timeout"]),
        (["--request-timeout", "nan"], ["--request-timeout"]),
        (["--workers", "0"], ["--workers"]),
        (["--max-atoms", "0"], ["--max-atoms"]),
        (["--threads", "0"], ["--threads", "at least 1"]),
    ],
)
def test_bad_arguments_give_one_line(tmp_path, capsys, args, names):
    assert main(["serve", str(tmp_path / "missing.ckpt"), *args]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("molgnn serve: error: "), err
    for name in names:
        assert name in err


def test_port_in_use_gives_one_line(tmp_path, capsys):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["serve", str(tmp_path / "x.ckpt"), "--port", str(port)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"cannot listen on 127.0.0.1:{port}" in err, err


@pytest.mark.parametrize("kind", ["missing", "folder", "text", "empty", "foreign", "no config"])
def test_bad_checkpoint_gives_one_line(tmp_path, capsys, kind):
    path = tmp_path / "model.ckpt"
    if kind == "folder":
        path.mkdir()
    elif kind == "text":
        path.write_text("root:x:0:0:root:/root:/bin/bash\n")
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "foreign":
        torch.save({"weights": torch.zeros(3)}, path)
    elif kind == "no config":
        save_checkpoint({"state_dict": {}}, path)
    assert main(["serve", str(path), "--port", "0"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("molgnn serve: error: "), err
    assert str(path) in err and "Traceback" not in err
