"""Small inline SVG charts for the HTML report: no script, no network, readable without CSS."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

PALETTE = ["#4269d0", "#efb118", "#ff725c", "#6cc5b0", "#3ca951", "#ff8ab7", "#a463f2", "#97bbf5", "#9c6b4e",
           "#9498a0"]


def color(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def hbar_chart(rows: Sequence[tuple[str, int]], *, width: int = 560, bar_height: int = 18, title: str = "",
               colors: Sequence[str] | None = None) -> str:
    """Horizontal bars, one per (label, count) in the order given; ``colors`` per row (else by position)."""
    if not rows:
        return '<p class="muted">nothing to chart</p>'
    top = max(n for _, n in rows) or 1
    label_w, count_w = 180, 70
    plot_w = width - label_w - count_w
    height = len(rows) * (bar_height + 6) + 6
    parts = [f'<svg class="chart" role="img" aria-label="{escape(title)}" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">']
    if title:
        parts.append(f"<title>{escape(title)}</title>")
    for i, (label, n) in enumerate(rows):
        y = 6 + i * (bar_height + 6)
        w = max(1.0, plot_w * n / top) if n else 0
        short = label if len(label) <= 26 else label[:25] + "…"
        parts.append(
            f'<text x="{label_w - 6}" y="{y + bar_height - 5}" text-anchor="end" font-size="12">{escape(short)}</text>'
            f'<rect x="{label_w}" y="{y}" width="{w:.1f}" height="{bar_height}" '
            f'fill="{colors[i] if colors else color(i)}">'
            f"<title>{escape(label)}: {n:,}</title></rect>"
            f'<text x="{label_w + w + 4:.1f}" y="{y + bar_height - 5}" font-size="12">{n:,}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def histogram(counts: Sequence[int], edges: Sequence[str], *, width: int = 560, height: int = 180,
              title: str = "", fill: str = "#4269d0") -> str:
    """Vertical bars over labelled bins (``edges`` names each bin)."""
    if not counts or not any(counts):
        return '<p class="muted">nothing to chart</p>'
    top = max(counts)
    pad_l, pad_b, pad_t = 40, 34, 10
    plot_w, plot_h = width - pad_l - 10, height - pad_b - pad_t
    bw = plot_w / len(counts)
    parts = [f'<svg class="chart" role="img" aria-label="{escape(title)}" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">']
    if title:
        parts.append(f"<title>{escape(title)}</title>")
    parts.append(f'<line x1="{pad_l}" y1="{pad_t + plot_h}" x2="{width - 10}" y2="{pad_t + plot_h}" stroke="#888"/>')
    parts.append(f'<text x="{pad_l - 4}" y="{pad_t + 10}" text-anchor="end" font-size="11">{top:,}</text>')
    for i, n in enumerate(counts):
        h = plot_h * n / top if top else 0
        x = pad_l + i * bw
        parts.append(
            f'<rect x="{x + 1:.1f}" y="{pad_t + plot_h - h:.1f}" width="{bw - 2:.1f}" height="{h:.1f}" fill="{fill}">'
            f"<title>{escape(edges[i])}: {n:,}</title></rect>"
            f'<text x="{x + bw / 2:.1f}" y="{height - 18}" text-anchor="middle" font-size="10">{escape(edges[i])}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)
