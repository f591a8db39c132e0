"""Real browser smoke test: every page registered in app.py opens in chromium without an error box."""
import pytest

from conftest import open_app_page, registered_pages, save_screenshot

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
    sidebar = browser_page.inner_text('[data-testid="stSidebar"]')
    assert registered.title in sidebar
