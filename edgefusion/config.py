"""Typed config sections: dataclasses whose fields carry validation bounds, parsed from plain tables.

A *section* is a dataclass; every field has a default. Field constraints live in
the field metadata (set with :func:`bounded`): ``choices`` (allowed values),
``min`` / ``max`` (inclusive bounds, also applied to every element of a list).
:func:`parse_section` builds a section from a TOML-like table and raises
:class:`~edgefusion.errors.UserError` naming the key and the rule; cross-field
checks raise ``ValueError`` from ``__post_init__``.

Torch-free and training-free, so model configs (:mod:`edgefusion.models`) and
training recipes (:mod:`edgefusion.training.recipe`) share it.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import field
from typing import Any

from edgefusion.errors import UserError


def bounded(default: Any, *, min: float | None = None, max: float | None = None, choices: tuple | None = None) -> Any:
    """A dataclass field with a default and validation bounds (lists get a copied default)."""
    meta = {k: v for k, v in (("min", min), ("max", max), ("choices", choices)) if v is not None}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=meta)
    return field(default=default, metadata=meta)


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp))


def _check_scalar(value: Any, tp: type, where: str) -> Any:
    if tp is bool:
        ok = isinstance(value, bool)
    elif tp is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif tp is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    else:
        ok = isinstance(value, tp)
    if not ok:
        raise UserError(f"{where} must be {_type_name(tp)}, got {value!r}")
    return value


def _check_bounds(value: Any, meta: typing.Mapping, where: str) -> None:
    if "choices" in meta and value not in meta["choices"]:
        raise UserError(f"{where} must be one of {', '.join(map(str, meta['choices']))}; got {value!r}")
    if "min" in meta and value < meta["min"]:
        raise UserError(f"{where} must be >= {meta['min']}, got {value!r}")
    if "max" in meta and value > meta["max"]:
        raise UserError(f"{where} must be <= {meta['max']}, got {value!r}")


def parse_section(cls: type, table: Any, where: str) -> Any:
    """Build dataclass ``cls`` from a TOML table, checking keys, types and bounds."""
    if not isinstance(table, dict):
        raise UserError(f"{where} must be a table")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(table) - set(fields))
    if unknown:
        raise UserError(f"unknown key {where}.{unknown[0]} (known: {', '.join(fields)})")
    hints = typing.get_type_hints(cls)
    values = {}
    for name, value in table.items():
        key = f"{where}.{name}"
        tp = hints[name]
        meta = fields[name].metadata
        if typing.get_origin(tp) is list:
            (item_tp,) = typing.get_args(tp)
            if not isinstance(value, list):
                raise UserError(f"{key} must be a list of {_type_name(item_tp)}, got {value!r}")
            value = [_check_scalar(v, item_tp, f"{key}[{i}]") for i, v in enumerate(value)]
            for i, v in enumerate(value):
                _check_bounds(v, meta, f"{key}[{i}]")
        else:
            value = _check_scalar(value, tp, key)
            _check_bounds(value, meta, key)
        values[name] = value
    try:
        return cls(**values)
    except ValueError as exc:  # __post_init__ cross-field checks
        raise UserError(f"{where}: {exc}") from None
