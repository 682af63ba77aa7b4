"""Figures with matplotlib (``pip install 'nsegaug[plots]'``), saved as PNG and SVG, the same bytes on every run.

matplotlib is imported when a figure is made, never at import of nsegaug:
commands that draw nothing do not pay for it, and a command that draws says
which extra to install. Figures are made without pyplot (no global state,
no GUI backend), so any thread may draw.
"""

from __future__ import annotations

import io

PLOTS_MISSING = "drawing figures needs matplotlib, which is not installed: pip install 'nsegaug[plots]'"
DPI = 120
# The SVG's element ids come from this salt instead of a random one, and no date is written: a figure drawn
# twice from the same numbers is byte-identical. Its text stays text (a fraction of the size of glyph paths).
SVG_SALT = "nsegaug"


def require_matplotlib():
    """The matplotlib module, or an ImportError that says which extra to install."""
    try:
        import matplotlib
    except ImportError as error:
        raise ImportError(PLOTS_MISSING) from error
    return matplotlib


def new_figure(size: tuple[float, float]):
    """An empty figure of ``size`` inches, on matplotlib's Agg canvas."""
    require_matplotlib()
    from matplotlib.figure import Figure

    return Figure(figsize=size, dpi=DPI)


def figure_bytes(figure, bottom_legend: bool = False) -> dict[str, bytes]:
    """``figure`` as ``{"png": ..., "svg": ...}``, laid out so that no label is cut (room kept at the bottom
    for a figure-wide legend)."""
    import matplotlib

    figure.tight_layout(rect=(0, 0.06 if bottom_legend else 0.02, 1, 0.95))
    found = {}
    with matplotlib.rc_context({"svg.hashsalt": SVG_SALT, "svg.fonttype": "none"}):
        for kind, metadata in (("png", {"Software": None}), ("svg", {"Date": None})):
            buffer = io.BytesIO()
            figure.savefig(buffer, format=kind, metadata=metadata)
            found[kind] = buffer.getvalue()
    return found
