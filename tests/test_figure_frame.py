"""views.figure_frame: the folder its frame is served from, and what each draw sends."""
import hashlib
import json

import plotly.graph_objects as go
import pytest
from streamlit.testing.v1 import AppTest

from views import figure_frame


def test_the_served_folder_holds_the_page_and_plotly_js_and_is_built_once(tmp_path):
    folder = figure_frame.served_folder((tmp_path,))
    assert (folder / "index.html").read_bytes() == figure_frame.PAGE.read_bytes()
    assert (folder / "plotly.min.js").read_bytes() == figure_frame.PLOTLY_JS.read_bytes()
    stamp = (folder / "plotly.min.js").stat().st_mtime_ns
    assert figure_frame.served_folder((tmp_path,)) == folder
    assert (folder / "plotly.min.js").stat().st_mtime_ns == stamp
    assert [p.name for p in tmp_path.iterdir()] == [folder.name], "no scratch folder left behind"


def test_an_unwritable_root_falls_back_to_the_next_and_none_gives_one_line(tmp_path):
    blocked = tmp_path / "a_file"
    blocked.write_text("not a folder")
    fallback = tmp_path / "fallback"
    assert figure_frame.served_folder((blocked, fallback)).parent == fallback
    with pytest.raises(RuntimeError, match="set ASAM_LAB_CACHE_DIR to a writable folder") as error:
        figure_frame.served_folder((blocked / "x", blocked / "y"))
    assert "\n" not in str(error.value) and str(blocked / "x") in str(error.value)


def test_the_cache_root_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("ASAM_LAB_CACHE_DIR", str(tmp_path / "mine"))
    assert figure_frame.cache_root() == tmp_path / "mine"
    monkeypatch.delenv("ASAM_LAB_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert figure_frame.cache_root() == tmp_path / "xdg" / "asam_lab"


def _page(level: float) -> None:
    import plotly.graph_objects as go

    from views import figure_frame

    figure_frame.draw(figure_frame.spec(go.Figure(go.Scatter(x=[0, 1], y=[level, level]))), key="line")


def test_each_draw_sends_the_figure_bytes_with_their_digest_under_one_identity():
    """The page re-renders the frame only when its JSON arguments change: a new figure must change
    the digest, and the key must keep the element's identity (an update, not a new frame)."""
    sent = []
    for level in (1.0, 2.0):
        at = AppTest.from_function(_page, args=(level,)).run()
        (element,) = at.get("component_instance")
        (spec,) = [arg.bytes for arg in element.proto.special_args if arg.key == "spec"]
        arguments = json.loads(element.proto.json_args)
        assert arguments["digest"] == hashlib.blake2b(spec, digest_size=8).hexdigest()
        assert json.loads(spec)["data"][0]["y"] == [level, level]
        sent.append((element.proto.id, arguments["digest"]))
    (first_id, first_digest), (second_id, second_digest) = sent
    assert first_id == second_id and first_digest != second_digest


def test_spec_is_plotly_json_of_the_figure():
    figure = go.Figure(go.Scatter(x=[0, 1], y=[2, 3]), layout=dict(title="t"))
    assert json.loads(figure_frame.spec(figure)) == json.loads(figure.to_json())


def test_without_a_served_folder_each_figure_is_a_one_line_error(monkeypatch):
    monkeypatch.setattr(figure_frame, "_frame", None)
    monkeypatch.setattr(figure_frame, "_problem", "cannot write the figure frame into /x: set ASAM_LAB_CACHE_DIR")
    at = AppTest.from_function(_page, args=(1.0,)).run()
    assert not at.exception and not at.get("component_instance")
    assert [e.value for e in at.error] == ["This figure cannot be drawn: cannot write the figure frame into /x: "
                                          "set ASAM_LAB_CACHE_DIR"]
