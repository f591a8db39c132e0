"""Shared fixtures: the app's registered pages, a real `streamlit run` server, and a Playwright browser.

Use them to screenshot a page::

    def test_my_page(browser_page, app_server):
        open_app_page(browser_page, app_server + "/my_page")
        save_screenshot(browser_page, "my_page.png")

Without /usr/bin/chromium (or the playwright package) browser tests are skipped, unless
ASAM_REQUIRE_BROWSER=1, which turns the skip into a failure (CI installs chromium).
"""
from __future__ import annotations

import ast
import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "tests" / "artifacts"
CHROMIUM = Path("/usr/bin/chromium")
SERVER_START_TIMEOUT_S = 120
PAGE_RUN_TIMEOUT_MS = 240_000


@dataclass(frozen=True)
class RegisteredPage:
    """One st.Page(...) of app.py's PAGES list and the URL path Streamlit serves it at."""

    script: str
    title: str
    url_path: str


def registered_pages(app: Path = ROOT / "app.py") -> list[RegisteredPage]:
    """Every st.Page in app.py's PAGES list, in order (read from the source, no Streamlit import)."""
    tree = ast.parse(app.read_text())
    pages = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "PAGES" for t in node.targets):
            for call in node.value.elts:
                kwargs = {k.arg: ast.literal_eval(k.value) for k in call.keywords}
                script = ast.literal_eval(call.args[0])
                url_path = "" if kwargs.get("default") else kwargs.get("url_path", Path(script).stem)
                pages.append(RegisteredPage(script, kwargs.get("title", Path(script).stem), url_path))
    return pages


def figure_specs(at) -> list[dict]:
    """The plotly figures an AppTest page drew through views.figure_frame, as JSON objects, in page order."""
    frames = [e for e in at.get("component_instance") if e.proto.component_name.endswith("figure_frame")]
    return [json.loads(next(a.bytes for a in e.proto.special_args if a.key == "spec")) for e in frames]


def artifact_path(name: str) -> str:
    """Where a test writes a file to look at afterwards (tests/artifacts/, git-ignored)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return str(ARTIFACTS / name)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _need_browser(reason: str) -> None:
    if os.environ.get("ASAM_REQUIRE_BROWSER") == "1":
        pytest.fail(f"ASAM_REQUIRE_BROWSER=1 but {reason}")
    pytest.skip(reason)


@contextlib.contextmanager
def running_app(log_name: str = "streamlit_server.log", root: Path = ROOT, env: dict[str, str] | None = None) -> Iterator[str]:
    """`streamlit run app.py` of the checkout at ``root`` on a free local port (``env`` added to the
    environment); yields its base URL and stops it afterwards."""
    port = free_port()
    command = [
        sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port), "--server.address", "127.0.0.1",
        "--server.headless", "true", "--browser.gatherUsageStats", "false",
    ]
    log = open(artifact_path(log_name), "w")
    runs_dir = tempfile.mkdtemp(prefix="asam-lab-runs-")
    env = {**os.environ, "ASAM_LAB_RUNS_DIR": runs_dir, "ASAM_LAB_WORKER_AUTOSTART": "0", **(env or {})}
    process = subprocess.Popen(command, cwd=root, stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"streamlit did not start; see {log.name}") from None
                time.sleep(0.5)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()
        shutil.rmtree(runs_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def app_server() -> Iterator[str]:
    """One app server for the whole session (see running_app)."""
    with running_app() as url:
        yield url


@pytest.fixture(scope="session")
def browser():
    """Debian's chromium driven by Playwright (headless)."""
    if not CHROMIUM.exists():
        _need_browser(f"{CHROMIUM} is missing (apt-get install -y chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _need_browser("the playwright package is not installed")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=["--headless", "--no-sandbox", "--disable-gpu"]
        )
        yield browser
        browser.close()


@pytest.fixture
def browser_page(browser):
    """A fresh tab, 1600 x 1000."""
    page = browser.new_page(viewport={"width": 1600, "height": 1000})
    yield page
    page.close()


def open_app_page(page, url: str, figures: int = 0) -> None:
    """Load ``url`` and wait until the Streamlit script has finished and its figures (at least
    ``figures`` of them) are drawn."""
    page.goto(url, wait_until="domcontentloaded")
    page.wait_for_selector('[data-testid="stMainBlockContainer"] [data-testid="stElementContainer"]',
                           timeout=PAGE_RUN_TIMEOUT_MS)
    page.wait_for_selector('[data-testid="stApp"][data-test-script-state="notRunning"]', timeout=PAGE_RUN_TIMEOUT_MS)
    page.wait_for_timeout(1500)
    page.wait_for_function(_FIGURES_SETTLED, arg=figures, timeout=PAGE_RUN_TIMEOUT_MS)  # frames mount after the script's end


_FIGURE_FRAMES = 'Array.from(document.querySelectorAll(\'iframe[src*="figure_frame"]\')).map(f => f.contentDocument)'
_FIGURES_SETTLED = f"""(count) => {{ const docs = {_FIGURE_FRAMES}; return docs.length >= count && docs.every(d => d
    && d.getElementById('problem') && (d.querySelector('.js-plotly-plot .main-svg') || !d.getElementById('problem').hidden)); }}"""


def figure_frames(page) -> list:
    """The frames of views.figure_frame on ``page`` (one plotly figure each)."""
    return [frame for frame in page.frames if "figure_frame" in frame.url]


def figure_problems(page) -> list[str]:
    """The messages of the figure frames that could not draw their figure."""
    return page.evaluate(f"() => {_FIGURE_FRAMES}.map(d => d.getElementById('problem')).filter(e => !e.hidden)"
                         ".map(e => e.textContent)")


def save_screenshot(page, name: str, max_height: int = 8000) -> str:
    """Screenshot the whole app: the viewport is grown to the main area's scroll height first
    (Streamlit scrolls inside its main container, so full_page alone stops at the viewport)."""
    height = page.evaluate(
        "() => Math.max(...['[data-testid=\"stMain\"]', '[data-testid=\"stSidebarContent\"]']"
        ".map(s => document.querySelector(s)).filter(Boolean).map(e => e.scrollHeight))"
    )
    width = page.viewport_size["width"]
    page.set_viewport_size({"width": width, "height": min(max(height, 600), max_height)})
    page.wait_for_timeout(800)
    path = artifact_path(name)
    page.screenshot(path=path, full_page=True)
    return path


@pytest.fixture(scope="module")
def one_torch_thread() -> Iterator[None]:
    """Tiny models: one torch thread for the module (two stall on a shared machine, see benchmarks/README.md)."""
    from toy_problems.threads import torch_threads

    with torch_threads(1):
        yield


@pytest.fixture
def app_store(tmp_path, monkeypatch):
    """A run store in a temporary folder, the one the app's pages open (ASAM_LAB_RUNS_DIR); no worker
    is started for it."""
    from asam_core.runs.store import RunStore

    monkeypatch.setenv("ASAM_LAB_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("ASAM_LAB_WORKER_AUTOSTART", "0")
    return RunStore(tmp_path / "runs")


def open_view(page: str, query: dict[str, str] | None = None):
    """AppTest of views/<page>.py on its own with ``query`` in its URL, run once without an exception."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "views" / f"{page}.py"), default_timeout=60)
    for key, value in (query or {}).items():
        at.query_params[key] = value
    at.run()
    assert not at.exception, at.exception
    return at


def wait_for(condition, what: str, timeout: float = 300.0) -> None:
    """Poll ``condition`` every 50 ms until it holds; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.05)
