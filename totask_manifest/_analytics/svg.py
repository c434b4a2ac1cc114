"""Small inline SVG charts for the HTML report: no script, no network, readable without CSS."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

PALETTE = ["#4269d0", "#efb118", "#ff725c", "#6cc5b0", "#3ca951", "#ff8ab7", "#a463f2", "#97bbf5", "#9c6b4e",
           "#9498a0"]


def color(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


#: an upper bound of the width of one character at ``FONT`` px in the sans-serif fonts browsers
#: pick (wide letters such as "m" and "W" come to about 0.9 of the size; the mean is about 0.55)
FONT = 12
CHAR_W = 0.62 * FONT


def _fit(label: str, width: float) -> str:
    """``label`` cut to what fits in ``width`` pixels (by ``CHAR_W``), the ellipsis in the middle:
    reasons that differ only at their end (a file name in a path) stay told apart."""
    room = max(1, int(width / CHAR_W))
    if len(label) <= room:
        return label
    head = max((room - 1) * 3 // 5, 1)
    tail = max(room - 1 - head, 0)
    return label[:head] + "…" + (label[-tail:] if tail else "")


def hbar_chart(rows: Sequence[tuple[str, int]], *, width: int = 560, bar_height: int = 18, title: str = "",
               colors: Sequence[str] | None = None) -> str:
    """Horizontal bars, one per (label, count) in the order given; ``colors`` per row (else by position).

    Short labels sit left of their bar in a column as wide as the longest needs (at most 40% of
    the chart); long ones (failure reasons) get a line of their own above the bar, across the
    whole width. Text starts at a known x and is cut to the room it has, so nothing is drawn
    outside the chart; the full label is in each bar's tooltip.
    """
    if not rows:
        return '<p class="muted">nothing to chart</p>'
    top = max(n for _, n in rows) or 1
    count_w = CHAR_W * (len(f"{top:,}") + 1) + 4
    longest = max(len(label) for label, _ in rows) * CHAR_W + 8
    above = longest > 0.4 * width  # labels on their own line
    label_w = 0.0 if above else longest
    plot_w = width - label_w - count_w
    row_h = bar_height + 6 + (FONT + 4 if above else 0)
    height = len(rows) * row_h + 6
    parts = [f'<svg class="chart" role="img" aria-label="{escape(title)}" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">']
    if title:
        parts.append(f"<title>{escape(title)}</title>")
    for i, (label, n) in enumerate(rows):
        y = 6 + i * row_h
        if above:
            parts.append(f'<text x="0" y="{y + FONT - 2}" font-size="{FONT}">{escape(_fit(label, width))}</text>')
            y += FONT + 4
        else:
            parts.append(f'<text x="0" y="{y + bar_height - 5}" font-size="{FONT}">'
                         f"{escape(_fit(label, label_w - 8))}</text>")
        w = max(1.0, plot_w * n / top) if n else 0
        parts.append(
            f'<rect x="{label_w:.1f}" y="{y}" width="{w:.1f}" height="{bar_height}" '
            f'fill="{colors[i] if colors else color(i)}">'
            f"<title>{escape(label)}: {n:,}</title></rect>"
            f'<text x="{label_w + w + 4:.1f}" y="{y + bar_height - 5}" font-size="{FONT}">{n:,}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def nice_ticks(top: int, most: int = 5) -> list[int]:
    """0 and round steps (1, 2 or 5 times a power of ten) up to at least ``top``."""
    if top <= 0:
        return [0]
    step = 1
    while True:
        for m in (1, 2, 5):
            if -(-top // (step * m)) <= most - 1:
                s = step * m
                return list(range(0, -(-top // s) * s + 1, s))
        step *= 10


def histogram(counts: Sequence[int], edges: Sequence[str], *, width: int = 560, height: int = 180,
              title: str = "", fill: str = "#4269d0") -> str:
    """Vertical bars over labelled bins (``edges`` names each bin), with a labelled y axis."""
    if not counts or not any(counts):
        return '<p class="muted">nothing to chart</p>'
    ticks = nice_ticks(max(counts))
    top = ticks[-1]
    pad_l = int(CHAR_W * len(f"{top:,}") + 10)
    pad_b, pad_t = 34, 10
    plot_w, plot_h = width - pad_l - 10, height - pad_b - pad_t
    bw = plot_w / len(counts)
    parts = [f'<svg class="chart" role="img" aria-label="{escape(title)}" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg">']
    if title:
        parts.append(f"<title>{escape(title)}</title>")
    for t in ticks:
        y = pad_t + plot_h - plot_h * t / top
        parts.append(f'<line x1="{pad_l}" y1="{y:.1f}" x2="{width - 10}" y2="{y:.1f}" '
                     f'stroke="{"#888" if t == 0 else "#e3e6ea"}"/>'
                     f'<text x="{pad_l - 4}" y="{y + 4:.1f}" text-anchor="end" font-size="11">{t:,}</text>')
    # bin labels: as many as fit side by side, the rest left to the tooltips
    every = max(1, -(-max(len(e) for e in edges) * 6 // max(int(bw), 1)))
    for i, n in enumerate(counts):
        h = plot_h * n / top if top else 0
        x = pad_l + i * bw
        parts.append(
            f'<rect x="{x + 1:.1f}" y="{pad_t + plot_h - h:.1f}" width="{bw - 2:.1f}" height="{h:.1f}" fill="{fill}">'
            f"<title>{escape(edges[i])}: {n:,}</title></rect>"
        )
        if i % every == 0:
            parts.append(f'<text x="{x + bw / 2:.1f}" y="{height - 18}" text-anchor="middle" font-size="10">'
                         f"{escape(edges[i])}</text>")
    parts.append("</svg>")
    return "".join(parts)
