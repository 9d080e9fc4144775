"""The base install (numpy + Pillow) runs the metrics, the baselines and ``edgefusion eval``.

A subprocess of this environment hides scipy, scikit-image, tqdm and torch
behind a ``sys.meta_path`` finder that refuses them, then scores a tiny
synthetic dataset through the CLI. Its report must equal the one computed
here with everything installed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from edgefusion.evaluate import evaluate
from edgefusion.fusers import open_fuser
from edgefusion.runtime.frame import fuse_arrays
from edgefusion.io.images import write_image
from edgefusion.io.pairs import find_pairs
from edgefusion.metrics import METRIC_NAMES

REPO = Path(__file__).resolve().parents[1]
BLOCKED = ("scipy", "skimage", "tqdm", "torch")

SCRIPT = """
import importlib.abc, json, sys

BLOCKED = set(sys.argv[3].split(","))


class Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r} (blocked)", name=name)
        return None


sys.meta_path.insert(0, Refuse())
refused = []
for name in sorted(BLOCKED):
    try:
        __import__(name)
    except ModuleNotFoundError:
        refused.append(name)

import edgefusion.baselines
import edgefusion.metrics
from edgefusion.cli import main

code = main(["eval", "--data", sys.argv[1], "--method", "laplacian", "--json", sys.argv[2]])
loaded = sorted(m for m in sys.modules if m.partition(".")[0] in BLOCKED)
print(json.dumps({"code": code, "refused": refused, "loaded": loaded}))
"""


def _dataset(root: Path) -> Path:
    """Two 40x33 pairs: gray IR with a warm blob, RGB visible with texture."""
    rng = np.random.default_rng(5)
    yy, xx = np.mgrid[:33, :40]
    for name, cx in (("pair_a", 12), ("pair_b", 27)):
        blob = 200.0 * np.exp(-((xx - cx) ** 2 + (yy - 16) ** 2) / 40.0)
        ir = np.clip(blob + rng.normal(40, 8, blob.shape), 0, 255).astype(np.uint8)
        vis = np.clip(rng.normal(120, 40, (33, 40, 3)) + 2.0 * xx[..., None], 0, 255).astype(np.uint8)
        write_image(root / "ir" / f"{name}.png", ir)
        write_image(root / "vi" / f"{name}.png", vis)
    return root


def test_eval_runs_without_scipy_skimage_tqdm_torch(tmp_path):
    data = _dataset(tmp_path / "data")
    out = tmp_path / "report.json"
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(data), str(out), ",".join(BLOCKED)],
        capture_output=True, text=True, timeout=300, cwd=tmp_path, check=False,
        env={**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    status = json.loads(result.stdout.strip().splitlines()[-1])
    assert status["refused"] == sorted(BLOCKED)  # the finder really hides them
    assert status["code"] == 0, result.stderr[-3000:]
    assert status["loaded"] == []
    assert "Traceback" not in result.stderr

    report = json.loads(out.read_text())
    assert sorted(report["images"]) == ["pair_a", "pair_b"]
    assert list(report["mean"]) == list(METRIC_NAMES)

    # the same evaluation in this process, where scipy & co. may be installed, gives the same numbers
    fuser = open_fuser("laplacian")
    here = evaluate(find_pairs(data), lambda pair, ir, vis: fuse_arrays(fuser, ir, vis), progress=False)
    assert report["images"] == here.images
    for values in report["images"].values():
        assert all(np.isfinite(v) for v in values.values())
        assert 0.0 < values["SSIM"] <= 2.0 and 0.0 <= values["Qabf"] <= 1.0
