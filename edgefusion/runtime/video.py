"""Frame-by-frame fusion of IR/visible videos and image sequences (``edgefusion fuse`` on streams).

Sources: a video file (read with OpenCV, ``opencv-python-headless``; a
one-line error when it is not installed) or a folder of frames (paired by
file stem and taken in name order, :func:`edgefusion.io.pairs.pair_folders`).
Output: a video file when ``output`` has a video suffix (frame rate of the
IR video, else ``fps``), otherwise a folder of ``frame_000000.png`` files.
Both streams must have the same number of frames. The output appears only
when every frame fused (atomic file / staged folder) and, for a video, when
the written file holds every frame (OpenCV's writer reports no failed write,
e.g. on a full disk).

Hook for the ``fuse`` command: ``if video.handles(ir, vis, output): return
video.fuse_streams(fuser, ir, vis, output, stretch)``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Iterator

import numpy as np

from edgefusion import preprocess
from edgefusion.errors import UserError
from edgefusion.runtime.frame import PlaneFuser, fuse_arrays
from edgefusion.progress import progress_bar

VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm")
_FOURCC = {".avi": "MJPG", ".mkv": "MJPG", ".webm": "VP80"}  # others: mp4v
DEFAULT_FPS = 25.0


def is_video(path: str | os.PathLike) -> bool:
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


def handles(ir: str | os.PathLike, vis: str | os.PathLike, output: str | os.PathLike) -> bool:
    """Whether a fuse request is a stream job: a video input, or folder inputs with a video output."""
    return is_video(ir) or is_video(vis) or (Path(ir).is_dir() and is_video(output))


def _cv2():
    # FFmpeg inside OpenCV logs its own lines to stderr (e.g. "moov atom not found") before the one-line
    # error below; quiet it (AV_LOG_QUIET), unless the user set a level. Read when cv2 is first imported.
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
    os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
    try:
        import cv2
    except ImportError:
        raise UserError("video files need OpenCV; install it with: pip install opencv-python-headless") from None
    return cv2


class _VideoFrames:
    """Frames of one video file as uint8 RGB arrays, with its frame count and rate."""

    def __init__(self, path: Path, role: str) -> None:
        if not path.exists():
            raise UserError(f"{role} input not found: {path}")
        if not (path.is_file() and is_video(path)):
            raise UserError(f"{role} input {path} is not a video ({', '.join(VIDEO_SUFFIXES)}); pair a video with a video, or a folder of frames with a folder")
        cv2 = _cv2()
        self.capture = cv2.VideoCapture(str(path))
        if not self.capture.isOpened():
            raise UserError(f"cannot open {role} video {path} (corrupt, truncated or an unsupported codec)")
        fps = self.capture.get(cv2.CAP_PROP_FPS)
        self.fps = fps if fps and fps > 0 else None
        self.count = int(self.capture.get(cv2.CAP_PROP_FRAME_COUNT)) or None

    def __iter__(self) -> Iterator[np.ndarray]:
        cv2 = _cv2()
        while True:
            ok, frame = self.capture.read()
            if not ok:
                return
            yield cv2.cvtColor(frame, cv2.COLOR_BGR2RGB) if frame.ndim == 3 else frame


def _frame_pairs(ir: Path, vis: Path) -> tuple[Iterator[tuple[np.ndarray, np.ndarray]], int | None, float | None]:
    """Iterator over (ir, vis) frames, the frame count if known, and the IR frame rate if known."""
    from edgefusion.io.pairs import pair_folders, read_pair

    if ir.is_dir() and vis.is_dir():
        pairs = pair_folders(ir, vis)
        return (read_pair(p) for p in pairs), len(pairs), None
    a, b = _VideoFrames(ir, "IR"), _VideoFrames(vis, "visible")

    def frames():
        ita, itb = iter(a), iter(b)
        n = 0
        while True:
            fa, fb = next(ita, None), next(itb, None)
            if fa is None and fb is None:
                return
            if fa is None or fb is None:
                short = "IR" if fa is None else "visible"
                raise UserError(f"the {short} video ended after {n} frames, the other one goes on; both need the same frame count")
            n += 1
            yield fa, fb

    return frames(), a.count, a.fps


def fuse_streams(fuser: PlaneFuser, ir: str | os.PathLike, vis: str | os.PathLike, output: str | os.PathLike,
                 stretch: preprocess.ThermalStretch | None = None, fps: float | None = None) -> int:
    """Fuse two videos / frame folders into a video or a frame folder; returns the number of frames.

    ``stretch`` defaults to the fuser's own (a bundle's manifest) or the standard one. A fuser
    with a ``fuse_stream`` method (:class:`edgefusion.runtime.Fuser`) fuses the frames through it.
    """
    from edgefusion.io.outputs import check_output_path

    ir, vis, output = Path(ir), Path(vis), Path(output)
    check_output_path(output, "fused video" if is_video(output) else "fused frames", "file" if is_video(output) else "folder")
    stretch = stretch or getattr(fuser, "stretch", preprocess.DEFAULT_STRETCH)
    frames, count, source_fps = _frame_pairs(ir, vis)
    progress = progress_bar(total=count, desc=f"fuse ({getattr(fuser, 'name', 'fuse')})", unit="frame")
    stream = getattr(fuser, "fuse_stream", None)  # a bundle's Fuser pipelines its frames
    fused = stream(frames, stretch) if stream else (fuse_arrays(fuser, a, b, stretch) for a, b in frames)
    try:
        if is_video(output):
            n = _write_video(output, fused, fps or source_fps or DEFAULT_FPS, progress)
        else:
            n = _write_frames(output, fused, progress)
    finally:
        progress.close()
    print(f"fused {n} frame(s) into {output}", file=sys.stderr)
    return n


def _write_video(output: Path, fused: Iterator[np.ndarray], fps: float, progress) -> int:
    from edgefusion.io.atomic import atomic_path

    cv2 = _cv2()
    n = 0
    with atomic_path(output) as tmp:
        writer, first = None, None
        try:
            for frame in fused:
                bgr = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR if frame.ndim == 2 else cv2.COLOR_RGB2BGR)
                if first is not None and bgr.shape != first:  # OpenCV's writer drops such frames silently
                    raise UserError(f"frame {n + 1} is {bgr.shape[1]}x{bgr.shape[0]}, the video's first is {first[1]}x{first[0]}: a video needs frames of one size (write a folder of frames instead)")
                if first is None:
                    first = bgr.shape
                    fourcc = cv2.VideoWriter_fourcc(*_FOURCC.get(output.suffix.lower(), "mp4v"))
                    writer = cv2.VideoWriter(str(tmp), fourcc, fps, (bgr.shape[1], bgr.shape[0]))
                    if not writer.isOpened():
                        raise UserError(f"OpenCV cannot write {output.suffix} video here; try .avi or a folder of frames")
                writer.write(bgr)
                n += 1
                progress.update(1)
        finally:
            if writer is not None:
                writer.release()
        if n == 0:
            raise UserError("no frames to fuse")
        _check_written(cv2, tmp, output, n)
    return n


def _check_written(cv2, tmp: Path, output: Path, n: int) -> None:
    """Refuse a finished video file at ``tmp`` that does not hold ``n`` frames. OpenCV's writer reports no failed
    write: a full disk leaves a truncated file, whose header may still claim every frame, so the frames are read
    back (demuxed and decoded, not converted: a fraction of the encoding time)."""
    capture, held = cv2.VideoCapture(str(tmp)), 0
    try:
        with progress_bar(total=n, desc="check video", unit="frame") as bar:
            while held <= n and capture.isOpened() and capture.grab():
                held += 1
                bar.update(1)
    finally:
        capture.release()
    if held != n:
        raise UserError(f"cannot write {output}: the written video holds {held} of its {n} frames (disk full, or a codec that could not encode them?)")


def _write_frames(output: Path, fused: Iterator[np.ndarray], progress) -> int:
    from edgefusion.io.atomic import staged_folder
    from edgefusion.io.images import write_image

    n = 0
    with staged_folder(output) as stage:
        for frame in fused:
            write_image(stage / f"frame_{n:06d}.png", frame)
            n += 1
            progress.update(1)
        if n == 0:
            raise UserError("no frames to fuse")
    return n
