"""A URL value shown in a warning is inert text: shortened, every Markdown character escaped."""
from __future__ import annotations

from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st
from streamlit.testing.v1 import AppTest

from views.common import SHOWN_CHARS, shown

ROOT = Path(__file__).resolve().parents[1]
ATTACK = "[link](http://evil.example/a) ![img](http://evil.example/i.png) <http://evil.example> `x`"


def test_a_link_and_an_image_in_the_url_are_shown_as_text_on_a_page():
    at = AppTest.from_file(str(ROOT / "views" / "regions.py"), default_timeout=60)
    at.query_params["regions_rho"] = ATTACK
    at.run()
    (warning,) = [w.value for w in at.warning if "regions_rho" in w.value]
    assert "](http" not in warning and "<http" not in warning and "http://" not in warning
    assert shown(ATTACK) in warning


@given(st.text())
def test_shown_is_short_single_line_and_escapes_every_markdown_character(raw):
    text = shown(raw)
    unescaped = text.replace("\\\\", "").replace("\\", "")
    assert "\n" not in text and len(unescaped) <= SHOWN_CHARS + 1
    for i, char in enumerate(text):
        if char in "[]()!<>`*_#|~$:":
            assert text[i - 1] == "\\", (raw, text)
