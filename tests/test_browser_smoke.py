"""Real browser smoke test: every page registered in app.py opens in chromium without an error box
and draws every figure."""
import pytest

from conftest import figure_problems, open_app_page, registered_pages, running_app, save_screenshot

pytestmark = pytest.mark.browser


def test_app_py_registers_pages():
    pages = registered_pages()
    assert pages[0].url_path == "" and len({p.url_path for p in pages}) == len(pages)


@pytest.mark.parametrize("registered", registered_pages(), ids=lambda p: p.url_path or "home")
def test_page_opens_without_an_error_box(registered, app_server, browser_page):
    open_app_page(browser_page, f"{app_server}/{registered.url_path}")
    save_screenshot(browser_page, f"page_{registered.url_path or 'home'}.png")
    assert browser_page.locator('[data-testid="stException"]').count() == 0
    assert "Traceback" not in browser_page.inner_text("body")
    assert figure_problems(browser_page) == []
    sidebar = browser_page.inner_text('[data-testid="stSidebar"]')
    assert registered.title in sidebar


def test_a_shared_sub_page_url_works_on_a_fresh_server(browser_page):
    """The first visit after a restart goes through app.py (no legacy pages/ folder next to it)."""
    target = registered_pages()[1]
    with running_app("streamlit_fresh_server.log") as url:
        open_app_page(browser_page, f"{url}/{target.url_path}?regions_a=2.0")
        save_screenshot(browser_page, "fresh_server_sub_page.png")
    assert "Page not found" not in browser_page.inner_text("body")
    links = browser_page.locator('[data-testid="stSidebarNavLink"]').all_inner_texts()
    titles = [p.title for p in registered_pages()]
    assert len(links) == len(titles) and all(any(title in link for link in links) for title in titles), links
