"""``edgefusion fuse`` and ``edgefusion eval``: results, reports and every kind of bad input."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from edgefusion import baselines, metrics
from edgefusion.cli import main
from edgefusion.commands.fuse import DEFAULT_FUSER
from edgefusion.resources import DEFAULT_MODEL
from edgefusion.io.images import read_image
from edgefusion.resources import SAMPLES

NAMES = ("tno_07", "tno_19", "tno_20")
CROP = (slice(100, 164), slice(60, 116))  # 64 x 56 (H x W) crop: fast metrics, non-square


def _save(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path


@pytest.fixture
def dataset(tmp_path):
    """Three small real TNO pairs (crops of the shipped samples) in ``data/ir`` + ``data/vi``."""
    root = tmp_path / "data"
    for name in NAMES:
        _save(root / "ir" / f"{name}.png", read_image(SAMPLES / "ir" / f"{name}.png")[CROP])
        _save(root / "vi" / f"{name}.png", read_image(SAMPLES / "vi" / f"{name}.png")[CROP])
    return root


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_user_error(capsys, argv, *fragments):
    code, out, err = run(capsys, *argv)
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("edgefusion: "), err
    assert "Traceback" not in err
    for fragment in fragments:
        assert str(fragment) in lines[0]
    return lines[0]


def files_under(path):
    return sorted(p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file())


# --- fuse ---------------------------------------------------------------------------------------


def test_fuse_single_pair_with_method_max(capsys, dataset, tmp_path):
    out = tmp_path / "out" / "fused.png"
    code, _, _ = run(capsys, "fuse", "--ir", dataset / "ir" / "tno_07.png", "--vis", dataset / "vi" / "tno_07.png", "-o", out, "--method", "max")
    assert code == 0
    expected = np.maximum(read_image(dataset / "ir" / "tno_07.png"), read_image(dataset / "vi" / "tno_07.png"))
    np.testing.assert_array_equal(read_image(out), expected)


def test_fuse_default_is_the_shipped_student(capsys, dataset, tmp_path):
    pytest.importorskip("torch", reason="the shipped student checkpoint runs on PyTorch")
    assert DEFAULT_FUSER == str(DEFAULT_MODEL) and DEFAULT_MODEL.is_file()
    args = ("fuse", "--ir", dataset / "ir" / "tno_07.png", "--vis", dataset / "vi" / "tno_07.png")
    assert run(capsys, *args, "-o", tmp_path / "default.png")[0] == 0
    assert run(capsys, *args, "-o", tmp_path / "explicit.png", "--model", DEFAULT_MODEL)[0] == 0
    np.testing.assert_array_equal(read_image(tmp_path / "default.png"), read_image(tmp_path / "explicit.png"))


def test_fuse_folders_laplacian(capsys, dataset, tmp_path):
    out = tmp_path / "fused"
    code, _, _ = run(capsys, "fuse", "--ir", dataset / "ir", "--vis", dataset / "vi", "-o", out, "--method", "laplacian")
    assert code == 0
    assert files_under(out) == [f"{n}.png" for n in NAMES]
    ir = read_image(dataset / "ir" / "tno_19.png") / 255.0
    vis = read_image(dataset / "vi" / "tno_19.png") / 255.0
    expected = np.rint(baselines.fuse_laplacian(ir.astype(np.float32), vis.astype(np.float32)) * 255)
    assert np.abs(read_image(out / "tno_19.png").astype(int) - expected).max() <= 1


@pytest.mark.parametrize("suffix", ["tif", "png"])
def test_fuse_accepts_and_normalizes_16_bit_ir(capsys, tmp_path, suffix):
    ir16 = (np.arange(48 * 40).reshape(48, 40) * 13 + 2000).astype(np.uint16)
    vis = np.zeros((48, 40), np.uint8)
    ir_path = _save(tmp_path / f"ir.{suffix}", ir16)
    vis_path = _save(tmp_path / "vis.png", vis)
    out = tmp_path / "fused.png"
    code, _, err = run(capsys, "fuse", "--ir", ir_path, "--vis", vis_path, "-o", out, "--method", "max",
                       "--stretch-low", 1, "--stretch-high", 99)
    assert code == 0, err
    lo, hi = np.percentile(ir16, [1, 99])
    expected = np.rint(np.clip((ir16 - lo) / (hi - lo), 0, 1) * 255)
    fused = read_image(out)
    assert fused.dtype == np.uint8 and np.abs(fused.astype(int) - expected).max() <= 1
    assert fused.min() == 0 and fused.max() == 255


def _netpbm(path):
    """A binary PGM (P5) or PPM (P6) parsed by hand: magic, width, height, maxval, then the raw bytes."""
    data = path.read_bytes()
    fields, pos = [], 0
    while len(fields) < 4:
        while data[pos:pos + 1].isspace():
            pos += 1
        end = pos
        while not data[end:end + 1].isspace():
            end += 1
        fields.append(data[pos:end].decode())
        pos = end
    magic, w, h, maxval = fields[0], int(fields[1]), int(fields[2]), int(fields[3])
    channels = {"P5": 1, "P6": 3}[magic]
    pixels = np.frombuffer(data[pos + 1:], np.uint8)
    assert maxval == 255 and pixels.size == w * h * channels
    return pixels.reshape((h, w, channels) if channels == 3 else (h, w))


def test_fuse_writes_binary_pgm_and_ppm(capsys, dataset, tmp_path):
    """Netpbm output as the C runtime's fuse_frames writes it (P5 for gray, P6 for color, whichever suffix): the
    same pixels as the PNG output."""
    ir, vis = dataset / "ir" / "tno_07.png", dataset / "vi" / "tno_07.png"
    color = _save(tmp_path / "vis-color.png", np.stack([read_image(vis)] * 3, -1) // np.array([1, 2, 3], np.uint8))
    for vis_path, channels in ((vis, 1), (color, 3)):
        png = tmp_path / f"fused{channels}.png"
        assert run(capsys, "fuse", "--ir", ir, "--vis", vis_path, "-o", png, "--method", "max")[0] == 0
        for suffix in (".pgm", ".ppm"):
            netpbm = tmp_path / f"fused{channels}{suffix}"
            assert run(capsys, "fuse", "--ir", ir, "--vis", vis_path, "-o", netpbm, "--method", "max")[0] == 0
            assert netpbm.read_bytes()[:2] == (b"P5" if channels == 1 else b"P6")
            np.testing.assert_array_equal(_netpbm(netpbm), read_image(png))


# --- eval ---------------------------------------------------------------------------------------


def test_eval_method_reports(capsys, dataset, tmp_path):
    js, cs, grid = tmp_path / "r" / "m.json", tmp_path / "r" / "m.csv", tmp_path / "grid"
    code, out, _ = run(capsys, "eval", "--data", dataset, "--method", "max", "--json", js, "--csv", cs, "--grid", grid)
    assert code == 0
    report = json.loads(js.read_text())
    assert list(report) == ["images", "mean"] and list(report["images"]) == list(NAMES)
    for name in NAMES:
        ir = read_image(dataset / "ir" / f"{name}.png").astype(np.float64)
        vis = read_image(dataset / "vi" / f"{name}.png").astype(np.float64)
        expected = metrics.compute_all(ir, vis, np.maximum(ir, vis))
        assert report["images"][name] == pytest.approx(expected, rel=1e-6)
    for metric in metrics.METRIC_NAMES:
        assert report["mean"][metric] == pytest.approx(np.mean([v[metric] for v in report["images"].values()]))
    rows = list(csv.reader(cs.read_text().splitlines()))
    assert rows[0] == ["image", *metrics.METRIC_NAMES]
    assert [r[0] for r in rows[1:]] == [*NAMES, "mean"]
    assert float(rows[-1][1]) == pytest.approx(report["mean"]["EN"], abs=1e-6)
    lines = out.strip().splitlines()
    assert lines[0].split() == ["image", *metrics.METRIC_NAMES]
    assert lines[-1].split()[0] == "mean" and len({len(line) for line in lines}) == 1  # aligned
    strip = read_image(grid / "tno_07.png")
    h, w = 64, 56
    assert strip.shape == (h, 3 * w + 8, 3)
    np.testing.assert_array_equal(strip[:, :w, 0], read_image(dataset / "ir" / "tno_07.png"))
    np.testing.assert_array_equal(strip[:, w + 4 : 2 * w + 4, 0], read_image(dataset / "vi" / "tno_07.png"))
    np.testing.assert_array_equal(strip[:, 2 * w + 8 :, 0], np.maximum(strip[:, :w, 0], strip[:, w + 4 : 2 * w + 4, 0]))


def test_eval_fused_folder_matches_method(capsys, dataset, tmp_path):
    assert run(capsys, "fuse", "--ir", dataset / "ir", "--vis", dataset / "vi", "-o", tmp_path / "f", "--method", "max")[0] == 0
    assert run(capsys, "eval", "--data", dataset, "--fused", tmp_path / "f", "--json", tmp_path / "a.json")[0] == 0
    assert run(capsys, "eval", "--data", dataset, "--method", "max", "--json", tmp_path / "b.json")[0] == 0
    assert json.loads((tmp_path / "a.json").read_text()) == json.loads((tmp_path / "b.json").read_text())


def test_eval_stretch_only_on_request(capsys, dataset, tmp_path):
    for name in NAMES:  # a dark, low-contrast "fusion": values 10..73
        _save(tmp_path / "dark" / f"{name}.png", (read_image(dataset / "ir" / f"{name}.png") // 4 + 10).astype(np.uint8))
    run(capsys, "eval", "--data", dataset, "--fused", tmp_path / "dark", "--json", tmp_path / "plain.json")
    run(capsys, "eval", "--data", dataset, "--fused", tmp_path / "dark", "--json", tmp_path / "stretched.json", "--stretch")
    plain = json.loads((tmp_path / "plain.json").read_text())["images"]["tno_07"]
    stretched = json.loads((tmp_path / "stretched.json").read_text())["images"]["tno_07"]
    dark = read_image(tmp_path / "dark" / "tno_07.png").astype(np.float64)
    assert plain["SD"] == pytest.approx(np.std(dark))
    full = np.rint((dark - dark.min()) * 255 / (dark.max() - dark.min()))
    assert stretched["SD"] == pytest.approx(np.std(full))


# --- bad input: exit 2, one line, no traceback, no partial output --------------------------------


def test_pair_of_different_sizes(capsys, tmp_path):
    ir = _save(tmp_path / "ir.png", np.zeros((20, 30), np.uint8))
    vis = _save(tmp_path / "vis.png", np.zeros((21, 30), np.uint8))
    line = assert_user_error(capsys, ["fuse", "--ir", ir, "--vis", vis, "-o", tmp_path / "o.png"], ir, vis, "30x20", "30x21")
    assert "sizes differ" in line
    assert not (tmp_path / "o.png").exists()


def test_eval_pair_of_different_sizes(capsys, dataset, tmp_path):
    _save(dataset / "vi" / "tno_19.png", np.zeros((65, 56), np.uint8))
    assert_user_error(capsys, ["eval", "--data", dataset, "--method", "max", "--json", tmp_path / "r.json", "--grid", tmp_path / "g"],
                      "tno_19", "56x64", "56x65")
    assert not (tmp_path / "r.json").exists() and not (tmp_path / "g").exists()


def test_frame_folders_with_a_pair_of_different_sizes_name_it(capsys, dataset, tmp_path):
    pytest.importorskip("cv2")
    bad = _save(dataset / "vi" / "tno_19.png", np.zeros((65, 56), np.uint8))
    assert_user_error(capsys, ["fuse", "--ir", dataset / "ir", "--vis", dataset / "vi", "-o", tmp_path / "o.avi", "--method", "max"],
                      f"{dataset / 'ir' / 'tno_19.png'} + {bad}: IR and visible sizes differ: IR 56x64, visible 56x65 (WxH)")
    assert not (tmp_path / "o.avi").exists()


def test_missing_partner(capsys, dataset, tmp_path):
    (dataset / "vi" / "tno_20.png").unlink()
    assert_user_error(capsys, ["fuse", "--ir", dataset / "ir", "--vis", dataset / "vi", "-o", tmp_path / "out"], "tno_20", "no visible partner")
    assert_user_error(capsys, ["eval", "--data", dataset, "--method", "max"], "tno_20")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("kind", ["garbage", "truncated-png", "truncated-jpg"])
def test_unreadable_or_truncated_file_leaves_no_output(capsys, dataset, tmp_path, kind):
    bad = dataset / "vi" / "tno_19.png"
    if kind == "garbage":
        bad.write_bytes(b"\x89PNG this is not really a PNG")
    else:
        suffix = kind.split("-")[1]
        full = _save(tmp_path / f"full.{suffix}", np.random.default_rng(0).integers(0, 256, (64, 56, 3), dtype=np.uint8))
        bad.unlink()
        bad = dataset / "vi" / f"tno_19.{suffix}"
        bad.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    out = tmp_path / "out"
    assert_user_error(capsys, ["fuse", "--ir", dataset / "ir", "--vis", dataset / "vi", "-o", out], bad, "cannot read image")
    assert not out.exists()
    js, grid = tmp_path / "r.json", tmp_path / "grid"
    assert_user_error(capsys, ["eval", "--data", dataset, "--method", "mean", "--json", js, "--grid", grid], bad)
    assert not js.exists() and not grid.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no staging leftovers


def test_empty_folders(capsys, tmp_path):
    (tmp_path / "d" / "ir").mkdir(parents=True)
    (tmp_path / "d" / "vi").mkdir()
    assert_user_error(capsys, ["fuse", "--ir", tmp_path / "d" / "ir", "--vis", tmp_path / "d" / "vi", "-o", tmp_path / "o"], "no images")
    assert_user_error(capsys, ["eval", "--data", tmp_path / "d", "--method", "max"], "no images")
    assert not (tmp_path / "o").exists()


def test_output_path_of_the_wrong_kind(capsys, dataset, tmp_path):
    as_file = _save(tmp_path / "taken.png", np.zeros((2, 2), np.uint8))
    assert_user_error(capsys, ["fuse", "--ir", dataset / "ir", "--vis", dataset / "vi", "-o", as_file], as_file, "is a file")
    as_dir = tmp_path / "dir.png"
    as_dir.mkdir()
    ir, vis = dataset / "ir" / "tno_07.png", dataset / "vi" / "tno_07.png"
    assert_user_error(capsys, ["fuse", "--ir", ir, "--vis", vis, "-o", as_dir], as_dir, "is a folder")
    assert_user_error(capsys, ["fuse", "--ir", ir, "--vis", vis, "-o", tmp_path / "fused.txt"], "image suffix")
    assert_user_error(capsys, ["eval", "--data", dataset, "--method", "max", "--json", as_dir], "is a folder")
    assert_user_error(capsys, ["eval", "--data", dataset, "--method", "max", "--grid", as_file], "is a file")
    assert_user_error(capsys, ["eval", "--data", dataset, "--method", "max", "--csv", as_file / "r.csv"], "is a file")
    assert files_under(as_dir) == [] and read_image(as_file).shape == (2, 2)


def test_eval_fused_folder_missing_file(capsys, dataset, tmp_path):
    run(capsys, "fuse", "--ir", dataset / "ir", "--vis", dataset / "vi", "-o", tmp_path / "f", "--method", "max")
    (tmp_path / "f" / "tno_19.png").unlink()
    assert_user_error(capsys, ["eval", "--data", dataset, "--fused", tmp_path / "f", "--json", tmp_path / "r.json"], "tno_19", "no fused image")
    assert not (tmp_path / "r.json").exists()
    _save(tmp_path / "f" / "tno_19.png", np.zeros((10, 10), np.uint8))
    assert_user_error(capsys, ["eval", "--data", dataset, "--fused", tmp_path / "f"], "tno_19.png", "10x10")


def test_bad_model_and_stretch_options(capsys, dataset, tmp_path):
    ir, vis = dataset / "ir" / "tno_07.png", dataset / "vi" / "tno_07.png"
    assert_user_error(capsys, ["fuse", "--ir", ir, "--vis", vis, "-o", tmp_path / "o.png", "--model", tmp_path / "nope.pt"], "nope.pt")
    assert_user_error(capsys, ["fuse", "--ir", ir, "--vis", vis, "-o", tmp_path / "o.png", "--stretch-low", 90, "--stretch-high", 10], "percentiles")
    assert not (tmp_path / "o.png").exists()


def test_subprocess_entry_point(dataset, tmp_path):
    ok = subprocess.run([sys.executable, "-m", "edgefusion", "eval", "--data", str(dataset), "--method", "max"],
                        capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.splitlines()[-1].split()[0] == "mean"
    (dataset / "ir" / "tno_07.png").write_bytes(b"garbage")
    bad = subprocess.run([sys.executable, "-m", "edgefusion", "fuse", "--ir", str(dataset / "ir"), "--vis", str(dataset / "vi"),
                          "-o", str(tmp_path / "out")], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == [bad.stderr.strip()] and "Traceback" not in bad.stderr
    assert not (tmp_path / "out").exists()
