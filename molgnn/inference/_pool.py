"""The HTTP server's worker processes, each holding a copy of the model, and their pool.

Parsing molecules, embedding SMILES and running the model happen in these processes, never on
the event loop. A worker past a request's time limit is killed and replaced: a runaway RDKit
embedding cannot be interrupted any other way. Workers start as multiprocessing's
``forkserver`` (else ``spawn``) starts processes, and end with the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import pickle
import signal
import sys
import threading
import traceback
from typing import Any

from molgnn.inference._requests import Limits
from molgnn.inference._work import run_request

__all__ = ["Busy", "ShuttingDown", "Timeout", "WorkerDied", "WorkerPool"]

#: Modules the worker processes need, imported once by the fork server (when available).
_PRELOAD = ["molgnn.inference._pool", "rdkit.Chem.AllChem"]
#: Seconds allowed for a worker process to start and load the model.
_START_TIMEOUT = 300.0


def _exit_with_server(lifeline: Any) -> None:
    """End this worker when the server dies: ``lifeline`` reaches EOF when the server's end closes.

    A thread waits on it, so this works while RDKit or torch runs in the main thread (both
    release the GIL in their long loops).
    """

    def watch() -> None:
        try:
            lifeline.poll(None)
        finally:
            os._exit(0)

    threading.Thread(target=watch, name="molgnn-serve-lifeline", daemon=True).start()


def _worker_main(
    conn: Any,
    lifeline: Any,
    model_bytes: bytes,
    limits: Limits,
    threads: int,
    mc_dropout_samples: int | None = None,
) -> None:
    """A worker process: load the model, then answer requests from ``conn`` until it closes."""
    # The server stops its workers itself (SIGKILL), after answering their requests: a SIGTERM
    # or Ctrl-C sent to the whole process group must not kill them first.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    _exit_with_server(lifeline)
    import torch

    torch.set_num_threads(threads)
    try:  # RDKit's own log lines would repeat, on the server's stderr, errors sent to clients
        from rdkit import rdBase

        rdBase.DisableLog("rdApp.*")
    except ImportError:
        pass
    try:
        model = pickle.loads(model_bytes)
    except Exception as err:
        conn.send(("failed", f"{type(err).__name__}: {err}"))
        return
    conn.send(("ready", os.getpid()))
    while True:
        try:
            items = conn.recv()
        except (EOFError, OSError):
            return
        try:
            reply = run_request(model, items, limits, mc_dropout_samples)
        except Exception as err:
            traceback.print_exc()
            reply = ("internal", f"{type(err).__name__}: {err}")
        conn.send(reply)


class Timeout(Exception):
    """The work for a request took longer than its time limit (its worker was replaced)."""


class Busy(Exception):
    """No worker came free within the request's time limit."""


class WorkerDied(Exception):
    """The worker process ended during the request; ``args[0]`` is its exit code."""


class ShuttingDown(Exception):
    """The pool was closed before or during the request."""


def _context() -> Any:
    """A fork server where there is one (fast replacements, fork-safe), else spawn."""
    if "forkserver" in multiprocessing.get_all_start_methods():
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(_PRELOAD)
        return ctx
    return multiprocessing.get_context("spawn")


class _Worker:
    def __init__(self, ctx: Any, args: tuple[Any, ...]) -> None:
        self.conn, child = ctx.Pipe()
        lifeline, self._lifeline = ctx.Pipe(duplex=False)  # only this process holds the end
        self.process = ctx.Process(
            target=_worker_main,
            args=(child, lifeline, *args),
            name="molgnn-serve-worker",
            daemon=True,
        )
        self.process.start()
        child.close()
        lifeline.close()

    def check_ready(self, message: Any) -> None:
        if not (isinstance(message, tuple) and message[0] == "ready"):
            detail = message[1] if isinstance(message, tuple) else message
            raise RuntimeError(f"a server worker could not load the model: {detail}")

    def stop(self) -> None:
        # By pid, not Process.kill(): once the fork server is gone (a SIGTERM to the process
        # group), multiprocessing takes its children for dead while they still run.
        if self.process.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.process.pid, signal.SIGKILL)
        self.process.join(timeout=5)

    def kill(self) -> None:
        self.stop()
        self.conn.close()
        self._lifeline.close()


async def _receive(conn: Any, timeout: float) -> Any:
    """``conn.recv()`` without blocking the event loop; ``asyncio.TimeoutError`` after ``timeout``."""
    if not conn.poll():
        loop = asyncio.get_running_loop()
        readable = loop.create_future()
        fd = conn.fileno()

        def wake() -> None:
            if not readable.done():
                readable.set_result(None)

        loop.add_reader(fd, wake)
        try:
            await asyncio.wait_for(readable, max(timeout, 0.0))
        finally:
            loop.remove_reader(fd)
    return conn.recv()


class WorkerPool:
    """Worker processes holding the model; a worker past its time limit is killed and replaced.

    ``busy`` is the number of workers computing a request now.
    """

    def __init__(
        self,
        model_bytes: bytes,
        limits: Limits,
        size: int,
        mc_dropout_samples: int | None = None,
        threads: int | None = None,
    ) -> None:
        self.size = size
        self.busy = 0
        self._ctx = _context()
        if threads is None:
            threads = max(1, (os.cpu_count() or 1) // size)
        self._args = (model_bytes, limits, threads, mc_dropout_samples)
        self._workers: set[_Worker] = set()
        self._idle: asyncio.Queue[_Worker | None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False

    def start(self) -> None:
        """Start the missing workers and wait until each has loaded the model."""
        self._closed = False
        new = [_Worker(self._ctx, self._args) for _ in range(self.size - len(self._workers))]
        self._workers.update(new)
        for worker in new:
            if not worker.conn.poll(_START_TIMEOUT):
                self.close()
                raise RuntimeError(f"a server worker did not start within {_START_TIMEOUT:g} s")
            try:
                worker.check_ready(worker.conn.recv())
            except (EOFError, RuntimeError) as err:
                self.close()
                if isinstance(err, EOFError):
                    code = worker.process.exitcode
                    raise RuntimeError(
                        f"a server worker died while starting (exit code {code})"
                    ) from None
                raise

    def attach(self) -> None:
        """Make the workers available to requests on the running event loop."""
        self._idle = asyncio.Queue()
        for worker in self._workers:
            self._idle.put_nowait(worker)

    async def run(self, items: list[tuple[int, dict[str, Any]]], timeout: float) -> Any:
        """The worker's reply for ``items``.

        Raises:
            Busy: no worker came free within ``timeout``.
            Timeout: the work took longer than ``timeout`` (the worker is replaced).
            WorkerDied: the worker process ended (the worker is replaced).
            ShuttingDown: the pool was closed before or during the work.
        """
        idle = self._idle
        if idle is None or self._closed:
            raise ShuttingDown
        try:
            worker = await asyncio.wait_for(idle.get(), timeout)
        except asyncio.TimeoutError:
            raise Busy from None
        if worker is None:  # close() wakes the waiting requests with None
            idle.put_nowait(None)
            raise ShuttingDown
        self.busy += 1
        try:
            worker.conn.send(items)
            reply = await _receive(worker.conn, timeout)
        except asyncio.TimeoutError:
            self._replace(worker)
            raise Timeout from None
        except (EOFError, OSError):
            self._replace(worker)
            if self._closed:
                raise ShuttingDown from None
            raise WorkerDied(worker.process.exitcode) from None
        except BaseException:  # cancelled (shutdown, disconnect): its reply would come too late
            self._replace(worker)
            raise
        finally:
            self.busy -= 1
        if not self._closed:
            idle.put_nowait(worker)
        return reply

    def _replace(self, worker: _Worker) -> None:
        worker.kill()
        self._workers.discard(worker)
        if not self._closed:
            task = asyncio.get_running_loop().create_task(self._start_one())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _start_one(self) -> None:
        while not self._closed:
            # In a thread: starting a process can wait seconds (e.g. for a new fork server).
            worker = await asyncio.to_thread(_Worker, self._ctx, self._args)
            if self._closed:
                worker.kill()
                return
            self._workers.add(worker)
            try:
                worker.check_ready(await _receive(worker.conn, _START_TIMEOUT))
            except (asyncio.TimeoutError, EOFError, OSError, RuntimeError) as err:
                print(
                    f"molgnn serve: a replacement worker failed to start: {err!r}", file=sys.stderr
                )
                worker.kill()
                self._workers.discard(worker)
                await asyncio.sleep(5.0)
                continue
            if self._idle is not None:
                self._idle.put_nowait(worker)
            return

    def close(self) -> None:
        """Stop every worker at once, busy or not; the requests waiting on them get 503."""
        self._closed = True
        for task in list(self._tasks):
            task.cancel()
        for worker in list(self._workers):
            # A busy worker's pipe stays open: the request waiting on it wakes up at its EOF
            # (and closes it); closing it here would leave that request waiting forever.
            worker.stop()
        self._workers.clear()
        if self._idle is not None:
            while not self._idle.empty():
                waiting = self._idle.get_nowait()
                if waiting is not None:
                    waiting.conn.close()
            self._idle.put_nowait(None)
        self._idle = None
