"""AppTest of the teacher controls in the URL (views/teacher.py): hidden controls, locked presets,
presenter mode on every page, and the share box."""
from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from conftest import registered_pages

APP = str(Path(__file__).resolve().parents[1] / "app.py")
FIG3_STUCK = "Fig. 3: w0 = (0.3, 0.033)"
QUICK_MAP = {"traj_map": "false"}
SMALL_NOISY = {"nl_steps": "60", "nl_width": "8", "nl_n_train": "60"}


def open_page(page: str, query: dict[str, str]) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=180)
    at.query_params.update(query)
    at.run()
    at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def url(at: AppTest) -> dict[str, str]:
    return {k: v if isinstance(v, str) else v[-1] for k, v in at.query_params.items()}


def final_points(at: AppTest):
    (frame,) = at.table
    return frame.value


def test_hidden_controls_are_not_drawn_and_still_take_their_values_from_the_url():
    shown = open_page("views/trajectories.py", {**QUICK_MAP, "traj_rho": "0.2", "traj_eta": "0.05"})
    hidden = open_page("views/trajectories.py",
                       {**QUICK_MAP, "traj_rho": "0.2", "traj_eta": "0.05", "hide": "traj_rho,traj_eta"})
    keys = {slider.key for slider in hidden.slider}
    assert "traj_rho" not in keys and "traj_eta" not in keys and "traj_lr" in keys
    assert final_points(hidden).equals(final_points(shown))
    assert url(hidden)["traj_rho"] == "0.2" and url(hidden)["hide"] == "traj_rho,traj_eta"
    hidden.slider(key="traj_lr").set_value(0.01).run()
    assert url(hidden)["traj_rho"] == "0.2" and url(hidden)["traj_lr"] == "0.01"


def test_a_locked_preset_cannot_be_changed_and_only_open_controls_move():
    at = open_page("views/trajectories.py",
                   {**QUICK_MAP, "traj_preset": FIG3_STUCK, "traj_w1": "0.3", "traj_w2": "0.033",
                    "lock": "all", "open": "traj_rho"})
    assert at.selectbox(key="traj_preset").disabled and at.slider(key="traj_lr").disabled
    assert at.number_input(key="traj_w1").disabled and not at.slider(key="traj_rho").disabled
    before = final_points(at)
    at.session_state["traj_preset"] = "Fig. 3: w0 = (0.2, 0.05)"  # forced past the disabled box
    at.run()
    assert at.selectbox(key="traj_preset").value == FIG3_STUCK
    assert (at.number_input(key="traj_w1").value, at.number_input(key="traj_w2").value) == (0.3, 0.033)
    assert final_points(at).equals(before)
    at.slider(key="traj_rho").set_value(0.1).run()
    assert url(at)["traj_rho"] == "0.1" and not final_points(at).equals(before)


def test_a_callback_cannot_move_a_locked_control():
    at = open_page("views/trajectories.py", {**QUICK_MAP, "lock": "traj_lr", "traj_lr": "0.02"})
    at.selectbox(key="traj_preset").set_value(FIG3_STUCK).run()  # the preset callback sets the paper's lr
    assert at.slider(key="traj_lr").value == 0.02 and url(at)["traj_lr"] == "0.02"
    assert at.number_input(key="traj_w1").value == 0.3


@pytest.mark.parametrize("registered", registered_pages(), ids=lambda p: p.url_path or "home")
def test_presenter_mode_renders_every_page(registered, tmp_path, monkeypatch):
    monkeypatch.setenv("ASAM_LAB_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("ASAM_LAB_WORKER_AUTOSTART", "0")
    at = open_page(registered.script, {"present": "true", **QUICK_MAP, **SMALL_NOISY})
    assert any("stHeader" in element.proto.body for element in at.get("html"))
    assert not at.warning and at.title, "the page drew its title and no warning"


def test_a_bad_teacher_parameter_is_one_warning():
    at = open_page("views/regions.py", {"present": "maybe", "hide": "regions_a,<b>x</b>"})
    warnings = [w.value for w in at.warning]
    assert len(warnings) == 2 and any("present" in w for w in warnings) and any("`hide`" in w for w in warnings)
    assert "regions_a" not in {slider.key for slider in at.slider}
    assert not at.get("html")


def test_share_box_holds_the_url_of_this_view_and_a_qr_code():
    at = open_page("views/regions.py", {"regions_a": "2.0", "hide": "regions_eta"})
    (code,) = [c.value for c in at.code]
    assert "regions_a=2.0" in code and "hide=regions_eta" in code and "regions_rho=0.3" in code
    assert len(at.get("image")) == 1
