"""Real browser: figures update in place, the trajectories' play-back runs in the browser (no script rerun), their CSV is
built on click, Regions keep one scale for w1 and w2 at any window width, and the toy pages in presenter mode at a projector's 1400 x 900 (screenshots in
tests/artifacts/)."""
import pytest

from conftest import figure_frames, open_app_page, save_screenshot

pytestmark = pytest.mark.browser


def test_play_back_scrubs_in_the_browser_without_a_script_rerun(app_server, browser):
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    open_app_page(page, f"{app_server}/trajectories?traj_map=false", figures=1)
    page.evaluate("""() => { window.__runs = 0; const app = document.querySelector('[data-testid="stApp"]');
        new MutationObserver(() => { if (app.getAttribute('data-test-script-state') === 'running') window.__runs++; })
        .observe(app, {attributes: true}); }""")
    figure = page.frame_locator(".st-key-traj_paths iframe")
    label = figure.locator(".slider-group > .slider-label").first
    assert "2000" in label.text_content()
    rail = figure.locator(".slider-rail-rect").first.bounding_box()
    page.mouse.click(rail["x"] + rail["width"] * 0.3, rail["y"] + rail["height"] / 2)
    page.wait_for_timeout(1000)
    scrubbed = label.text_content()
    assert "2000" not in scrubbed and scrubbed.split()[-1].isdigit()
    assert page.evaluate("() => window.__runs") == 0
    page.close()


def test_a_slider_move_updates_the_figure_in_place(app_server, browser):
    """After a move the figure frame and its plot are the same nodes (Plotly.react, no remount) and
    the paths are the new ones; the URL is written once (only the moved control changed)."""
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    open_app_page(page, f"{app_server}/trajectories?traj_map=false&traj_rho=0.05", figures=1)
    page.evaluate("() => { document.querySelector('.st-key-traj_paths iframe').dataset.mark = 'kept'; }")
    (frame,) = figure_frames(page)
    path_ends = """() => JSON.stringify(document.querySelector('.js-plotly-plot')._fullData
        .filter(t => t.mode === 'lines' && t.x && t.x.length > 2).map(t => Array.from(t.x).slice(-1)))"""
    before = frame.evaluate(path_ends)
    assert before.count("[") == 1 + 7  # the valley, three paths, three running minima
    frame.evaluate("() => { document.querySelector('.js-plotly-plot').dataset.mark = 'kept'; }")
    page.evaluate("""() => { window.urlWrites = []; window.addEventListener('message', (event) => {
        if (event.data && event.data.type === 'SET_QUERY_PARAM') window.urlWrites.push(event.data.queryParams); }); }""")
    page.locator(".st-key-traj_rho input[type=range]").first.focus()
    page.keyboard.press("ArrowRight")
    page.wait_for_function("() => new URLSearchParams(location.search).get('traj_rho') === '0.06'", timeout=60_000)
    frame.wait_for_function(f"() => ({path_ends})() !== {before!r}", timeout=60_000)
    page.wait_for_selector('[data-testid="stApp"][data-test-script-state="notRunning"]', timeout=60_000)
    writes = page.evaluate("() => window.urlWrites")  # Streamlit's echo of the URL as the run starts, then ours
    assert len(writes) <= 2 and "traj_rho=0.06" in writes[-1], len(writes)
    assert page.evaluate("() => document.querySelector('.st-key-traj_paths iframe').dataset.mark") == "kept"
    assert frame.evaluate("() => document.querySelector('.js-plotly-plot').dataset.mark") == "kept"
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
    open_app_page(page, f"{app_server}/regions", figures=4)
    scales = [frame.evaluate("""() => { const gd = document.querySelector('.js-plotly-plot');
        const x = gd._fullLayout.xaxis, y = gd._fullLayout.yaxis;
        return [(x.range[1] - x.range[0]) / x._length, (y.range[1] - y.range[0]) / y._length]; }""")
              for frame in figure_frames(page)]
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
