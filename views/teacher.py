"""Teacher controls in the URL (as TensorFlow Playground does it), and the "share this view" box.

    hide=traj_rho,traj_eta   these controls are not drawn; their values still come from the URL
    lock=traj_preset         these controls are drawn disabled, at their URL values
    lock=all&open=traj_rho   every control locked except those listed in ``open``: students explore
                             only what the teacher left open
    present=true             presenter mode: larger type, no sidebar or toolbar chrome, figures
                             sized for a projector

views.common applies hide and lock to every widget it draws; app.py applies presenter mode and
draws the share box (the page's URL with every control, and a QR code a class can scan).
"""
from __future__ import annotations

import io
import re
from urllib.parse import urlencode

import segno
import streamlit as st

HIDE, LOCK, OPEN, PRESENT = "hide", "lock", "open", "present"
ALL = "all"
_KEY = re.compile(r"^[A-Za-z0-9_]+$")
_BOOLEANS = {"true": True, "1": True, "false": False, "0": False}
PRESENTER_CSS = """
<style>
[data-testid="stHeader"], [data-testid="stToolbar"], [data-testid="stDecoration"] { display: none; }
[data-testid="stMainBlockContainer"] { padding-top: 1.5rem; max-width: 100%; }
[data-testid="stMainBlockContainer"] p, [data-testid="stMainBlockContainer"] li { font-size: 1.3rem; }
[data-testid="stMainBlockContainer"] h1 { font-size: 2.8rem; }
[data-testid="stCaptionContainer"] { font-size: 1.1rem; }
[data-testid="stMetricValue"] { font-size: 2.4rem; }
</style>
"""


def listed(param: str) -> set[str]:
    """The control keys named in the comma-separated URL parameter ``param`` (other names are
    ignored here and reported by check_url)."""
    raw = st.query_params.get(param, "")
    return {name.strip() for name in raw.split(",") if _KEY.match(name.strip())}


def hidden(key: str) -> bool:
    """Whether the teacher hid the control ``key``."""
    return key in listed(HIDE)


def locked(key: str) -> bool:
    """Whether the teacher locked the control ``key`` (by name, or with lock=all unless it is open)."""
    names = listed(LOCK)
    return key in names or (ALL in names and key not in listed(OPEN))


def presenter() -> bool:
    """Presenter mode (present=true or 1); anything else means off."""
    return _BOOLEANS.get(st.query_params.get(PRESENT, "false").lower(), False)


def check_url() -> None:
    """One warning per bad teacher parameter: a name that is not a control key, a bad present value."""
    from views.common import shown  # views.common imports this module

    for param in (HIDE, LOCK, OPEN):
        bad = [name for name in st.query_params.get(param, "").split(",") if name.strip() and not _KEY.match(name.strip())]
        if bad:
            st.warning(f"URL parameter `{param}` lists {shown(', '.join(bad))}, which are not control names: ignored.")
    raw = st.query_params.get(PRESENT)
    if raw is not None and raw.lower() not in _BOOLEANS:
        st.warning(f"URL parameter `{PRESENT}` = {shown(raw)} ignored: {PRESENT} must be true or false.")


def presenter_style() -> None:
    """Larger type and no header chrome (call once per run, when presenter() is on)."""
    st.html(PRESENTER_CSS)


def share_url() -> str:
    """The URL of this screen: the page's address in the browser and every control in the URL."""
    query = urlencode(st.query_params.to_dict())
    base = st.context.url or ""
    return f"{base}?{query}" if query else base


def qr_png(text: str, scale: int = 5) -> bytes:
    """``text`` as a QR code (PNG, error correction M).  Mask pattern 0: every mask is a valid code,
    and scoring all eight to pick one took 25 ms, the share box's whole cost on each slider move."""
    buffer = io.BytesIO()
    segno.make(text, error="m", mask=0).save(buffer, kind="png", scale=scale, border=2)
    return buffer.getvalue()


def share_box() -> None:
    """An expander with this view's URL (copy button) and its QR code."""
    url = share_url()
    with st.expander("Share this view", icon=":material/qr_code_2:"):
        st.code(url, language=None, wrap_lines=True)
        if url:
            st.image(qr_png(url), caption="Scan to open this exact screen", width=220)
        st.caption("Teacher controls: add hide=KEY,KEY to hide controls, lock=KEY (or lock=all&open=KEY) to fix "
                   "them, present=true for a projector.")
