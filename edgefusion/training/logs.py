"""Per-step training logs: ``RUN_DIR/log.csv`` always, TensorBoard when importable.

The CSV has one row per logged step: ``step``, ``lr``, ``elapsed_s`` and one
column per loss term (the names the stage's loss returns, fixed by the first
logged step). On resume, rows after the resumed step are dropped, so the log
of a killed-and-resumed run equals that of an uninterrupted one.
"""

from __future__ import annotations

import csv
import io
import logging
from pathlib import Path

from edgefusion.io.atomic import write_text

log = logging.getLogger(__name__)


class RunLog:
    """Append-only CSV (+ optional TensorBoard) writer for one run directory."""

    def __init__(self, run_dir: Path, resume_step: int = 0):
        self.path = run_dir / "log.csv"
        self.columns: list[str] | None = None
        if resume_step > 0 and self.path.is_file():
            self._truncate_after(resume_step)
        elif self.path.exists():
            self.path.unlink()
        self.tensorboard = _tensorboard_writer(run_dir / "tensorboard")

    def _truncate_after(self, step: int) -> None:
        with self.path.open(newline="") as f:
            rows = list(csv.reader(f))
        if not rows:
            return
        self.columns = rows[0]
        # a kill can cut the last row short: keep only complete rows up to the checkpoint's step
        kept = [rows[0]] + [r for r in rows[1:] if len(r) == len(rows[0]) and r[0].isdigit() and int(r[0]) <= step]
        buf = io.StringIO()
        csv.writer(buf).writerows(kept)
        write_text(self.path, buf.getvalue())

    def write(self, step: int, lr: float, elapsed_s: float, terms: dict[str, float]) -> None:
        """Record one step's scalars."""
        if self.columns is None:
            self.columns = ["step", "lr", "elapsed_s", *sorted(terms)]
            with self.path.open("w", newline="") as f:
                csv.writer(f).writerow(self.columns)
        row = {"step": step, "lr": f"{lr:.6g}", "elapsed_s": f"{elapsed_s:.2f}", **{k: f"{v:.6g}" for k, v in terms.items()}}
        with self.path.open("a", newline="") as f:
            csv.writer(f).writerow([row.get(c, "") for c in self.columns])
        if self.tensorboard is not None:
            self.tensorboard.add_scalar("lr", lr, step)
            for name, value in terms.items():
                self.tensorboard.add_scalar(f"loss/{name}", value, step)

    def close(self) -> None:
        if self.tensorboard is not None:
            self.tensorboard.close()


def _tensorboard_writer(folder: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        log.info("tensorboard is not installed; logging to CSV only")
        return None
    return SummaryWriter(str(folder))
