"""The one display vocabulary of the pages: how each method is named and drawn (from the registry,
asam_core.methods), the p choices of every region control, and the figure fonts."""
from __future__ import annotations

import math

import plotly.graph_objects as go
from plotly.colors import qualitative

from asam_core.methods import METHODS, method

P_CHOICES: dict[str, float] = {"1.5": 1.5, "2": 2.0, "3": 3.0, "4": 4.0, "8": 8.0, "inf": math.inf}
TOY_P_CHOICES = ("2", "inf")  # the paper's ellipsoid and cuboid


def method_title(key_or_title: str) -> str:
    """A method's name on screen ("ASAM")."""
    return method(key_or_title).title


def method_line(key_or_title: str, width: float = 2.5) -> dict:
    """Plotly line style of a method: its registry colour and dash."""
    entry = method(key_or_title)
    return dict(color=entry.color, dash=entry.dash, width=width)


def method_color(key_or_title: str) -> str:
    return method(key_or_title).color


METHOD_KEYS = tuple(METHODS)
RUN_PALETTE = qualitative.Plotly


def run_color(run_id: int) -> str:
    """The colour of CIFAR run ``run_id`` on every figure, the same across page loads."""
    return RUN_PALETTE[run_id % len(RUN_PALETTE)]
INK = "#111111"
FONT_SIZE, PRESENTER_FONT_SIZE = 15, 20
PRESENTER_HEIGHT = 1.25
GRID = "#e4e7ed"
TEMPLATE = go.layout.Template(layout=dict(  # the page's look: its font, white, light grid
    font=dict(family='"Source Sans", "Source Sans Pro", sans-serif', color=INK),
    paper_bgcolor="white", plot_bgcolor="white", colorway=RUN_PALETTE,
    title=dict(x=0, xanchor="left", font=dict(weight=600)),
    xaxis=dict(gridcolor=GRID, zerolinecolor="#c7ccd6", linecolor=GRID, ticks="", automargin=True),
    yaxis=dict(gridcolor=GRID, zerolinecolor="#c7ccd6", linecolor=GRID, ticks="", automargin=True),
    legend=dict(bgcolor="rgba(255,255,255,0)"),
))


def readable(fig: go.Figure, presenter: bool = False) -> go.Figure:
    """``fig`` in the page's look (TEMPLATE) with fonts readable on a projector: dark text, 15 px (20 px
    and 25 % taller figures in presenter mode, unless the figure has a fixed width); axis titles a
    little larger than the ticks."""
    size = PRESENTER_FONT_SIZE if presenter else FONT_SIZE
    fig.update_layout(template=TEMPLATE, font=dict(size=size, color=INK), title_font=dict(size=size + 3, color=INK))
    axis = dict(tickfont=dict(size=size, color=INK), title_font=dict(size=size + 1, color=INK))
    fig.update_xaxes(**axis)
    fig.update_yaxes(**axis)
    fig.update_annotations(font_size=size)
    if presenter and fig.layout.height and not fig.layout.width:  # a figure of fixed size sized itself
        fig.update_layout(height=int(fig.layout.height * PRESENTER_HEIGHT))
    return fig
