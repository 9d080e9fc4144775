"""``edgefusion.quiet``: known third-party noise is dropped inside the block only; everything else passes."""

from __future__ import annotations

import logging
import os
import warnings

import pytest

from edgefusion.quiet import quiet


def test_noise_is_dropped_inside_the_block_and_other_output_kept(capfd, caplog):
    cpp = logging.getLogger("torch.utils.cpp_extension")
    before = cpp.level
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with quiet(native=True):
            _noise()
    assert [str(w.message) for w in caught] == ["kept warning"]
    err = capfd.readouterr().err
    assert "kept native line" in err and "XNNPACK" not in err
    assert [r.getMessage() for r in caplog.records] == ["kept log record"]
    assert cpp.level == before and not logging.getLogger().filters


def _noise() -> None:
    os.write(2, b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\nkept native line\n")
    logging.getLogger("torch.utils.cpp_extension").warning("No CUDA runtime is found, using CUDA_HOME='/usr/local'")
    logging.getLogger().warning("Please consider to run pre-processing before quantization. Refer to example")
    logging.getLogger().error("kept log record")
    warnings.warn("os.fork() was called. os.fork() is incompatible with multithreaded code", RuntimeWarning)
    warnings.warn("Warning: Enabling `experimental_preserve_all_tensors` with the BUILTIN op resolver", UserWarning)
    warnings.warn("kept warning", UserWarning)


def test_nothing_is_silenced_outside_the_block(capfd):
    with quiet(native=True):
        pass
    os.write(2, b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n")
    with pytest.warns(RuntimeWarning, match="os.fork"):
        warnings.warn("os.fork() was called.", RuntimeWarning)
    assert "XNNPACK" in capfd.readouterr().err


def test_native_lines_written_before_an_error_are_restored(capfd):
    with pytest.raises(ValueError), quiet(native=True):
        os.write(2, b"the converter's own error text\n")
        raise ValueError("boom")
    assert "the converter's own error text" in capfd.readouterr().err
    os.write(2, b"after\n")
    assert capfd.readouterr().err == "after\n"  # descriptor 2 is stderr again
