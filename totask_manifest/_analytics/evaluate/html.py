"""The report's evaluation section: cards, per-class bars, the precision-recall curve, the
review-threshold curve and the worst images with both sides drawn.

``evaluation_section(job_url)`` returns "" when the job has no reference to compare with (no
lineage and no ``human-annotated`` pair), so ``report`` calls it unconditionally. Everything is
inline SVG and ``data:`` URIs, like the rest of the page.
"""

from __future__ import annotations

import base64
import io
import logging
from collections.abc import Callable, Sequence
from html import escape
from typing import Any

from PIL import ImageDraw

from ..._errors import TotaskError, counted
from ..._fetch import FetchPolicy, SyncFetcher, resolve_reference
from ..._imaging import DEFAULT_MAX_IMAGE_PIXELS, ImageError, decode_image
from ..._storage import redact_secret_url
from ..labels import ReferenceBases, references_bases
from .attributes import NotOriented, resolve_target
from .detection import WorstLine
from .driver import Evaluation, evaluate_manifest

log = logging.getLogger("totask_manifest")

PREDICTED_COLOR = "#ff725c"
REFERENCE_COLOR = "#3ca951"
CSS = """
.ev-legend span{display:inline-block;width:12px;height:12px;border-radius:2px;margin:0 4px 0 12px;vertical-align:-1px}
table.cm td.n{text-align:right;min-width:34px}
"""


#: reads an image's bytes; the report passes its fetcher, under the job's fetch policy
Fetch = Callable[[str], bytes]


def evaluation_section(job_url: str, *, base: str | None = None, samples: int = 6, fetch: Fetch | None = None,
                       max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS) -> str:
    """The HTML of the section, or "" when the job has nothing to compare with. Images of the
    worst lines are read with ``fetch`` (default: the fetch layer's default policy)."""
    try:
        resolve_target(job_url, None, None)
    except NotOriented as exc:  # a pair, but which side is right is the user's to say: not dropped unsaid
        return (f'<h2>Evaluation</h2><p class="muted">not evaluated: {escape(exc.reason)}; '
                f'<code>totask-manifest evaluate JOB_DIR --predicted A --reference B</code> compares them</p>')
    except TotaskError:  # no pair of attributes (or no manifest): a job without a reference
        return ""
    try:
        ev = evaluate_manifest(job_url, worst=samples)
    except TotaskError as exc:
        return f'<h2>Evaluation</h2><p class="muted">not evaluated: {escape(str(exc))}</p>'
    return render_evaluation(ev, base=base, samples=samples, fetch=fetch, max_pixels=max_pixels)


def render_evaluation(ev: Evaluation, *, base: str | None = None, samples: int = 6, fetch: Fetch | None = None,
                      max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS) -> str:
    parts = [f"<h2>Evaluation: {escape(ev.predicted)} against {escape(ev.reference)}</h2>",
             f'<p class="muted">attributes from {escape(ev.how_found)}; {counted(ev.evaluated, "line", grouped=True)} evaluated, '
             f"{ev.not_evaluated:,} not (either side missing, failed, routed or unreadable)</p>",
             f"<style>{CSS}</style>"]
    skipped = [f"{side} {kind}: {n:,}" for side, c in ev.skipped.items() for kind, n in c.items()]
    if skipped:
        parts.append(f'<p class="muted">{escape("; ".join(skipped))}</p>')
    det = ev.detection
    if det:
        parts.append(_cards([("AP@[.5:.95]", det["ap"]), ("AP@.5", det["ap50"]), (f"precision@{det['iou']:g}",
                             det["precision"]), (f"recall@{det['iou']:g}", det["recall"])]))
        charts = [
            "<div><h3>Per class</h3>" + class_bars(det["per_class"], ("ap50", "precision", "recall")) + "</div>",
            "<div><h3>Precision-recall (interpolated, mean over classes)</h3>" + pr_curve(det["pr_curve"], det["iou"])
            + "</div>",
            "<div><h3>Review threshold (lines)</h3>" + threshold_curve(det["sweep"]["line"]) + "</div>",
            "<div><h3>Review threshold (boxes)</h3>" + threshold_curve(det["sweep"]["box"]) + "</div>",
        ]
        parts.append('<div class="charts">' + "".join(charts) + "</div>")
        if ev.worst and samples:
            parts.append(f"<h3>Worst images (errors at IoU {det['iou']:g})</h3>"
                         f'<p class="ev-legend muted"><span style="background:{REFERENCE_COLOR}"></span>reference'
                         f'<span style="background:{PREDICTED_COLOR}"></span>predicted</p>'
                         + _worst_tiles(ev.worst[:samples], _bases(ev, base), fetch, max_pixels))
    for title, c in (("Classification", ev.classification), ("Multi-label classification",
                                                           ev.classification_multilabel)):
        if not c:
            continue
        parts.append(f"<h3>{title}</h3>" + _cards([("accuracy", c["accuracy"])]))
        charts = ["<div>" + class_bars(c["per_class"], ("precision", "recall")) + "</div>",
                  "<div><h4>Review threshold (lines)</h4>" + threshold_curve(c["sweep"]["line"]) + "</div>"]
        parts.append('<div class="charts">' + "".join(charts) + "</div>")
        if c.get("confusion_matrix"):
            parts.append(confusion_table(c["confusion_matrix"]))
    seg = ev.segmentation
    if seg:
        parts.append("<h3>Semantic segmentation</h3>" + _cards([("mean IoU", seg["mean_iou"]),
                                                                ("pixel accuracy", seg["pixel_accuracy"])]))
        parts.append(class_bars(seg["per_class"], ("iou",)))
    return "\n".join(parts)


def _cards(items: Sequence[tuple[str, float | None]]) -> str:
    return '<div class="cards">' + "".join(
        f'<div class="card"><b>{"-" if v is None else f"{v:.3f}"}</b><span>{escape(k)}</span></div>'
        for k, v in items) + "</div>"


_METRIC_COLORS = {"ap50": "#4269d0", "ap": "#97bbf5", "precision": "#efb118", "recall": "#6cc5b0", "iou": "#4269d0"}


def class_bars(rows: Sequence[dict[str, Any]], metrics: Sequence[str], *, width: int = 560,
               max_rows: int = 30) -> str:
    """Grouped horizontal bars in [0, 1], one group per class, one bar per metric."""
    rows = list(rows)[:max_rows]
    if not rows:
        return '<p class="muted">nothing to chart</p>'
    label_w, bar_h, gap = 150, 9, 8
    plot_w = width - label_w - 50
    group_h = bar_h * len(metrics) + gap
    height = len(rows) * group_h + 28
    out = [f'<svg class="chart" role="img" aria-label="per-class {escape(", ".join(metrics))}" width="{width}" '
           f'height="{height}" viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">']
    for i, r in enumerate(rows):
        y0 = 4 + i * group_h
        name = str(r["class"])
        short = name if len(name) <= 22 else name[:21] + "…"
        out.append(f'<text x="{label_w - 6}" y="{y0 + bar_h * len(metrics) / 2 + 4:.1f}" text-anchor="end" '
                   f'font-size="12">{escape(short)}</text>')
        for j, m in enumerate(metrics):
            v = r.get(m)
            w = plot_w * v if isinstance(v, int | float) else 0
            y = y0 + j * bar_h
            text = "-" if v is None else f"{v:.3f}"
            out.append(f'<rect x="{label_w}" y="{y}" width="{w:.1f}" height="{bar_h - 1}" '
                       f'fill="{_METRIC_COLORS.get(m, "#9498a0")}"><title>{escape(name)} {m}: {text}</title></rect>'
                       f'<text x="{label_w + w + 3:.1f}" y="{y + bar_h - 1}" font-size="9">{text}</text>')
    ly = height - 10
    for j, m in enumerate(metrics):
        x = label_w + j * 110
        out.append(f'<rect x="{x}" y="{ly - 9}" width="10" height="10" fill="{_METRIC_COLORS.get(m, "#9498a0")}"/>'
                   f'<text x="{x + 14}" y="{ly}" font-size="11">{escape("AP@.5" if m == "ap50" else m)}</text>')
    out.append("</svg>")
    return "".join(out)


def _plot_frame(width: int, height: int, title: str, x_label: str, y_label: str) -> tuple[list[str], Any]:
    pad_l, pad_b, pad_t, pad_r = 44, 34, 10, 12
    pw, ph = width - pad_l - pad_r, height - pad_t - pad_b

    def xy(x: float, y: float) -> tuple[float, float]:
        return pad_l + pw * x, pad_t + ph * (1 - y)

    out = [f'<svg class="chart" role="img" aria-label="{escape(title)}" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>',
           f'<rect x="{pad_l}" y="{pad_t}" width="{pw}" height="{ph}" fill="none" stroke="#ccd"/>']
    for k in range(0, 11, 2):
        gx, _ = xy(k / 10, 0)
        _, gy = xy(0, k / 10)
        out.append(f'<line x1="{gx:.1f}" y1="{pad_t}" x2="{gx:.1f}" y2="{pad_t + ph}" stroke="#eef"/>'
                   f'<line x1="{pad_l}" y1="{gy:.1f}" x2="{pad_l + pw}" y2="{gy:.1f}" stroke="#eef"/>'
                   f'<text x="{gx:.1f}" y="{pad_t + ph + 14}" text-anchor="middle" font-size="10">{k / 10:.1f}</text>'
                   f'<text x="{pad_l - 4}" y="{gy + 3:.1f}" text-anchor="end" font-size="10">{k / 10:.1f}</text>')
    out.append(f'<text x="{pad_l + pw / 2}" y="{height - 4}" text-anchor="middle" font-size="11">{escape(x_label)}'
               f'</text><text x="10" y="{pad_t + ph / 2}" font-size="11" transform="rotate(-90 10 {pad_t + ph / 2})" '
               f'text-anchor="middle">{escape(y_label)}</text>')
    return out, xy


def _polyline(points: Sequence[tuple[float, float]], xy: Any, stroke: str, dash: str = "") -> str:
    pts = " ".join(f"{a:.1f},{b:.1f}" for a, b in (xy(x, y) for x, y in points))
    extra = f' stroke-dasharray="{dash}"' if dash else ""
    return f'<polyline points="{pts}" fill="none" stroke="{stroke}" stroke-width="2"{extra}/>'


def pr_curve(curve: dict[str, Any], iou: float, *, width: int = 420, height: int = 300) -> str:
    rec = curve["recall"]
    series = [(curve.get("precision_at_50"), "#4269d0", "", "IoU 0.5")]
    if iou != 0.5:
        series.append((curve.get("precision_at_iou"), "#ff725c", "5,3", f"IoU {iou:g}"))
    if not any(s[0] for s in series):
        return '<p class="muted">no reference boxes: no curve</p>'
    out, xy = _plot_frame(width, height, "precision-recall curve", "recall", "precision")
    for i, (prec, stroke, dash, name) in enumerate(series):
        if prec:
            out.append(_polyline(list(zip(rec, prec, strict=True)), xy, stroke, dash))
            out.append(f'<text x="{width - 100}" y="{24 + 14 * i}" font-size="11" fill="{stroke}">{escape(name)}</text>')
    out.append("</svg>")
    return "".join(out)


def threshold_curve(sweep: dict[str, Any], *, width: int = 420, height: int = 300) -> str:
    """Share of items routed and share of errors caught, per ``--review-below`` threshold."""
    items, errors = sweep["items"], sweep["errors"]
    if not items:
        return '<p class="muted">nothing to sweep</p>'
    rows = sweep["thresholds"]
    unit = {"box": "boxes", "line": "lines"}.get(sweep["unit"], sweep["unit"])
    out, xy = _plot_frame(width, height, f"review threshold sweep ({unit})", "--review-below",
                          "share")
    out.append(_polyline([(r["threshold"], r["routed"] / items) for r in rows], xy, "#4269d0"))
    if errors:
        out.append(_polyline([(r["threshold"], r["errors_caught"] / errors) for r in rows], xy, "#d64545", "5,3"))
    sug = sweep.get("suggested")
    note = "no errors" if not errors else "no threshold reaches the target"
    if sug:
        x, y = xy(sug["threshold"], sug["errors_caught"] / errors)
        out.append(f'<line x1="{x:.1f}" y1="10" x2="{x:.1f}" y2="{height - 34}" stroke="#3ca951" stroke-dasharray="2,2"/>'
                   f'<circle cx="{x:.1f}" cy="{y:.1f}" r="4" fill="#3ca951"/>')
        note = (f"suggested {sug['threshold']:.2f}: routes {sug['routed']:,} of {items:,}, catches "
                f"{sug['errors_caught']:,} of {counted(errors, 'error', grouped=True)}")
    out.append("</svg>")
    legend = (f'<span style="color:#4269d0">━ {escape(unit)} routed</span> &nbsp; <span style="color:#d64545">'
              f'┅ errors caught (target {sweep["share"]:.0%})</span>')
    return "".join(out) + f'<p class="muted" style="margin:2px 0 0;font-size:12px">{legend}<br>{escape(note)}</p>'


def confusion_table(cm: dict[str, Any]) -> str:
    classes, counts = cm["classes"], cm["counts"]
    top = max((max(r) for r in counts if r), default=0) or 1
    head = "".join(f"<th>{escape(c)}</th>" for c in classes)
    body = []
    for name, row in zip(classes, counts, strict=True):
        cells = "".join(
            f'<td class="n" style="background:rgba(66,105,208,{0.08 + 0.8 * n / top:.2f})">{n:,}</td>' if n else
            '<td class="n"></td>' for n in row)
        body.append(f"<tr><th>{escape(name)}</th>{cells}</tr>")
    return ('<table class="cm"><caption class="muted">rows: reference, columns: predicted</caption>'
            f"<thead><tr><th></th>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>")


def _bases(ev: Evaluation, base: str | None) -> ReferenceBases:
    """Where the worst lines' relative images resolve: as evaluate read them
    (``labels.references_bases``: a line an ``--append`` manifest gave beside that manifest; every
    line was read against ``base``, the input's folder, and an appended line's image was not
    found), the caller's ``base`` (the report's) standing for the manifest's own lines."""
    bases = references_bases(ev.manifest)
    return bases if base is None else ReferenceBases(base, bases.appended)


def _worst_tiles(worst: Sequence[WorstLine], bases: ReferenceBases, fetch: Fetch | None, max_pixels: int) -> str:
    if fetch is None:
        with SyncFetcher(FetchPolicy()) as fetcher:
            return _worst_tiles(worst, bases, fetcher.fetch, max_pixels)
    out = []
    for w in worst:
        title = f"line {w.line}: {counted(w.errors, 'error')}"
        try:
            uri = _draw_both(resolve_reference(w.source, bases.for_line(w.line)) if w.source else "", w, fetch,
                             max_pixels)
            pic = f'<img src="{uri}" alt="{escape(title)}">'
        except (OSError, ValueError, TotaskError) as exc:  # an image that cannot be fetched is a tile saying why
            pic = f'<div class="tile-error">image not available: {escape(str(exc)[:160])}</div>'
        except ImageError as exc:
            pic = f'<div class="tile-error">image not available: {escape(exc.reason[:160])}</div>'
        src = redact_secret_url(w.source or "").rsplit("/", 1)[-1][:60]  # no password or signature on the page
        out.append(f"<figure>{pic}<figcaption><b>{escape(title)}</b><br>{escape(src)}: {len(w.reference)} "
                   f"reference, {len(w.predicted)} predicted</figcaption></figure>")
    return '<div class="grid">' + "".join(out) + "</div>"


def _draw_both(url: str, w: WorstLine, fetch: Fetch, max_pixels: int, size: int = 240) -> str:
    from ..thumbnails import _font

    if not url:
        raise ValueError("the line has no source-ref")
    img, info = decode_image(fetch(url), max_pixels=max_pixels)  # 8-bit RGB; a JPEG over the budget reduced
    sx, sy = img.width / max(info.width, 1), img.height / max(info.height, 1)
    draw = ImageDraw.Draw(img)
    font = _font()
    lw = max(2, round(max(img.size) / 200))
    for boxes, c in ((w.reference, REFERENCE_COLOR), (w.predicted, PREDICTED_COLOR)):
        for cls, bx, by, bw, bh, conf in boxes:
            x, y, bw, bh = bx * sx, by * sy, bw * sx, bh * sy
            draw.rectangle([x, y, x + bw, y + bh], outline=c, width=lw)
            text = cls + (f" {conf:.2f}" if conf is not None and c == PREDICTED_COLOR else "")
            tb = draw.textbbox((x, y), text, font=font)
            ty = y if c == PREDICTED_COLOR else max(0, y + bh - (tb[3] - tb[1]) - 2)
            tb = draw.textbbox((x, ty), text, font=font)
            draw.rectangle([tb[0], tb[1] - 1, tb[2] + 2, tb[3] + 1], fill=c)
            draw.text((x + 1, ty), text, fill="white", font=font)
    img.thumbnail((size, size))
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=80)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


__all__ = ["evaluation_section", "render_evaluation"]
