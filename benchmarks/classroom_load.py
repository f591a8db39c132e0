"""A class on one server: N concurrent browser sessions move sliders on the toy pages.

One ``streamlit run app.py`` server; N browser contexts (one Streamlit session each) in one headless
Chromium.  The sessions are spread over the toy pages (regions, trajectories, scale invariance,
noisy labels) and all start from the page's default preset, as a class following the teacher
would, so shared results come from st.cache_data.  After every page has loaded, each session moves
one of its page's sliders one step (left or right at random) every 1-3 s for ``--seconds`` and
measures input -> idle as benchmarks/page_latency.py does (the last DOM change, the script done).

Prints, per N: moves, p50 / p95 / max latency, errors (an exception box, a move that never goes
idle within 30 s, a websocket that closes: a dropped session) and the server's peak resident
memory.  Note that the N browser tabs render their plotly figures on the same cores as the server.

Usage: python -m benchmarks.classroom_load [--sessions 1,5,10,20] [--seconds 60]
"""
from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from playwright.async_api import Browser, async_playwright

from benchmarks.page_latency import QUIET_MS, _OBSERVE, percentile
from tests.conftest import CHROMIUM, PAGE_RUN_TIMEOUT_MS, running_app

MOVE_TIMEOUT_S = 30
UNCHANGED_MS = 3000  # no DOM change this long after a move: the slider was at its end
PAGES = {  # page path -> slider keys a student moves
    "regions": ["regions_a", "regions_rho", "regions_eta"],
    "trajectories": ["traj_lr", "traj_rho", "traj_eta", "traj_momentum"],
    "scale_invariance": ["si_a", "si_rho"],
    "noisy_labels": ["nl_snapshot"],
}


@dataclass
class Tally:
    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def server_pid(port: int) -> int:
    """The pid of the streamlit process serving ``port`` (read from /proc)."""
    needle = f"--server.port\x00{port}\x00".encode()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if needle in (entry / "cmdline").read_bytes():
                    return int(entry.name)
            except OSError:
                continue
    raise RuntimeError(f"no server process on port {port}")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class MemoryWatch(threading.Thread):
    """Samples the server's resident memory every 0.5 s; ``peak`` in MB."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid, self.peak, self.stop = pid, 0.0, threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            self.peak = max(self.peak, rss_mb(self.pid))
            time.sleep(0.5)


async def student(browser: Browser, url: str, path: str, seconds: float, start: asyncio.Event, ready: list[str],
                  tally: Tally, seed: int) -> None:
    """One session: open ``path``, wait for the class to be ready, then move sliders for ``seconds``."""
    rng = random.Random(seed)
    context = await browser.new_context(viewport={"width": 1400, "height": 900})
    page = await context.new_page()
    dropped: list[str] = []
    page.on("websocket", lambda ws: ws.on("close", lambda _: dropped.append("websocket closed")))
    try:
        await page.goto(f"{url}/{path}", wait_until="domcontentloaded")
        await page.wait_for_selector('[data-testid="stApp"][data-test-script-state="notRunning"] '
                                     '[data-testid="stMainBlockContainer"] [data-testid="stElementContainer"]',
                                     timeout=PAGE_RUN_TIMEOUT_MS)
        await page.evaluate(_OBSERVE)
    except Exception as error:  # a page that never loads is an error of this session
        tally.errors.append(f"{path}: did not load ({type(error).__name__})")
        ready.append(path)
        await context.close()
        return
    ready.append(path)
    await start.wait()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not dropped:
        await asyncio.sleep(rng.uniform(1.0, 3.0))
        key = rng.choice(PAGES[path])
        try:
            await page.locator(f".st-key-{key} input[type=range]").first.focus()
            began = await page.evaluate("() => performance.now()")
            await page.keyboard.press(rng.choice(["ArrowLeft", "ArrowRight"]))
            tally.latencies.append(await idle(page, began))
        except Exception as error:
            tally.errors.append(f"{path}/{key}: {type(error).__name__}")
            continue
        if await page.locator('[data-testid="stException"]').count():
            tally.errors.append(f"{path}/{key}: exception box")
    tally.errors.extend(f"{path}: {reason}" for reason in dropped)
    await context.close()


async def idle(page, began: float) -> float:
    """Milliseconds from ``began`` to the last DOM change once the page is idle (a move to a value
    the slider already has, at either end, changes nothing and counts as 0)."""
    deadline = time.monotonic() + MOVE_TIMEOUT_S
    while True:
        await asyncio.sleep(0.1)
        state = await page.evaluate(
            "() => ({now: performance.now(), last: window.__last, state: document.querySelector("
            "'[data-testid=\"stApp\"]').getAttribute('data-test-script-state')})")
        settled = state["state"] != "running" and state["now"] - state["last"] > QUIET_MS
        if settled and state["last"] > began:
            return state["last"] - began
        if settled and state["now"] - began > UNCHANGED_MS:
            return 0.0
        if time.monotonic() > deadline:
            raise TimeoutError("never idle")


async def classroom(url: str, sessions: int, seconds: float, seed: int) -> Tally:
    tally, ready = Tally(), []
    start = asyncio.Event()
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--headless", "--no-sandbox"])
        paths = [list(PAGES)[i % len(PAGES)] for i in range(sessions)]
        tasks = [asyncio.create_task(student(browser, url, path, seconds, start, ready, tally, seed + i))
                 for i, path in enumerate(paths)]
        while len(ready) < sessions:
            await asyncio.sleep(0.5)
        start.set()
        await asyncio.gather(*tasks)
        await browser.close()
    return tally


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", default="1,5,10,20")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.2f}; {args.seconds:g} s of slider moves per session")
    print(f"{'N':>3} {'moves':>6} {'p50 ms':>7} {'p95 ms':>7} {'max ms':>7} {'errors':>6} {'server MB':>10}")
    for count in (int(n) for n in args.sessions.split(",")):
        with running_app(f"classroom_{count}.log") as url:
            watch = MemoryWatch(server_pid(int(url.rsplit(":", 1)[1])))
            watch.start()
            tally = asyncio.run(classroom(url, count, args.seconds, args.seed))
            watch.stop.set()
            watch.join()
        moved = [ms for ms in tally.latencies if ms > 0] or [0.0]
        print(f"{count:>3} {len(tally.latencies):>6} {statistics.median(moved):>7.0f} {percentile(moved, 0.95):>7.0f} "
              f"{max(moved):>7.0f} {len(tally.errors):>6} {watch.peak:>10.0f}", flush=True)
        for error in sorted(set(tally.errors)):
            print(f"      error: {error} (x{tally.errors.count(error)})")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
