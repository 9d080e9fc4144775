"""The seal of a bundle manifest: ``manifest.json`` hashes itself.

The manifest records the SHA-256 of every model file, but an edit of the manifest into
other valid values (``stride``, ``value_range``, ``stats_encoding``...) would change
how a device runs the model without touching a model file. So the manifest carries
``"manifest_sha256"``: the SHA-256 of its own bytes with the 64 hex digits of that
value replaced by ASCII ``0``. The rule is on bytes, so the Python runtime and the C
runtime (``native/runtime/ef_manifest.c``) check it identically:

1. the text holds ``"manifest_sha256"`` followed by JSON whitespace and ``:`` (the key, at any
   depth; not a string value that happens to read so) exactly once;
2. JSON whitespace and a quoted 64-digit lower-case hex string follow that colon;
3. the parsed top-level ``manifest_sha256`` equals those digits;
4. they equal the SHA-256 of the text with the digits zeroed.

It detects accidental edits and corruption, not forgery: whoever can rewrite the
manifest can recompute the seal (as with the model files' digests).

numpy-free and torch-free: the device runtime imports this module.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any, Mapping

from edgefusion.errors import UserError

KEY = "manifest_sha256"
_KEY = re.compile(rb'"' + KEY.encode() + rb'"[ \t\r\n]*:')
_VALUE = re.compile(rb'[ \t\r\n]*"([0-9a-f]{64})"')
_ZEROS = b"0" * 64


def sealed_manifest_text(manifest: Mapping[str, Any]) -> bytes:
    """``manifest`` as UTF-8 strict JSON (RFC 8259: no NaN or Infinity; indent 2, newline-terminated) with its seal, the last key.

    Any seal already in ``manifest`` is replaced; a non-finite number is a ValueError (a writer's bug, not an input problem).
    """
    body = {k: v for k, v in manifest.items() if k != KEY}
    body[KEY] = _ZEROS.decode()
    text = (json.dumps(body, indent=2, allow_nan=False) + "\n").encode("utf-8")
    start, _ = _seal_span(text, "manifest")
    digest = hashlib.sha256(text).hexdigest().encode()
    return text[:start] + digest + text[start + 64:]


def check_seal(text: bytes, manifest: Mapping[str, Any], where: str) -> None:
    """UserError naming ``where`` unless ``text`` (the manifest's bytes, ``manifest`` parsed from them) is sealed."""
    if KEY not in manifest:
        raise UserError(f"{where}: manifest.json has no {KEY} seal (written by an older edgefusion, or edited); "
                        "rebuild the bundle with this version")
    start, seal = _seal_span(text, where)
    if manifest[KEY] != seal.decode():
        raise UserError(f"{where}: manifest.json holds two different {KEY} values (edited?)")
    if hashlib.sha256(text[:start] + _ZEROS + text[start + 64:]).hexdigest().encode() != seal:
        raise UserError(f"{where}: manifest.json changed after the bundle was written (its {KEY} seal does not match)")


def _seal_span(text: bytes, where: str) -> tuple[int, bytes]:
    """Offset and bytes of the seal's 64 hex digits in ``text`` (rules 1 and 2 of the module docstring)."""
    keys = list(_KEY.finditer(text))
    if len(keys) != 1:
        raise UserError(f"{where}: manifest.json must name {KEY} exactly once")
    match = _VALUE.match(text, keys[0].end())
    if match is None:
        raise UserError(f"{where}: manifest.json {KEY} must be a 64-digit lower-case hex string")
    return match.start(1), match.group(1)
