import subprocess
import sys

import pytest

from molgnn.training import TrainConfig, tune_malloc


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


def test_config_switch():
    assert TrainConfig().tune_malloc is True
    assert TrainConfig(tune_malloc=False).tune_malloc is False
    assert callable(tune_malloc)
