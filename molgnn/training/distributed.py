"""Data-parallel training: one model replica per process, every process a slice of each batch.

[`Trainer`][molgnn.training.Trainer] trains data-parallel whenever a ``torch.distributed``
process group of more than one process is active
([`current_data_parallel`][molgnn.training.current_data_parallel]); whoever starts the processes
sets the group up: ``spawn_local`` for ``molgnn train --devices N`` ([`fit`][molgnn.training.fit]),
Ray Train's ``TorchTrainer`` for a sweep trial with several workers ([`molgnn.tune`][molgnn.tune]),
or ``torchrun``.

The run is the single-process run with the same ``batch_size``, computed on several devices:

- every process shuffles with the same seeded generator, so all of them draw the same global
  batches as a single process would, and each takes its own contiguous slice of every batch
  (``GlobalBatchShard``);
- the model is wrapped in ``DistributedDataParallel``, which averages
  the gradients over the processes; each process's loss is weighted by
  ``world_size * local / global`` molecules
  ([`DataParallel.weigh`][molgnn.training.DataParallel.weigh]), so that the averaged gradient is the
  gradient of the global batch's mean loss, for an uneven last batch too;
- validation and test batches are the single-process ones, shared out in contiguous blocks
  (``BatchBlock``); the predictions are gathered in order
  ([`DataParallel.gather`][molgnn.training.DataParallel.gather]), so every process computes the
  metrics of the whole split, and the schedule and early stopping take the same decisions
  everywhere.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.utils.data import BatchSampler, RandomSampler, Sampler
from torch_geometric.data import Dataset
from torch_geometric.loader import DataLoader

__all__ = [
    "LOOPBACK",
    "BatchBlock",
    "DataParallel",
    "GlobalBatchShard",
    "current_data_parallel",
    "free_port",
    "shard_bounds",
    "spawn_local",
]

#: The only address the local process groups of ``spawn_local`` bind to.
LOOPBACK = "127.0.0.1"


def shard_bounds(size: int, rank: int, world_size: int) -> tuple[int, int]:
    """``[start, stop)`` of ``rank``'s contiguous share of ``size`` items (shares differ by at
    most one item; a rank gets none when ``size < world_size``)."""
    return rank * size // world_size, (rank + 1) * size // world_size


def _batch_sizes(num_items: int, batch_size: int) -> list[int]:
    """Sizes of the batches of ``num_items`` items (the last one may be smaller)."""
    return [min(batch_size, num_items - start) for start in range(0, num_items, batch_size)]


class GlobalBatchShard(Sampler[list[int]]):
    """This process's slice of every global batch that ``batches`` draws.

    Every process iterates the same global batches (the same seeded generator, so the same
    order as a single-process run) and yields its contiguous slice of each. A process whose
    slice of a batch is empty (a last batch smaller than the number of processes) yields the
    batch's first index instead, to be trained on with weight 0 (see
    [`DataParallel.step_shares`][molgnn.training.DataParallel.step_shares]): every process must run
    every step, since the gradient all-reduce is collective.

    Args:
        batches: The global batches (a ``BatchSampler``).
        rank: This process's rank.
        world_size: The number of processes.
    """

    def __init__(self, batches: BatchSampler, rank: int, world_size: int) -> None:
        self.batches = batches
        self.rank = rank
        self.world_size = world_size

    def __iter__(self) -> Iterator[list[int]]:
        for batch in self.batches:
            start, stop = shard_bounds(len(batch), self.rank, self.world_size)
            yield batch[start:stop] if stop > start else batch[:1]

    def __len__(self) -> int:
        return len(self.batches)


class BatchBlock(Sampler[list[int]]):
    """This process's contiguous block of the unshuffled batches of ``num_items`` items.

    Validation and test use the single-process batches, so each molecule is predicted in the
    same batch as in a single-process run; concatenating the blocks in rank order gives the
    single-process order.

    Args:
        num_items: Items of the split.
        batch_size: Items per batch (the last batch may be smaller).
        rank: This process's rank.
        world_size: The number of processes.
    """

    def __init__(self, num_items: int, batch_size: int, rank: int, world_size: int) -> None:
        self.num_items = num_items
        self.batch_size = batch_size
        self.rank = rank
        self.world_size = world_size

    def _block(self, rank: int) -> range:
        num_batches = len(_batch_sizes(self.num_items, self.batch_size))
        return range(*shard_bounds(num_batches, rank, self.world_size))

    def __iter__(self) -> Iterator[list[int]]:
        for k in self._block(self.rank):
            start = k * self.batch_size
            yield list(range(start, min(start + self.batch_size, self.num_items)))

    def __len__(self) -> int:
        return len(self._block(self.rank))

    def rows(self) -> list[int]:
        """Items in each rank's block, in rank order."""
        sizes = _batch_sizes(self.num_items, self.batch_size)
        return [sum(sizes[k] for k in self._block(r)) for r in range(self.world_size)]


@dataclass(frozen=True)
class DataParallel:
    """This process's place in a data-parallel run, and the collective steps of training.

    Args:
        rank: This process's rank in the default process group.
        world_size: The number of processes (at least 2).
    """

    rank: int
    world_size: int

    @property
    def is_main(self) -> bool:
        """Whether this is rank 0, the process that writes checkpoints and logs."""
        return self.rank == 0

    def check(self, batch_size: int) -> None:
        """Refuse a global batch that cannot give every process a molecule."""
        if batch_size < self.world_size:
            raise ValueError(
                f"batch_size ({batch_size}) is the global batch, shared out over the "
                f"{self.world_size} data-parallel processes; it must be at least {self.world_size}"
            )

    def local_device(self, device: torch.device) -> torch.device:
        """``device`` with this process's GPU index (``cuda`` -> ``cuda:<current device>``)."""
        if device.type == "cuda" and device.index is None:
            return torch.device("cuda", torch.cuda.current_device())
        return device

    def wrap(self, model: nn.Module, device: torch.device) -> nn.Module:
        """``model`` (already on ``device``) in ``DistributedDataParallel``.

        ``find_unused_parameters`` is on: the Equivariant Transformer has parameters that get
        no gradient (the first layer's vector projection acts on all-zero vector features, as
        in torchmd-net). Buffers are synchronised once, not before every forward pass: every
        process computes the same ones (normalisation, radial bases).
        """
        from torch.nn.parallel import DistributedDataParallel

        return DistributedDataParallel(
            model,
            device_ids=[device.index] if device.type == "cuda" else None,
            find_unused_parameters=True,
            forward_sync_buffers=False,
        )

    def train_loader(
        self, dataset: Dataset, batch_size: int, generator: torch.Generator
    ) -> DataLoader:
        """This process's slices of the global training batches, shuffled by ``generator``.

        The generator is drawn from exactly as ``DataLoader(dataset, batch_size, shuffle=True,
        generator=generator)`` draws from it, so the global batches are the single-process ones.
        """
        batches = BatchSampler(
            RandomSampler(range(len(dataset)), generator=generator), batch_size, drop_last=False
        )
        sampler = GlobalBatchShard(batches, self.rank, self.world_size)
        return DataLoader(dataset, batch_sampler=sampler, generator=generator)

    def eval_loader(self, dataset: Dataset, batch_size: int) -> DataLoader:
        """This process's block of the single-process evaluation batches (see
        ``BatchBlock``)."""
        sampler = BatchBlock(len(dataset), batch_size, self.rank, self.world_size)
        return DataLoader(dataset, batch_sampler=sampler)

    def step_shares(self, num_molecules: int, batch_size: int) -> list[tuple[int, int]]:
        """``(local, global)`` molecules of each training step, in order.

        ``local`` is 0 where this process trains on a stand-in molecule with weight 0.
        """
        shares = []
        for size in _batch_sizes(num_molecules, batch_size):
            start, stop = shard_bounds(size, self.rank, self.world_size)
            shares.append((stop - start, size))
        return shares

    def weigh(self, loss: Tensor, local: int, global_: int) -> tuple[Tensor, Tensor]:
        """The loss to backpropagate and the global batch's loss.

        DistributedDataParallel averages gradients over the processes, so the local mean loss
        is scaled by ``world_size * local / global_``: the average of the scaled gradients is
        then the gradient of the global batch's mean loss. The global loss (the mean over the
        global batch, as a single process computes it) is all-reduced, so every process sees
        a non-finite loss at the same step.

        Args:
            loss: This process's mean loss over its ``local`` molecules.
            local: Molecules of this process's slice (0 for a stand-in).
            global_: Molecules of the global batch.

        Returns:
            ``(loss * weight, global mean loss)``; the latter is a detached float64 scalar.
        """
        total = loss.detach().to(torch.float64) * local
        dist.all_reduce(total)
        return loss * (self.world_size * local / global_), total / global_

    def gather(self, parts: Sequence[Tensor], rows: Sequence[int], device: torch.device) -> Tensor:
        """Every rank's rows, concatenated in rank order, on every rank.

        Args:
            parts: This rank's 2-D tensors, with ``rows[rank]`` rows each; they are joined
                column-wise (as float64, which holds float32 values and atom counts exactly).
            rows: The number of rows of each rank.
            device: Where the collective runs (a CUDA device for NCCL).

        Returns:
            ``[sum(rows), columns]`` float64 on the CPU.
        """
        local = torch.cat([p.to(device=device, dtype=torch.float64) for p in parts], dim=1)
        padded = torch.zeros(max(rows), local.size(1), dtype=torch.float64, device=device)
        padded[: local.size(0)] = local
        pieces = [torch.empty_like(padded) for _ in range(self.world_size)]
        dist.all_gather(pieces, padded)
        return torch.cat([piece[:n] for piece, n in zip(pieces, rows, strict=True)]).cpu()

    def max(self, value: float, device: torch.device) -> float:
        """The largest ``value`` over the processes (e.g. the epoch's wall-clock time, so that
        ``max_time`` stops every process at the same epoch)."""
        tensor = torch.tensor([value], dtype=torch.float64, device=device)
        dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
        return float(tensor.item())


def current_data_parallel() -> DataParallel | None:
    """This process's [`DataParallel`][molgnn.training.DataParallel], or ``None`` outside a process
    group of at least two processes (a single-process run)."""
    if not (dist.is_available() and dist.is_initialized()):
        return None
    world_size = dist.get_world_size()
    if world_size < 2:
        return None
    return DataParallel(rank=dist.get_rank(), world_size=world_size)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free now."""
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def _loopback_interface() -> str | None:
    names = {name for _, name in socket.if_nameindex()}
    return next((name for name in ("lo", "lo0") if name in names), None)


def _run_rank(
    rank: int,
    fn: Callable[..., Any],
    args: tuple[Any, ...],
    world_size: int,
    port: int,
    device_type: str,
    threads: int,
    errors: Any,
) -> None:
    """One process of ``spawn_local``: join the group, run ``fn(*args)``, leave."""
    interface = _loopback_interface()
    if interface is not None:
        # Gloo and NCCL pick the interface they listen on from these; the rendezvous address
        # alone does not keep them on loopback.
        os.environ.setdefault("GLOO_SOCKET_IFNAME", interface)
        os.environ.setdefault("NCCL_SOCKET_IFNAME", interface)
    if device_type == "cuda":
        torch.cuda.set_device(rank)
        backend = "nccl"
    else:
        torch.set_num_threads(threads)
        backend = "gloo"
    dist.init_process_group(
        backend, init_method=f"tcp://{LOOPBACK}:{port}", rank=rank, world_size=world_size
    )
    try:
        fn(*args)
    except BaseException as err:
        try:
            errors.put((rank, err))
        except Exception:  # an exception that cannot be pickled
            errors.put((rank, RuntimeError(f"{type(err).__name__}: {err}")))
        raise
    finally:
        dist.destroy_process_group()


def spawn_local(
    fn: Callable[..., Any], args: tuple[Any, ...], world_size: int, device_type: str
) -> None:
    """Run ``fn(*args)`` in ``world_size`` new processes that form one process group.

    The processes rendezvous on 127.0.0.1 at a free port and talk over the loopback interface:
    Gloo on the CPU (each process gets an equal share of this process's torch threads) or NCCL
    with one GPU per process (rank ``r`` on ``cuda:r``). ``fn`` and ``args`` must be picklable
    (``fn`` a module-level function), as the processes are spawned.

    Raises:
        The exception of the process that failed first (the others are stopped), with a note
        naming its rank.
    """
    import torch.multiprocessing as mp

    context = mp.get_context("spawn")
    errors = context.SimpleQueue()
    threads = max(1, torch.get_num_threads() // world_size)
    try:
        mp.start_processes(
            _run_rank,
            args=(fn, args, world_size, free_port(), device_type, threads, errors),
            nprocs=world_size,
            join=True,
            start_method="spawn",
        )
    except (mp.ProcessRaisedException, mp.ProcessExitedException) as failure:
        raised: dict[int, BaseException] = {}
        while not errors.empty():
            rank, err = errors.get()
            raised.setdefault(rank, err)
        first = raised.get(failure.error_index) or next(iter(raised.values()), None)
        if first is None:
            raise
        rank = next(r for r, e in raised.items() if e is first)
        first.add_note(f"(raised in data-parallel process {rank} of {world_size})")
        raise first from failure
