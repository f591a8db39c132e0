"""AppTest of the home page and the two toy pages: they render, react to widgets, and their URL reproduces them."""
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parents[1] / "app.py")
FIG3_STUCK = "Fig. 3: w0 = (0.3, 0.033)"
SMALL_MAP = {"traj_map": "true", "traj_map_n": "25", "traj_map_steps": "200"}


def open_page(page: str | None, query: dict[str, str] | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=180)
    at.query_params.update(query or {})
    at.run()
    if page:
        at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def table(at: AppTest):
    """The page's only table (the sharpness table, or the final points) with its row labels as a column."""
    (frame,) = at.table
    return frame.value.reset_index()


def test_home_explains_sam_asam_and_the_pages():
    at = open_page(None)
    assert len(at.latex) >= 4
    text = " ".join(m.value for m in at.markdown)
    for words in ("SAM", "ASAM", "Maximization regions", "Trajectories", "Figure 1", "Figure 3"):
        assert words in text


def test_regions_table_shows_theorem_1_and_follows_the_rho_slider():
    at = open_page("views/regions.py")
    before = table(at).set_index("region")
    assert list(before["equal (1e-6)"]) == ["no", "yes", "yes", "yes"]
    assert before.loc["cuboid", "sharpness at w"] == before.loc["cuboid", "sharpness at w′"]
    assert any("Theorem 1, computed" in s.value for s in at.success)
    at.slider(key="regions_rho").set_value(0.5).run()
    after = table(at).set_index("region")
    assert at.query_params["regions_rho"] == ["0.5"] or at.query_params["regions_rho"] == "0.5"
    assert float(after.loc["sphere", "sharpness at w′"]) > float(before.loc["sphere", "sharpness at w′"])
    assert list(after["equal (1e-6)"]) == ["no", "yes", "yes", "yes"]


def test_regions_url_reproduces_the_screen_and_eta_is_explained():
    query = {"regions_a": "2.0", "regions_rho": "0.5", "regions_eta": "0.1", "regions_p": "inf", "regions_loss": "product"}
    first = open_page("views/regions.py", query)
    assert first.slider(key="regions_a").value == 2.0 and first.selectbox(key="regions_p").value == "inf"
    assert any("η = 0.1" in info.value for info in first.info)
    assert "no" in list(table(first)["equal (1e-6)"])[1:]
    shared = {k: v if isinstance(v, str) else v[0] for k, v in first.query_params.items()}
    second = open_page("views/regions.py", shared)
    assert table(second).equals(table(first))


def test_a_bad_url_value_is_ignored_with_a_warning():
    at = open_page("views/regions.py", {"regions_rho": "lots"})
    assert at.slider(key="regions_rho").value == 0.3
    assert any("regions_rho" in w.value for w in at.warning)


def test_trajectories_presets_show_figure_3():
    at = open_page("views/trajectories.py", SMALL_MAP)
    rows = table(at).set_index("method")
    assert rows.loc["SAM", "w₁ / w₂"] == pytest.approx(1.0, abs=0.05)
    assert rows.loc["ASAM", "w₁ / w₂"] > 1.4
    at.selectbox(key="traj_preset").set_value(FIG3_STUCK).run()
    assert (at.number_input(key="traj_w1").value, at.number_input(key="traj_w2").value) == (0.3, 0.033)
    rows = table(at).set_index("method")
    assert rows.loc["SAM", "distance moved"] == 0.0
    assert rows.loc["ASAM", "w₁·w₂"] == pytest.approx(0.04, abs=2e-3)
    assert any("SAM: " in c.value and "stuck" in c.value for c in at.caption)


def test_trajectories_follow_the_learning_rate_and_keep_it_in_the_url():
    at = open_page("views/trajectories.py", {**SMALL_MAP, "traj_map": "false", "traj_steps": "500"})
    before = table(at)
    at.slider(key="traj_lr").set_value(0.05).run()
    assert not at.exception
    assert not table(at).equals(before)
    assert at.query_params["traj_lr"] in ("0.05", ["0.05"])


def test_trajectories_url_reproduces_a_custom_scenario():
    query = {**SMALL_MAP, "traj_map": "false", "traj_preset": "custom start", "traj_w1": "0.15", "traj_w2": "0.1",
             "traj_lr": "0.01", "traj_steps": "300", "traj_p": "inf", "traj_momentum": "0.5"}
    first = open_page("views/trajectories.py", query)
    assert first.number_input(key="traj_w1").value == 0.15 and first.slider(key="traj_steps").value == 300
    assert first.selectbox(key="traj_p").value == "inf" and first.slider(key="traj_momentum").value == 0.5
    shared = {k: v if isinstance(v, str) else v[0] for k, v in first.query_params.items()}
    second = open_page("views/trajectories.py", shared)
    assert table(second).equals(table(first))
