"""The one display vocabulary of the pages: how each method is named and drawn (from the registry,
asam_core.methods), the p choices of every region control, and the figure fonts."""
from __future__ import annotations

import math

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
