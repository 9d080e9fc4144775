"""``edgefusion.embed.openvino_c_root``: where the C runtime finds the OpenVINO C API, on fake package folders."""

from __future__ import annotations

import importlib.util
from types import SimpleNamespace

import pytest

from edgefusion.embed import openvino_c_root
from edgefusion.errors import UserError


@pytest.fixture
def package(tmp_path, monkeypatch):
    """A fake ``openvino`` package folder that ``importlib.util.find_spec("openvino")`` finds (other names: the real lookup)."""
    root = tmp_path / "site-packages" / "openvino"
    root.mkdir(parents=True)
    (root / "__init__.py").write_text("")
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: SimpleNamespace(origin=str(root / "__init__.py")) if name == "openvino" else real(name, *a))
    return root


def _add_c_api(root, header: bool = True, library: bool = True) -> None:
    if header:
        (root / "include" / "openvino" / "c").mkdir(parents=True)
        (root / "include" / "openvino" / "c" / "openvino.h").write_text("/* C API */\n")
    if library:
        (root / "libs").mkdir()
        (root / "libs" / "libopenvino_c.so.2541").write_bytes(b"\x7fELF")


def test_the_package_folder_with_header_and_library(package):
    _add_c_api(package)
    assert openvino_c_root() == package.resolve()


@pytest.mark.parametrize("header,library", [(False, True), (True, False), (False, False)])
def test_a_package_without_the_c_api_is_one_line(package, header, library):
    _add_c_api(package, header, library)
    with pytest.raises(UserError, match="lacks its C API") as info:
        openvino_c_root()
    assert "\n" not in str(info.value) and str(package.resolve()) in str(info.value)


def test_no_openvino_package_is_one_line(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "openvino" else real(name, *a))
    with pytest.raises(UserError, match="openvino package is not installed") as info:
        openvino_c_root()
    assert "\n" not in str(info.value)


@pytest.fixture
def max_bundle(tmp_path):
    """An OpenVINO bundle of max(ir, vis) (a float ONNX model converted to IR)."""
    ov = pytest.importorskip("openvino")
    pytest.importorskip("onnx")
    from runtime_models import make_bundle, max_float_onnx

    xml = tmp_path / "max.xml"
    ov.save_model(ov.convert_model(str(max_float_onnx(tmp_path / "max.onnx"))), str(xml))
    return make_bundle(tmp_path / "b", xml, backend="openvino", weights=xml.with_suffix(".bin"))


def test_native_verifies_the_bundle_once(tmp_path, monkeypatch, max_bundle):
    """``edgefusion native`` hashes each bundle file once: the sample check runs on the bundle it loaded."""
    from edgefusion.embed.firmware import write_firmware
    from edgefusion.resources import SAMPLES
    from edgefusion.runtime import bundle as bundle_module

    path = max_bundle
    hashed, real = [], bundle_module.sha256_file
    monkeypatch.setattr(bundle_module, "sha256_file", lambda file: hashed.append(file.name) or real(file))
    _, checked, why_not = write_firmware(path, tmp_path / "fw")
    assert checked == len(list((SAMPLES / "ir").glob("*.png"))) and why_not == ""
    assert sorted(hashed) == ["max.bin", "max.xml"]


def test_native_into_a_full_disk_names_the_firmware_folder(tmp_path, monkeypatch, max_bundle):
    """A copy that finds its destination full (shutil names the source first) is one line about the output folder."""
    import errno
    import shutil

    from edgefusion.embed import firmware

    def full(src, dst, **kw):
        raise OSError(errno.ENOSPC, "No space left on device", str(src), None, str(dst))

    monkeypatch.setattr(shutil, "copy2", full)
    monkeypatch.setattr(shutil, "copyfile", full)
    out = tmp_path / "out" / "fw"
    with pytest.raises(UserError) as info:
        firmware.write_firmware(max_bundle, out)
    assert str(info.value) == f"cannot write {out}: No space left on device"
    assert not out.exists() and list((tmp_path / "out").iterdir()) == []
