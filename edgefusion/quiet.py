"""Silence third-party messages a user cannot act on, only while edgefusion's own calls run.

:func:`quiet` drops, for the duration of a ``with`` block and nothing else:

* Python warnings matching :data:`WARNINGS` (LiteRT's calibration interpreter
  keeping all tensors on purpose, JAX's ``os.fork()`` warning when a library
  forks after ai-edge-quantizer loaded JAX, torch's pytree deprecation notes);
* log records of :data:`LOGGERS` below ERROR (torch's "No CUDA runtime is
  found, using CUDA_HOME" when NNCF imports ``torch.utils.cpp_extension``) and
  root-logger records matching :data:`LOG_MESSAGES` (ONNX Runtime's advice to
  pre-process the model: shape inference changes nothing for the student);
* with ``native=True``, lines that C++ libraries write straight to file
  descriptor 2 and that match :data:`NATIVE_LINES` (absl, oneDNN, TFLite's
  converter and XNNPACK notes): descriptor 2 goes to a temporary file during the
  block and every other line is written back to stderr afterwards. Use it only
  around calls without progress bars (their output would arrive late).

Standard library only: the device runtime uses it too.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import tempfile
import warnings
from contextlib import ExitStack, contextmanager
from typing import Iterator

WARNINGS = (
    r".*experimental_preserve_all_tensors",
    r"os\.fork\(\) was called",
    r".*is an Enum subclass and is now natively supported",
)
LOGGERS = ("torch.utils.cpp_extension", "torch.utils._pytree")
LOG_MESSAGES = re.compile(r"consider (to run )?pre-processing before quantization")
NATIVE_LINES = re.compile(
    r"All log messages before absl::InitializeLog|oneDNN custom operations are on|Estimated count of arithmetic ops"
    r"|Created TensorFlow Lite XNNPACK delegate|is an Enum subclass and is now natively supported"
)


class _DropMessages(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not LOG_MESSAGES.search(record.getMessage())


@contextmanager
def quiet(native: bool = False) -> Iterator[None]:
    """Drop the known third-party noise (see the module docstring) while the block runs."""
    with ExitStack() as stack:
        stack.enter_context(warnings.catch_warnings())
        for pattern in WARNINGS:
            warnings.filterwarnings("ignore", message=pattern)
        root, dropper = logging.getLogger(), _DropMessages()
        root.addFilter(dropper)
        stack.callback(root.removeFilter, dropper)
        for name in LOGGERS:
            logger = logging.getLogger(name)
            stack.callback(logger.setLevel, logger.level)
            logger.setLevel(logging.ERROR)
        if native:
            stack.enter_context(_filtered_fd2())
        yield


@contextmanager
def _filtered_fd2() -> Iterator[None]:
    """Route file descriptor 2 to a temporary file; write its lines but :data:`NATIVE_LINES` back afterwards."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no descriptor 2 (embedded interpreters): nothing to filter
        yield
        return
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            try:
                sys.stderr.flush()
            except (OSError, ValueError):
                pass
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            kept = [line for line in capture.read().decode("utf-8", "replace").splitlines(keepends=True) if not NATIVE_LINES.search(line)]
            if kept:
                sys.stderr.write("".join(kept))
                sys.stderr.flush()
