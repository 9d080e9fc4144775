"""A small self-contained HTML report: fused images (embedded PNG), a metrics table, a latency plot.

One file with no external references (images are ``data:`` URIs), so it can
be attached to a CI run or mailed. Needs numpy and Pillow; the latency plot
needs matplotlib and is replaced by its table when matplotlib is missing.
"""

from __future__ import annotations

import base64
import datetime
import html
import io
import os
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
from PIL import Image

from edgefusion import __version__
from edgefusion.io.atomic import write_text

_STYLE = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:1200px}
h1{font-size:1.4em} h2{font-size:1.1em;margin-top:2em}
table{border-collapse:collapse;font-size:.85em} th,td{border:1px solid #ccc;padding:.25em .6em;text-align:right}
th{background:#f3f3f3} td:first-child,th:first-child{text-align:left}
figure{display:inline-block;margin:.5em;text-align:center} figure img{max-width:360px;image-rendering:pixelated}
figure.wide{display:block} figure.wide img{max-width:100%}
figcaption{font-size:.8em;color:#555} .note{color:#666;font-size:.85em}
"""


#: Images wider than this (pixels) span the page width (side-by-side comparison strips).
WIDE_PX = 1000


def png_data_uri(image: np.ndarray) -> str:
    """``data:image/png;base64,...`` of a uint8 (H, W) or (H, W, 3) image."""
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise ValueError(f"report images must be uint8, got {image.dtype}")
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return html.escape(str(value))


def html_table(rows: Sequence[Mapping[str, object]]) -> str:
    """An HTML table of dict rows (columns: the union of keys, in first-seen order)."""
    columns: list[str] = []
    for row in rows:
        columns.extend(k for k in row if k not in columns)
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{_cell(row.get(c, ''))}</td>" for c in columns) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render_report(
    title: str,
    images: Sequence[tuple[str, np.ndarray]] = (),
    metrics: Sequence[Mapping[str, object]] = (),
    latency: Sequence = (),
    notes: str = "",
    model: Sequence[str] = (),
) -> str:
    """The report as an HTML string.

    ``images``: (caption, uint8 image) pairs; ``metrics``: dict rows (e.g. one
    per method); ``latency``: :class:`edgefusion.bench.BundleResult` objects;
    ``model``: lines on the model shown (name, digest, provenance), listed first.
    """
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
             f"<style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1>",
             f"<p class='note'>edgefusion {__version__}, generated {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC</p>"]
    if model:
        parts.append("<h2>Model</h2><ul>" + "".join(f"<li>{html.escape(line)}</li>" for line in model) + "</ul>")
    if notes:
        parts.append(f"<p>{html.escape(notes)}</p>")
    if images:
        parts.append("<h2>Images</h2><div>")
        parts.extend(f"<figure{' class=wide' if img.shape[1] > WIDE_PX else ''}><img alt='{html.escape(c)}' src='{png_data_uri(img)}'>"
                     f"<figcaption>{html.escape(c)}</figcaption></figure>" for c, img in images)
        parts.append("</div>")
    if metrics:
        parts.append("<h2>Metrics</h2>" + html_table(metrics))
    if latency:
        from edgefusion import bench

        parts.append("<h2>Latency</h2>")
        try:
            png = bench.latency_png(list(latency))
            parts.append(f"<img alt='latency vs resolution' src='data:image/png;base64,{base64.b64encode(png).decode('ascii')}'>")
        except Exception as exc:  # matplotlib missing or broken: the table below still carries the numbers
            parts.append(f"<p class='note'>latency plot unavailable ({html.escape(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)})</p>")
        rows = [{"bundle": r.name, "device": r.environment.get("device", ""), "size (WxH)": s.size, "median ms": s.median_ms,
                 "p90 ms": s.p90_ms, "p99 ms": s.p99_ms, "FPS": s.fps, "model ms": s.model_ms, "pre/post ms": s.overhead_ms,
                 "peak RSS MB": s.peak_rss_mb} for r in latency for s in r.sizes]
        parts.append(html_table(rows))
        envs = {r.name: r.environment for r in latency}
        parts.append("<p class='note'>" + "<br>".join(
            html.escape(f"{name}: {env.get('backend')} {env.get('backend_version')} on {env.get('device')}, "
                        f"threads {env.get('threads')}, CPU {env.get('cpu')}") for name, env in envs.items()) + "</p>")
    parts.append("</body></html>\n")
    return "".join(parts)


def write_report(path: str | os.PathLike, title: str, **content) -> Path:
    """Write :func:`render_report` to ``path`` atomically; returns the path."""
    path = Path(path)
    write_text(path, render_report(title, **content))
    return path
