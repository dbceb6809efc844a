"""Markdown for every report the action writes: escaping outside text, code spans, tables, money and
Mermaid charts (GitHub renders both). The bottom of the house: it imports nothing of the product."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

__all__ = ["BATCH_COLOUR", "SYNC_COLOUR", "bar_chart", "code", "escape", "money", "table"]

_MD_SPECIAL = re.compile(r"([\\`*_\[\]!|<>~&#])")


def escape(text: str) -> str:
    """Text from outside (API errors, ids) rendered inert in Markdown and HTML."""
    flat = " ".join(text.split())
    return _MD_SPECIAL.sub(r"\\\1", flat)


def code(text: str) -> str:
    """A code span: nothing inside renders as Markdown or HTML (pipes still need escaping in tables)."""
    return "`" + " ".join(text.split()).replace("`", "'").replace("|", "\\|") + "`"


def money(value: float) -> str:
    """Dollars, with four decimals for amounts under a cent."""
    if 0 < abs(value) < 0.01:
        return f"${value:,.4f}"
    return f"${value:,.2f}"


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], right: Sequence[int] = ()) -> list[str]:
    """A GFM table; cells are used as given (escape outside text before passing it)."""
    align = ["---:" if i in right else "---" for i in range(len(headers))]
    lines = ["| " + " | ".join(headers) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(cell.replace("\n", " ") for cell in row) + " |" for row in rows]
    return lines


def _label(text: str) -> str:
    return '"' + " ".join(text.split()).replace('"', "'") + '"'


def _axis_max(values: Sequence[float]) -> float:
    top = max(values, default=0.0)
    if top <= 0:
        return 1.0
    step = 10 ** math.floor(math.log10(top))
    return float(math.ceil(top * 1.1 / step) * step)


def bar_chart(
    title: str,
    labels: Sequence[str],
    series: Sequence[tuple[str, str, Sequence[float]]],
    y_label: str,
) -> list[str]:
    """A Mermaid xychart with one bar series per (name, colour, values).

    xychart draws the series of a category on top of each other, in order, and has no legend; put the
    largest series first so each later one shows inside it, and name the colours in the caption.
    """
    colours = ", ".join(colour for _, colour, _ in series)
    top = _axis_max([v for _, _, values in series for v in values])
    lines = [
        "```mermaid",
        '%%{init: {"themeVariables": {"xyChart": {"plotColorPalette": "' + colours + '"}}}}%%',
        "xychart-beta",
        f"    title {_label(title)}",
        "    x-axis [" + ", ".join(_label(label) for label in labels) + "]",
        f"    y-axis {_label(y_label)} 0 --> {top:g}",
    ]
    lines += ["    bar [" + ", ".join(f"{v:.2f}" for v in values) + "]" for _, _, values in series]
    lines.append("```")
    caption = "; ".join(f"{colour_name(colour)}: {name}" for name, colour, _ in series)
    lines += ["", f"_{caption}._"]
    return lines


_COLOUR_NAMES = {"#d9822b": "orange", "#2b7bd9": "blue", "#3f9d4a": "green", "#8a8a8a": "grey"}
SYNC_COLOUR, BATCH_COLOUR = "#d9822b", "#2b7bd9"


def colour_name(colour: str) -> str:
    return _COLOUR_NAMES.get(colour, colour)
