"""Plotly figures that update in place.

``st.plotly_chart`` derives its element's identity from the figure, so every new figure is a new
chart: the browser throws the old plot away and draws the new one from scratch (Plotly.newPlot),
0.1 s and more per figure in benchmarks/page_latency.py's Chromium, before anything is computed.
``draw`` sends the figure to a small frame (figure_frame.html) that keeps its identity by ``key``
and hands each new figure to Plotly.react, which updates the plot it already has
(benchmarks/README.md, "Page latency").  The frame runs the plotly.js that ships with the
installed plotly package, copied once into a cache folder the app serves it from.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

import plotly
import plotly.graph_objects as go
import plotly.io
import streamlit as st
import streamlit.components.v1 as components
from _plotly_utils.utils import convert_to_base64

PAGE = Path(__file__).with_name("figure_frame.html")
PLOTLY_JS = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"


def cache_root() -> Path:
    """$ASAM_LAB_CACHE_DIR, else $XDG_CACHE_HOME/asam_lab, else ~/.cache/asam_lab."""
    if os.environ.get("ASAM_LAB_CACHE_DIR"):
        return Path(os.environ["ASAM_LAB_CACHE_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "asam_lab"


def served_folder(roots: tuple[Path, ...] | None = None) -> Path:
    """The folder the frame is served from: figure_frame.html as index.html and plotly.min.js, named
    by their contents so an upgrade never serves a stale copy.  Built in a scratch folder and renamed
    into place (another server building it at the same time is harmless); the first writable of
    ``roots`` (cache_root(), then the temp folder) holds it."""
    page = PAGE.read_bytes()
    digest = hashlib.sha256(page + plotly.__version__.encode()).hexdigest()[:16]
    problems = []
    for root in roots or (cache_root(), Path(tempfile.gettempdir())):
        folder = root / f"figure-frame-{digest}"
        if (folder / "index.html").is_file() and (folder / "plotly.min.js").is_file():
            return folder
        try:
            root.mkdir(parents=True, exist_ok=True)
            scratch = Path(tempfile.mkdtemp(prefix=".figure-frame-", dir=root))
            shutil.copyfile(PLOTLY_JS, scratch / "plotly.min.js")
            (scratch / "index.html").write_bytes(page)
            try:
                os.replace(scratch, folder)
            except OSError:  # built meanwhile by another process
                shutil.rmtree(scratch, ignore_errors=True)
            if (folder / "index.html").is_file():
                return folder
        except OSError as error:
            problems.append(f"{root}: {error.strerror or error}")
    raise RuntimeError(f"cannot write the figure frame into {'; '.join(problems)}: set ASAM_LAB_CACHE_DIR to a writable folder")


try:
    _frame, _problem = components.declare_component("figure_frame", path=str(served_folder())), None
except RuntimeError as error:  # drawn as a one-line error in place of each figure
    _frame, _problem = None, str(error)


def spec(figure: go.Figure | dict) -> str:
    """The figure (a plotly figure, or its JSON object: numpy arrays in it are converted in place) as
    plotly JSON, numpy arrays as typed base64 blocks as plotly's ``to_dict`` writes them: the JSON
    the frame receives."""
    if isinstance(figure, dict):
        convert_to_base64(figure)
    return plotly.io.to_json(figure, validate=False)


def draw(figure_json: str, key: str, fixed_size: bool = False) -> None:
    """Draw the figure (its JSON, ``spec``) in the frame called ``key``: the first time a new plot,
    after that an update in place.  ``fixed_size``: the figure's own width (narrowed to the column if
    wider), else the column's width."""
    if _frame is None:
        st.error(f"This figure cannot be drawn: {_problem}")
        return
    encoded = figure_json.encode()
    # The page re-renders a frame only when its JSON arguments change, not its bytes: the digest tells it.
    digest = hashlib.blake2b(encoded, digest_size=8).hexdigest()
    _frame(spec=encoded, digest=digest, fixed=fixed_size, key=key, default=None)
