"""Widgets mirrored in st.query_params, so a copied URL reproduces the screen.

Each widget reads its first value from the URL (falling back to ``default`` with a visible
warning that names the parameter and its allowed values when the URL holds a bad one), then
writes its current value back to the URL on every run.  Keys must be unique across pages.

Teacher controls (views.teacher): a control named in ``hide`` is not drawn and keeps its first
value; one that is locked is drawn disabled at its first value; callbacks cannot move either.

A value from the URL is shown only through ``shown``: shortened and with every Markdown
character escaped, so a crafted link cannot put a clickable link or a remote image on the page.
"""
from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import plotly.graph_objects as go
import streamlit as st

from views import figure_frame, teacher
from views.style import readable

SHOWN_CHARS = 40
_PINNED = "_teacher_pinned"
_MARKDOWN = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$:=&@\"'^%])")


def shown(raw: str, limit: int = SHOWN_CHARS) -> str:
    """``raw`` (a URL value) as inert Markdown text: at most ``limit`` characters (then "…"), line
    breaks as spaces, every Markdown character backslash-escaped."""
    text = " ".join(str(raw).split())
    text = text if len(text) <= limit else text[:limit] + "…"
    return _MARKDOWN.sub(r"\\\1", text)


def _from_url(key: str, default: Any, parse: Callable[[str], Any], valid: Callable[[Any], bool], allowed: str) -> None:
    if key in st.session_state:
        return
    raw = st.query_params.get(key)
    value = default
    if raw is not None:
        try:
            parsed = parse(raw)
        except ValueError:
            parsed = None
        if parsed is not None and valid(parsed):
            value = parsed
        else:
            st.warning(f"URL parameter `{key}` = {shown(raw)} ignored: {key} must be {allowed}. Using {default!r}.")
    st.session_state[key] = value


def to_url(key: str, value: Any) -> Any:
    """Mirror ``value`` to the URL; only a change is sent (each write is a message the browser handles)."""
    text = str(value).lower() if isinstance(value, bool) else str(value)
    if st.query_params.get(key) != text:
        st.query_params[key] = text
    return value


def keep_pinned(key: str) -> None:
    """A control the teacher hid or locked keeps its first value in session state, whatever a callback
    or Streamlit's clean-up of undrawn widgets did to it (``key`` must hold a value already)."""
    if teacher.hidden(key) or teacher.locked(key):
        pinned = st.session_state.setdefault(_PINNED, {})
        st.session_state[key] = pinned.setdefault(key, st.session_state[key])


def _draw(key: str, widget: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``widget(*args, key=key, **kwargs)`` with its value mirrored to the URL; a hidden control is not
    drawn and a locked one is disabled, both pinned to their first value (views.teacher)."""
    hidden = teacher.hidden(key)
    keep_pinned(key)
    if hidden:
        return to_url(key, st.session_state[key])
    return to_url(key, widget(*args, key=key, **kwargs, **({"disabled": True} if teacher.locked(key) else {})))


def slider(label: str, key: str, min_value: float, max_value: float, default: float, step: float, **kwargs: Any) -> Any:
    """st.slider over [min_value, max_value] (int when ``default`` is an int)."""
    kind = type(default)
    _from_url(key, default, kind, lambda v: min_value <= v <= max_value, f"a number in [{min_value}, {max_value}]")
    return _draw(key, st.slider, label, kind(min_value), kind(max_value), step=kind(step), **kwargs)


def stops(label: str, key: str, options: Sequence[float], default: float, **kwargs: Any) -> Any:
    """st.select_slider over the numbers ``options`` (a slider whose stops need not be evenly spaced)."""
    kind = type(default)
    _from_url(key, default, kind, lambda v: v in options, f"one of {list(options)}")
    return _draw(key, st.select_slider, label, list(options), **kwargs)


def number(label: str, key: str, min_value: float, max_value: float, default: float, step: float, **kwargs: Any) -> Any:
    """st.number_input over [min_value, max_value] (int when ``default`` is an int)."""
    kind = type(default)
    _from_url(key, default, kind, lambda v: min_value <= v <= max_value, f"a number in [{min_value}, {max_value}]")
    return _draw(key, st.number_input, label, kind(min_value), kind(max_value), step=kind(step), **kwargs)


def choice(label: str, key: str, options: Sequence[str], default: str, radio: bool = False, **kwargs: Any) -> str:
    """st.selectbox (or st.radio) over string options."""
    _from_url(key, default, str, lambda v: v in options, f"one of {list(options)}")
    return _draw(key, st.radio if radio else st.selectbox, label, list(options), **kwargs)


def text(label: str, key: str, default: str, max_chars: int = 1024, **kwargs: Any) -> str:
    """st.text_input of at most ``max_chars`` characters."""
    _from_url(key, default, str, lambda v: len(v) <= max_chars, f"at most {max_chars} characters")
    return _draw(key, st.text_input, label, max_chars=max_chars, **kwargs)


def toggle(label: str, key: str, default: bool, **kwargs: Any) -> bool:
    """st.toggle stored as true/false."""
    parse = {"true": True, "false": False}.get
    _from_url(key, default, lambda raw: parse(raw.lower()), lambda v: isinstance(v, bool), "true or false")
    return _draw(key, st.toggle, label, **kwargs)


@dataclass(frozen=True)
class SharedFigure:
    """A figure from ``shared_figures``: readable, as the JSON the frame receives, made once."""

    spec: str


def chart(figure: go.Figure | dict | SharedFigure, key: str, fixed_size: bool = False) -> None:
    """Draw ``figure`` (a plotly figure or its JSON object) in the frame ``key`` (views.figure_frame:
    later figures update it in place), with the readable look of views.style, larger in presenter
    mode (a SharedFigure already has it); ``fixed_size``: drawn at the figure's own width and height
    instead of the column's width."""
    spec = figure.spec if isinstance(figure, SharedFigure) else figure_frame.spec(readable(figure, teacher.presenter()))
    figure_frame.draw(spec, key, fixed_size)


def shared_figures(build: Callable[..., Any]) -> Callable[..., Any]:
    """Cache ``build(*args, presenter, **kwargs)`` (a figure or a list of figures, as plotly figures or
    their JSON objects) for every session as SharedFigures, readable for ``presenter`` (by default this
    page's presenter mode, views.teacher): st.cache_resource shares the objects (st.cache_data would
    pickle a plotly figure and validate it again on every hit, about as slow as building it).  Draw
    them with ``chart``; arguments named ``_x`` are not hashed."""

    def shared_figure(fig: go.Figure | dict, presenter: bool) -> SharedFigure:
        return SharedFigure(figure_frame.spec(readable(fig, presenter)))

    @functools.wraps(build)  # the cache is keyed by build's name and source, its _arguments are not hashed
    def styled(*args: Any, presenter: bool, **kwargs: Any) -> Any:
        built = build(*args, presenter=presenter, **kwargs)
        return [shared_figure(fig, presenter) for fig in built] if isinstance(built, list) else shared_figure(built, presenter)

    cached = st.cache_resource(max_entries=64, show_spinner=False)(styled)

    def shared(*args: Any, presenter: bool | None = None, **kwargs: Any) -> Any:
        return cached(*args, presenter=teacher.presenter() if presenter is None else presenter, **kwargs)

    return shared
