"""The one display vocabulary of the pages: how each method is named and drawn (from the registry,
asam_core.methods), the p choices of every region control, and the figure fonts."""
from __future__ import annotations

import math
import re

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
LEGEND_SMALLER = 3  # legends a little smaller than the ticks, as the pages were drawn and laid out
GRID = "#e4e7ed"
_AXIS_LOOK = dict(  # ticklabeloverflow "allow": automargin keeps the labels inside already, and plotly's default
    # ("hide past div") measures every tick label again after each one is drawn, ~10 ms a figure per update
    gridcolor=GRID, zerolinecolor="#c7ccd6", linecolor=GRID, ticks="", automargin=True, ticklabeloverflow="allow")
TEMPLATE = go.layout.Template(layout=dict(  # the page's look: its font, white, light grid
    font=dict(family='"Source Sans", "Source Sans Pro", sans-serif', color=INK),
    paper_bgcolor="white", plot_bgcolor="white", colorway=RUN_PALETTE,
    title=dict(x=0, xanchor="left", font=dict(weight=600)),
    xaxis=_AXIS_LOOK, yaxis=_AXIS_LOOK,
    legend=dict(bgcolor="rgba(255,255,255,0)"),
)).to_plotly_json()
_AXIS = re.compile(r"[xy]axis\d*$")


def _merge(target: dict, update: dict) -> None:
    """``target`` updated in place with ``update``, nested dicts merged key by key."""
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            _merge(target[key], value)
        else:
            target[key] = value


def _titled(part: dict) -> dict:
    """``part`` with a title given as plain text (plotly's shorthand) spelled out as {"text": ...}."""
    if isinstance(part.get("title"), str):
        part["title"] = {"text": part["title"]}
    return part


def readable(figure: go.Figure | dict, presenter: bool = False) -> dict:
    """The plotly JSON object of ``figure`` (a dict is changed in place) in the page's look (TEMPLATE)
    with fonts readable on a projector: dark text, 15 px (20 px and 25 % taller figures in presenter
    mode, unless the figure has a fixed width); axis titles a little larger than the ticks, legends a
    little smaller.  Works on the dict, not through plotly's objects, which took ~30 ms a figure."""
    spec = figure if isinstance(figure, dict) else figure.to_dict()
    layout = spec.setdefault("layout", {})
    size = PRESENTER_FONT_SIZE if presenter else FONT_SIZE
    layout["template"] = TEMPLATE
    _merge(_titled(layout), {"font": {"size": size, "color": INK}, "title": {"font": {"size": size + 3, "color": INK}},
                             "legend": {"font": {"size": size - LEGEND_SMALLER}}})
    axis = {"tickfont": {"size": size, "color": INK}, "title": {"font": {"size": size + 1, "color": INK}}}
    for key in {"xaxis", "yaxis", *filter(_AXIS.match, layout)}:
        _merge(_titled(layout.setdefault(key, {})), axis)
    for annotation in layout.get("annotations", ()):
        _merge(annotation, {"font": {"size": size}})
    if presenter and layout.get("height") and not layout.get("width"):  # a figure of fixed size sized itself
        layout["height"] = int(layout["height"] * PRESENTER_HEIGHT)
    return spec
