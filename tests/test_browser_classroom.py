"""Real browser: the trajectories' play-back runs in the browser (no script rerun), their CSV is
built on click, Regions keep one scale for w1 and w2 at any window width, and the toy pages in presenter mode at a projector's 1400 x 900 (screenshots in
tests/artifacts/)."""
import pytest

from conftest import open_app_page, save_screenshot

pytestmark = pytest.mark.browser


def test_play_back_scrubs_in_the_browser_without_a_script_rerun(app_server, browser):
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    open_app_page(page, f"{app_server}/trajectories?traj_map=false")
    page.evaluate("""() => { window.__runs = 0; const app = document.querySelector('[data-testid="stApp"]');
        new MutationObserver(() => { if (app.getAttribute('data-test-script-state') === 'running') window.__runs++; })
        .observe(app, {attributes: true}); }""")
    label = page.locator(".st-key-traj_paths .slider-group > .slider-label").first
    assert "2000" in label.text_content()
    rail = page.locator(".st-key-traj_paths .slider-rail-rect").first.bounding_box()
    page.mouse.click(rail["x"] + rail["width"] * 0.3, rail["y"] + rail["height"] / 2)
    page.wait_for_timeout(1000)
    scrubbed = label.text_content()
    assert "2000" not in scrubbed and scrubbed.split()[-1].isdigit()
    assert page.evaluate("() => window.__runs") == 0
    page.close()


def test_the_trajectories_csv_is_built_when_clicked_and_holds_every_step(app_server, browser):
    page = browser.new_page(viewport={"width": 1400, "height": 900}, accept_downloads=True)
    open_app_page(page, f"{app_server}/trajectories?traj_steps=300")
    with page.expect_download(timeout=60_000) as download:
        page.get_by_text("Download the trajectories (CSV)").click()
    rows = open(download.value.path()).read().splitlines()
    assert download.value.suggested_filename == "trajectories.csv"
    assert rows[0] == "method,start,step,w1,w2,loss" and len(rows) == 1 + 3 * 301
    assert {row.split(",")[0] for row in rows[1:]} == {"sgd", "sam", "asam"}
    page.close()


@pytest.mark.parametrize("width", [1024, 1400])
def test_regions_draw_w1_and_w2_on_one_scale_in_a_narrow_and_a_wide_window(width, app_server, browser):
    """A sphere must look round: units per pixel equal on both axes of every region figure."""
    page = browser.new_page(viewport={"width": width, "height": 800})
    open_app_page(page, f"{app_server}/regions")
    page.wait_for_function("() => document.querySelectorAll('.js-plotly-plot').length === 4", timeout=60_000)
    scales = page.evaluate("""() => Array.from(document.querySelectorAll('.js-plotly-plot')).map(gd => {
        const x = gd._fullLayout.xaxis, y = gd._fullLayout.yaxis;
        return [(x.range[1] - x.range[0]) / x._length, (y.range[1] - y.range[0]) / y._length]; })""")
    assert len(scales) == 4
    for per_px_x, per_px_y in scales:
        assert per_px_y == pytest.approx(per_px_x, rel=0.01)
    page.close()


@pytest.mark.parametrize("path", ["regions", "noisy_labels?nl_steps=200"])
def test_toy_pages_in_presenter_mode(path, app_server, browser):
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    separator = "&" if "?" in path else "?"
    open_app_page(page, f"{app_server}/{path}{separator}present=true")
    name = path.split("?")[0]
    save_screenshot(page, f"presenter_{name}.png")
    assert page.locator('[data-testid="stException"]').count() == 0
    assert not page.locator('[data-testid="stHeader"]').is_visible()
    sidebar = page.evaluate("() => document.querySelector('[data-testid=\"stSidebar\"]').getBoundingClientRect().toJSON()")
    assert sidebar["right"] <= 1 or sidebar["width"] <= 1, sidebar
    page.close()
