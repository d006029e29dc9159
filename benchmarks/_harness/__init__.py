"""The harness the scripts in ``benchmarks/`` share, so that every row of every benchmark is
measured, recorded and printed the same way.

* :mod:`.molecules`: QM9 (:func:`open_qm9`, in :func:`molgnn.data.qm9_root`), seeded random
  batches (:func:`draw_batches`, :func:`to_device`) and a file of batches to carry to another
  machine;
* :mod:`.timing`: the training and inference timing loop (:func:`measure_throughput`) with the
  one optimiser of every benchmark (:func:`make_optimizer`: AdamW, fused where torch can);
* :mod:`.machine`: what the machine is and how loaded it was (:func:`machine_meta`), memory;
* :mod:`.results`: the result file (:func:`write_result`, :func:`read_result`);
* :mod:`.table`: the printed table and progress lines;
* :mod:`.models`: torchmd-net's ET and TensorNet, for the comparisons;
* :mod:`.flops`: the GEMM FLOPs of a step and the machine's GEMM rate, for the arithmetic bound.

The scripts run as ``python benchmarks/<name>.py``, which puts ``benchmarks/`` on ``sys.path``,
and import this package as ``_harness``.
"""

from .flops import GEMM_OPS, gemm_flops, gemm_rate
from .machine import (
    cpu_model,
    load,
    machine_meta,
    memory_mb,
    memory_note,
    package_version,
    peak_memory_mb,
    peak_rss_mb,
    reset_peak_memory,
    rss_mb,
)
from .models import (
    CUTOFF,
    MAX_NUM_NEIGHBORS,
    TORCHMDNET_PLAIN_OPS,
    count_parameters,
    torchmdnet_et,
    torchmdnet_et_args,
    torchmdnet_tensornet,
    torchmdnet_tensornet_args,
    use_torchmdnet_plain_tensornet,
)
from .molecules import (
    MOLECULES_FORMAT,
    Batch,
    StoredBatch,
    draw_batches,
    draw_indices,
    load_molecules,
    open_qm9,
    save_molecules,
    to_device,
)
from .results import RESULT_FORMAT, RESULTS_DIR, read_result, write_json, write_result
from .table import Column, format_cell, format_table, log, print_table
from .timing import (
    LR,
    Throughput,
    Timing,
    fused_adamw_supported,
    make_optimizer,
    measure_throughput,
    model_output,
    seconds_per_call,
    sync,
    timed,
)

__all__ = [
    "CUTOFF",
    "GEMM_OPS",
    "LR",
    "MAX_NUM_NEIGHBORS",
    "MOLECULES_FORMAT",
    "RESULTS_DIR",
    "RESULT_FORMAT",
    "TORCHMDNET_PLAIN_OPS",
    "Batch",
    "Column",
    "StoredBatch",
    "Throughput",
    "Timing",
    "count_parameters",
    "cpu_model",
    "draw_batches",
    "draw_indices",
    "format_cell",
    "format_table",
    "fused_adamw_supported",
    "gemm_flops",
    "gemm_rate",
    "load",
    "load_molecules",
    "log",
    "machine_meta",
    "make_optimizer",
    "measure_throughput",
    "memory_mb",
    "memory_note",
    "model_output",
    "open_qm9",
    "package_version",
    "peak_memory_mb",
    "peak_rss_mb",
    "print_table",
    "read_result",
    "reset_peak_memory",
    "rss_mb",
    "save_molecules",
    "seconds_per_call",
    "sync",
    "timed",
    "to_device",
    "torchmdnet_et",
    "torchmdnet_et_args",
    "torchmdnet_tensornet",
    "torchmdnet_tensornet_args",
    "use_torchmdnet_plain_tensornet",
    "write_json",
    "write_result",
]
