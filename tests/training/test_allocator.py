import subprocess
import sys

import pytest


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc only")
def test_tune_malloc_is_accepted_by_glibc_and_large_allocations_still_work():
    # In a fresh process, so this test process keeps its own allocator settings.
    code = (
        "import torch; from molgnn.training import tune_malloc\n"
        "assert tune_malloc() and tune_malloc()\n"  # accepted, then idempotent
        "for _ in range(3):\n"
        "    a = torch.ones(64, 1024, 1024)\n"  # 256 MB, larger than any mmap threshold
        "    assert float(a.sum()) == 64 * 1024 * 1024\n"
        "    del a\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


_TRAINER_SETS_THE_ALLOCATOR = """
import ctypes, sys
import torch
from molgnn.models import build_model
from molgnn.training import TrainConfig, Trainer

class MallInfo2(ctypes.Structure):  # glibc's struct mallinfo2 (glibc >= 2.33)
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]

libc = ctypes.CDLL("libc.so.6")
if not hasattr(libc, "mallinfo2"):
    print("no mallinfo2")
    sys.exit(0)
libc.mallinfo2.restype = MallInfo2

def mmapped_blocks_of_a_large_tensor():
    before = libc.mallinfo2().hblks
    block = torch.ones(64 << 20, dtype=torch.uint8)  # 64 MB: above glibc's largest mmap threshold
    during = libc.mallinfo2().hblks
    del block
    return during - before

def train(tune):
    config = TrainConfig(device="cpu", subset=20, epochs=1, tune_malloc=tune,
                         data_root=sys.argv[1], out_dir=sys.argv[2])
    tiny = build_model("et-small", hidden_channels=16, num_layers=1, num_heads=2, num_rbf=8)
    Trainer(config, model=tiny, progress=False)

print(mmapped_blocks_of_a_large_tensor(), end=" ")  # glibc's default: mmapped
train(tune=False)
print(mmapped_blocks_of_a_large_tensor(), end=" ")  # still mmapped
train(tune=True)
print(mmapped_blocks_of_a_large_tensor())  # from the heap, where freed memory is reused
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc only")
def test_trainer_on_the_cpu_tunes_the_allocator_unless_switched_off(tiny_qm9, tmp_path):
    """A Trainer with ``tune_malloc=True`` on the CPU changes glibc's settings: a large block
    no longer comes from mmap. With ``tune_malloc=False`` nothing changes. In a fresh process,
    so that this one keeps its allocator settings."""
    out = subprocess.run(
        [sys.executable, "-c", _TRAINER_SETS_THE_ALLOCATOR, str(tiny_qm9), str(tmp_path / "run")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    if out.stdout.strip() == "no mallinfo2":
        pytest.skip("glibc older than 2.33: no mallinfo2 to observe the allocator with")
    assert out.stdout.split() == ["1", "1", "0"], out.stdout
