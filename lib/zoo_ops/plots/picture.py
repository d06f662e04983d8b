"""A figure a notebook shows as one inline PNG, whatever matplotlib backend the kernel has."""

from __future__ import annotations

import io
from dataclasses import dataclass

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure


@dataclass(frozen=True)
class Picture:
    """Wraps a :class:`Figure` built without pyplot (so no global figure is left to be
    shown again); IPython calls ``_repr_png_`` once and stores ``image/png`` in the cell."""

    figure: Figure

    def png(self) -> bytes:
        """The figure rendered by Agg into PNG bytes."""
        buffer = io.BytesIO()
        FigureCanvasAgg(self.figure).print_png(buffer)
        return buffer.getvalue()

    def _repr_png_(self) -> bytes:
        return self.png()


def nothing_to_draw(ax: Axes, why: str) -> None:
    """An empty plot that says why it is empty, instead of bare axes."""
    ax.text(0.5, 0.5, why, ha="center", va="center", transform=ax.transAxes)
    ax.set_axis_off()
