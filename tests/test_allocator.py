"""``edgefusion.allocator``: the CLI keeps freed large blocks, so the eager student stops page-faulting per frame."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
glibc = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt thresholds are glibc's")

#: Minor page faults per 544x960 frame of the shipped student after four warm-up frames, in a child process.
FAULTS = """
import resource, sys
import numpy as np, torch
torch.set_num_threads(1)
if sys.argv[1] == "keep":
    from edgefusion.allocator import keep_freed_memory
    assert keep_freed_memory()
from edgefusion.models.checkpoint import TorchFuser
from edgefusion.resources import DEFAULT_MODEL
fuser = TorchFuser.load(DEFAULT_MODEL)
ir, vis = np.random.default_rng(0).random((2, 544, 960), dtype=np.float32)
for _ in range(4):
    fuser.fuse_planes(ir, vis)
start = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(8):
    fuser.fuse_planes(ir, vis)
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - start) / 8)
"""


def _faults(mode: str) -> float:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", FAULTS, mode], capture_output=True, text=True, env=env, timeout=300, check=True)
    return float(out.stdout.split()[-1])


@glibc
def test_glibc_takes_both_thresholds():
    from edgefusion.allocator import keep_freed_memory

    assert keep_freed_memory() is True


@glibc
def test_the_student_stops_page_faulting_per_frame():
    default, kept = _faults("default"), _faults("keep")
    if default == 0:
        pytest.skip("this C library kept the blocks anyway: nothing to show")
    assert kept <= default / 4, (default, kept)  # 682 -> 0 and 1316 -> 136 seen: one-off allocations vary


def test_the_cli_sets_it_before_any_command(monkeypatch, capsys):
    import edgefusion.cli as cli

    calls = []
    monkeypatch.setattr(cli, "keep_freed_memory", lambda: calls.append(True) or True)
    assert cli.main(["targets"]) == 0
    assert calls == [True]
