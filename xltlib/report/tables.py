"""Tables that fit the book's page: a frame too wide for the text column is shown as several tables, each with the
index and as many columns as fit, instead of one that scrolls sideways past its last columns."""

from __future__ import annotations

import pandas as pd

from xltlib.report.intervals import describe

PAGE_WIDTH_PX = 620
"""The book's text column (sphinx-book-theme at a 1280-pixel window: 676 px), less a margin for the estimate's error."""
CHARACTER_PX, CELL_PADDING_PX = 7.5, 14
"""Width of one character of a table cell, and a cell's padding, in the theme's table font."""


def _text_width(values) -> float:
    return max((len(str(value)) for value in values), default=0) * CHARACTER_PX + CELL_PADDING_PX


def column_groups(frame: pd.DataFrame, page_width: float = PAGE_WIDTH_PX) -> list[list[int]]:
    """Positions of ``frame``'s columns, packed in order into groups that each fit ``page_width`` beside the index
    (a column wider than the page gets a group of its own)."""
    index = frame.index.to_frame(index=False)
    used = sum(_text_width([name, *index[name]]) for name in index.columns)
    groups, width = [[]], used
    for position, name in enumerate(frame.columns):
        column = _text_width([*(name if isinstance(name, tuple) else [name]), *frame.iloc[:, position]])
        if groups[-1] and width + column > page_width:
            groups.append([])
            width = used
        groups[-1].append(position)
        width += column
    return groups


def page_width_html(frame: pd.DataFrame) -> str:
    """The HTML of ``frame`` as one table per column group (:func:`column_groups`)."""
    return "".join(frame.iloc[:, group]._repr_html_() for group in column_groups(frame))


def fit_tables_to_page() -> None:
    """Make every DataFrame a notebook displays render at page width (an IPython HTML formatter)."""
    from IPython import get_ipython

    shell = get_ipython()
    if shell is not None:
        shell.display_formatter.formatters["text/html"].for_type(pd.DataFrame, page_width_html)


def brief(row: pd.Series, with_p: bool = False) -> str:
    """A gain as ``+0.4 [−0.5, +1.3]``: accuracy (``row.outcome``) in points, alignment in its own units."""
    accuracy = row.outcome == "accuracy"
    text = describe(row, scale=100 if accuracy else 1, digits=1 if accuracy else 4)
    text = text.replace(" (95% CI ", " [").replace(" to ", ", ").replace(")", "]")
    return text + (f", p = {row.p_value:.2g}" if with_p and not pd.isna(row.p_value) else "")


def tidy(table: pd.DataFrame, digits: int = 3) -> pd.DataFrame:
    """``table`` as the book shows it: rounded, its first column as the index (it names the rows), "–" for NaN."""
    shown = table.round(digits).set_index(table.columns[0]).astype(object)
    return shown.where(shown.notna(), "–")


def gains(effects: pd.DataFrame, index: list[str], columns, with_p: bool = False) -> pd.DataFrame:
    """Method effects as a grid of :func:`brief` gains, ``index`` down and ``columns`` across."""
    return effects.assign(gain=effects.apply(brief, axis=1, with_p=with_p)).pivot(
        index=index, columns=columns, values="gain"
    )
