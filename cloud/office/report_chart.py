"""A bar chart as inline SVG, drawn on the server for the reports page (no chart library, no script): one bar per
key, one or two series stacked (till and online), an axis with its top value, each bar titled with its figures so
that a screen reader and a hover show them. Pure: text in, text out (every text escaped)."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

WIDTH, HEIGHT, LEFT, BOTTOM, TOP = 720, 260, 64, 40, 12
BAR_MAX_W = 48.0  # a few bars stay bars, not blocks
BARS_MAX = 400  # more keys than this: the last BARS_MAX are drawn (the table has them all)
LABELS_MAX = 12  # axis labels shown (evenly spaced) when there are more bars


@dataclass(frozen=True)
class Series:
    name: str
    values: Sequence[int]
    css: str  # the bar's class (its colour in office.css / the page's style)


def nice_top(value: int) -> int:
    """The axis' top: the value rounded up to 1, 2 or 5 times a power of ten (at least 1)."""
    if value <= 0:
        return 1
    step = 1
    while True:
        for m in (1, 2, 5):
            if step * m >= value:
                return step * m
        step *= 10


def bar_chart(title: str, labels: Sequence[str], series: Sequence[Series], unit: str,
              fmt=lambda v: str(v)) -> str:
    """The SVG of a stacked bar chart of `series` over `labels`; `fmt` turns a value into its text (e.g. yuan)."""
    labels = list(labels)[-BARS_MAX:]
    cut = len(series[0].values) - len(labels) if series else 0
    values = [list(s.values)[cut:] for s in series]
    totals = [sum(v[i] for v in values) for i in range(len(labels))]
    top = nice_top(max(totals, default=0))
    plot_w, plot_h = WIDTH - LEFT - 8, HEIGHT - BOTTOM - TOP
    slot = plot_w / max(len(labels), 1)
    bar = min(max(slot * 0.7, 1.0), BAR_MAX_W)
    parts = [f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{escape(title)}" '
             f'preserveAspectRatio="xMidYMid meet" xmlns="http://www.w3.org/2000/svg">',
             f"<title>{escape(title)}</title>",
             f'<line class="axis" x1="{LEFT}" y1="{TOP + plot_h}" x2="{WIDTH - 8}" y2="{TOP + plot_h}"/>',
             f'<line class="axis" x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{TOP + plot_h}"/>',
             f'<text class="tick" x="{LEFT - 6}" y="{TOP + 10}" text-anchor="end">{escape(fmt(top))}</text>',
             f'<text class="tick" x="{LEFT - 6}" y="{TOP + plot_h}" text-anchor="end">0</text>',
             f'<text class="tick" x="4" y="{TOP + plot_h / 2:.0f}">{escape(unit)}</text>']
    every = max(1, -(-len(labels) // LABELS_MAX))
    for i, label in enumerate(labels):
        x = LEFT + i * slot + (slot - bar) / 2
        base = float(TOP + plot_h)
        said = "; ".join(f"{s.name} {fmt(v[i])}" for s, v in zip(series, values, strict=True))
        parts.append(f'<g class="bar" data-key="{escape(label)}"><title>{escape(label)}: {escape(said)}</title>')
        for s, v in zip(series, values, strict=True):
            h = plot_h * v[i] / top if v[i] > 0 else 0
            base -= h
            parts.append(f'<rect class="{escape(s.css)}" x="{x:.1f}" y="{base:.1f}" width="{bar:.1f}" '
                         f'height="{h:.1f}"/>')
        parts.append("</g>")
        if i % every == 0:
            parts.append(f'<text class="tick" x="{x + bar / 2:.1f}" y="{TOP + plot_h + 16}" text-anchor="middle">'
                         f"{escape(_short(label))}</text>")
    parts.append("</svg>")
    return "".join(parts)


def _short(label: str) -> str:
    """A day's axis label without its year (2026-03-05 -> 03-05); other labels cut to 10 characters."""
    if len(label) == 10 and label[4] == "-" and label[7] == "-":
        return label[5:]
    return label if len(label) <= 10 else label[:9] + "…"
