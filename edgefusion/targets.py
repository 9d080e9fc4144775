"""Device target profiles: which backend, precision, shape and accuracy gate a bundle is built for.

A profile is a TOML file. Built-in profiles live in the ``targets/`` resource
folder (:func:`edgefusion.resources.resource_dir`); a user profile is passed by
path (``--target path/to/my.toml``). A profile may define named variants
(``[variants.480p]``) that override top-level keys; ``--target jetson:480p``
picks one.

Keys (see ``targets/x86.toml`` for a commented example):

* ``backend``: ``onnxruntime`` | ``openvino`` | ``litert`` | ``tensorrt``
* ``precision``: ``fp32`` | ``fp16`` | ``int8``
* ``layout``: ``NCHW`` | ``NHWC`` (model I/O layout); ``io_dtype``: ``float32``
  (default) | ``int8`` | ``uint8``: integer I/O (value range [0, 1] quantized
  in the model, scales and zero points in the bundle manifest) is built for
  ``litert`` ``int8`` targets with ``compose = "model"`` only
* ``dynamic``: whether the model accepts any H x W (a multiple of the stride);
  LiteRT and TensorRT bundles are built for one fixed ``shape``
* ``compose``: ``model`` (default; the model outputs the fused luma) or
  ``runtime`` (the model is the student's low-resolution ``analyze`` network
  with output ``maps``; the device runtime composes the full-resolution
  result in numpy, :mod:`edgefusion.runtime.compose`)
* ``shape``: ``[H, W]`` of calibration/validation frames and, when not dynamic,
  the model's fixed input shape
* ``calibration_samples``: number of calibration frames (at most the pairs given)
* ``[quantization]``: ``ops`` (ONNX op types that are quantized, default
  ``["Conv"]``), ``keep_float`` (student modules left in float), ``accuracy_control``
* ``[gate]``: ``min_psnr_db``, ``min_ssim`` (INT8 vs FP32 output),
  ``max_relative_drop`` (fusion metric -> largest allowed relative drop, a fraction)
* ``[latency_budget]``: ``shape`` ``[H, W]`` and ``p90_ms`` for on-device checks
* ``description``, ``notes``: free text
"""

from __future__ import annotations

import math

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgefusion.errors import UserError
from edgefusion.resources import resource_dir

BACKENDS = ("onnxruntime", "openvino", "litert", "tensorrt")
PRECISIONS = ("fp32", "fp16", "int8")
LAYOUTS = ("NCHW", "NHWC")
IO_DTYPES = ("float32", "int8", "uint8")
COMPOSE = ("model", "runtime")
#: Backends whose bundles have one fixed input shape.
FIXED_SHAPE_BACKENDS = ("litert", "tensorrt")

_TOP_KEYS = {
    "description", "backend", "precision", "layout", "io_dtype", "dynamic", "shape",
    "calibration_samples", "compose", "notes", "quantization", "gate", "latency_budget", "variants",
}
_QUANT_KEYS = {"ops", "keep_float", "accuracy_control"}
_GATE_KEYS = {"min_psnr_db", "min_ssim", "max_relative_drop"}
_BUDGET_KEYS = {"shape", "p90_ms"}


@dataclass(frozen=True)
class Gate:
    """Accuracy gate of an INT8 model against its FP32 source."""

    min_psnr_db: float
    min_ssim: float = 0.0
    max_relative_drop: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Target:
    """A validated target profile."""

    name: str
    source: Path
    backend: str
    precision: str
    layout: str
    io_dtype: str
    dynamic: bool
    shape: tuple[int, int]
    calibration_samples: int
    gate: Gate
    compose: str
    latency_shape: tuple[int, int]
    latency_p90_ms: float
    quantize_ops: tuple[str, ...] = ("Conv",)
    keep_float: tuple[str, ...] = ()
    accuracy_control: bool = False
    description: str = ""
    notes: str = ""
    variants: tuple[str, ...] = ()

    @property
    def fixed_shape(self) -> tuple[int, int] | None:
        """The model's input shape [H, W], or None when it is dynamic."""
        return None if self.dynamic else self.shape

    def with_shape(self, shape: tuple[int, int]) -> Target:
        """The same target for another frame shape (calibration, validation and fixed input)."""
        from dataclasses import replace

        return replace(self, shape=_shape(list(shape), f"{self.name}: shape"))


def builtin_dir() -> Path:
    """Folder of the built-in profiles."""
    return resource_dir("targets")


def builtin_names() -> list[str]:
    """Names of the built-in profiles, sorted."""
    return sorted(p.stem for p in builtin_dir().glob("*.toml"))


def load_target(spec: str | Path) -> Target:
    """Load a profile by built-in name (``jetson``, ``jetson:480p``) or by TOML file path."""
    text = str(spec)
    variant = None
    path = Path(text)
    if not (path.suffix == ".toml" or path.exists()):
        name, _, variant = text.partition(":")
        path = builtin_dir() / f"{name}.toml"
        if not path.is_file():
            raise UserError(f"unknown target {text!r}; built-in targets: {', '.join(builtin_names())}, or pass a .toml profile path")
        variant = variant or None
    elif not path.is_file():
        raise UserError(f"target profile not found: {path}")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise UserError(f"cannot read target profile {path}: {exc}") from None
    return parse_target(data, name=path.stem if variant is None else f"{path.stem}:{variant}", source=path, variant=variant)


def parse_target(data: dict[str, Any], name: str, source: Path, variant: str | None = None) -> Target:
    """Validate a profile's TOML table (with ``variant`` applied) into a :class:`Target`."""
    where = f"target {name} ({source})"
    _check_keys(data, _TOP_KEYS, where)
    variants = data.get("variants", {})
    if not isinstance(variants, dict):
        raise UserError(f"{where}: 'variants' must be a table")
    if variant is not None:
        if variant not in variants:
            raise UserError(f"{where}: no variant {variant!r}; variants: {', '.join(variants) or 'none'}")
        override = variants[variant]
        _check_keys(override, _TOP_KEYS - {"variants"}, f"{where} variant {variant}")
        data = _merge(data, override)
    backend = _choice(data, "backend", BACKENDS, where, None)
    precision = _choice(data, "precision", PRECISIONS, where, "int8")
    layout = _choice(data, "layout", LAYOUTS, where, "NHWC" if backend == "litert" else "NCHW")
    io_dtype = _choice(data, "io_dtype", IO_DTYPES, where, "float32")
    compose = _choice(data, "compose", COMPOSE, where, "model")
    dynamic = data.get("dynamic", backend not in FIXED_SHAPE_BACKENDS)
    if not isinstance(dynamic, bool):
        raise UserError(f"{where}: 'dynamic' must be true or false")
    if dynamic and backend in FIXED_SHAPE_BACKENDS:
        raise UserError(f"{where}: the {backend} backend needs a fixed input shape (dynamic = false)")
    if layout == "NHWC" and backend != "litert":
        raise UserError(f"{where}: NHWC layout is only supported by the litert backend")
    if io_dtype != "float32" and (backend, precision, compose) != ("litert", "int8", "model"):
        raise UserError(f"{where}: io_dtype = {io_dtype!r} needs backend = \"litert\", precision = \"int8\" and compose = \"model\"")
    if "shape" not in data:
        raise UserError(f"{where}: missing 'shape' = [H, W]")
    shape = _shape(data["shape"], f"{where}: shape")
    samples = data.get("calibration_samples", 32)
    if not isinstance(samples, int) or isinstance(samples, bool) or samples < 1:
        raise UserError(f"{where}: 'calibration_samples' must be a positive integer")

    quant = _table(data, "quantization", _QUANT_KEYS, where)
    ops = _strings(quant.get("ops", ["Conv"]), f"{where}: quantization.ops")
    keep_float = _strings(quant.get("keep_float", []), f"{where}: quantization.keep_float")
    accuracy_control = quant.get("accuracy_control", backend == "openvino")
    if not isinstance(accuracy_control, bool):
        raise UserError(f"{where}: quantization.accuracy_control must be true or false")

    gate_table = _table(data, "gate", _GATE_KEYS, where)
    if "min_psnr_db" not in gate_table:
        raise UserError(f"{where}: missing gate.min_psnr_db")
    drops = gate_table.get("max_relative_drop", {})
    if not isinstance(drops, dict):
        raise UserError(f"{where}: gate.max_relative_drop must be a table of metric = fraction")
    gate = Gate(
        min_psnr_db=_number(gate_table["min_psnr_db"], f"{where}: gate.min_psnr_db"),
        min_ssim=_number(gate_table.get("min_ssim", 0.0), f"{where}: gate.min_ssim"),
        max_relative_drop={str(k): _number(v, f"{where}: gate.max_relative_drop.{k}", minimum=0.0) for k, v in drops.items()},
    )
    budget = _table(data, "latency_budget", _BUDGET_KEYS, where)
    if set(budget) != _BUDGET_KEYS:
        raise UserError(f"{where}: latency_budget needs shape = [H, W] and p90_ms")
    return Target(
        name=name,
        source=source,
        backend=backend,
        precision=precision,
        layout=layout,
        io_dtype=io_dtype,
        dynamic=dynamic,
        shape=shape,
        calibration_samples=samples,
        gate=gate,
        compose=compose,
        latency_shape=_shape(budget["shape"], f"{where}: latency_budget.shape"),
        latency_p90_ms=_number(budget["p90_ms"], f"{where}: latency_budget.p90_ms", minimum=0.0),
        quantize_ops=tuple(ops),
        keep_float=tuple(keep_float),
        accuracy_control=accuracy_control,
        description=str(data.get("description", "")),
        notes=str(data.get("notes", "")).strip(),
        variants=tuple(variants),
    )


def list_targets() -> list[Target]:
    """Every built-in profile and variant, for ``edgefusion targets``."""
    found = []
    for name in builtin_names():
        base = load_target(name)
        found.append(base)
        found.extend(load_target(f"{name}:{v}") for v in base.variants)
    return found


def _merge(base: dict, override: dict) -> dict:
    merged = {k: v for k, v in base.items() if k != "variants"}
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    return merged


def _check_keys(table: Any, allowed: set[str], where: str) -> None:
    if not isinstance(table, dict):
        raise UserError(f"{where}: expected a table")
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise UserError(f"{where}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}")


def _table(data: dict, key: str, allowed: set[str], where: str) -> dict:
    table = data.get(key, {})
    _check_keys(table, allowed, f"{where}: [{key}]")
    return table


def _choice(data: dict, key: str, options: tuple[str, ...], where: str, default: str | None) -> str:
    value = data.get(key, default)
    if value is None:
        raise UserError(f"{where}: missing '{key}' (one of {', '.join(options)})")
    if value not in options:
        raise UserError(f"{where}: {key} = {value!r} is not one of {', '.join(options)}")
    return value


def _shape(value: Any, where: str) -> tuple[int, int]:
    if (
        not isinstance(value, list)
        or len(value) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value)
    ):
        raise UserError(f"{where} must be [H, W] with positive integers, got {value!r}")
    return _bounded(int(value[0]), int(value[1]), f"{where} {value[0]}x{value[1]}")


def _number(value: Any, where: str, minimum: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise UserError(f"{where} must be a number, got {value!r}")
    if not math.isfinite(value):  # TOML allows inf and nan; a manifest (strict JSON) cannot hold them
        raise UserError(f"{where} must be a finite number, got {value}")
    if minimum is not None and value < minimum:
        raise UserError(f"{where} must be >= {minimum}, got {value}")
    return float(value)


def _strings(value: Any, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise UserError(f"{where} must be a list of strings")
    return value


def parse_shape(text: str) -> tuple[int, int]:
    """Parse ``HxW`` (e.g. ``480x640``) into (H, W)."""
    h, sep, w = text.lower().partition("x")
    if not sep or not h.isdigit() or not w.isdigit() or int(h) < 1 or int(w) < 1:
        raise UserError(f"shape must be HxW with positive integers (e.g. 480x640), got {text!r}")
    return _bounded(int(h), int(w), f"--shape {int(h)}x{int(w)}")


def _bounded(height: int, width: int, what: str) -> tuple[int, int]:
    """(height, width), or UserError when the frame has more pixels than an input image may have."""
    from edgefusion.io.images import check_frame_size

    check_frame_size(height, width, what)
    return height, width
