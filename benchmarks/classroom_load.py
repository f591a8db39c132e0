"""A class on one server: N concurrent sessions move sliders on the toy pages.

One ``streamlit run app.py`` server and N sessions, spread over the toy pages (regions,
trajectories, scale invariance, noisy labels), all starting from the page's default preset as a
class following the teacher would (shared results come from st.cache_data).  After every
session's page has loaded, each moves one of its page's sliders every 1-3 s for ``--seconds``.

Two kinds of student:
  * ``--client ws`` (default): a Streamlit websocket client, what a browser tab sends and receives
    without drawing anything (each student's own laptop draws the figures).  Latency: the widget
    change sent -> the script-finished message received (the rerun, its figures serialized and
    transferred).  A move picks a value from a few per slider, so students share results.
  * ``--client browser``: one headless Chromium context per student; latency is input -> idle as
    in benchmarks/page_latency.py.  On a 2-core machine the N tabs drawing plotly figures compete
    with the server for the same cores, so this measures the machine more than the server.

Prints, per N: moves, p50 / p95 / max latency, errors (an exception, a move that does not finish
within 30 s, a closed websocket: a dropped session) and the server's peak resident memory.

Usage: python -m benchmarks.classroom_load [--sessions 1,5,10,20] [--seconds 60] [--client ws|browser]
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

import websockets
from playwright.async_api import Browser, async_playwright
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from streamlit.proto.WidgetStates_pb2 import WidgetState

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


VALUES = {  # slider key -> the values a student picks from
    "regions_a": [2.0, 2.5, 3.0, 3.5, 4.0], "regions_rho": [0.2, 0.3, 0.4, 0.5], "regions_eta": [0.0, 0.05, 0.1],
    "traj_lr": [0.004, 0.005, 0.006, 0.008], "traj_rho": [0.03, 0.05, 0.08, 0.1], "traj_eta": [0.0, 0.01, 0.02],
    "traj_momentum": [0.0, 0.5, 0.9], "si_a": [0.316, 1.0, 3.16, 10.0], "si_rho": [0.03, 0.05, 0.1], "nl_snapshot": [0, 500, 1000],
}
SELECT_SLIDERS = {"si_a", "nl_snapshot"}  # st.select_slider: the option's text is the state


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


class Session:
    """A Streamlit websocket client on one page: runs the script and remembers the widget ids."""

    def __init__(self, socket, page: str):
        self.socket, self.page, self.ids, self.states = socket, page, {}, {}

    async def rerun(self, timeout: float = MOVE_TIMEOUT_S) -> None:
        """Send a rerun with every widget value moved so far; return when the script finished
        (TimeoutError when no message comes for ``timeout`` seconds)."""
        message = BackMsg()
        message.rerun_script.page_name = self.page
        message.rerun_script.widget_states.widgets.extend(self.states.values())
        await self.socket.send(message.SerializeToString())
        while True:
            incoming = ForwardMsg()
            incoming.ParseFromString(await asyncio.wait_for(self.socket.recv(), timeout))
            if incoming.WhichOneof("type") == "delta" and incoming.delta.WhichOneof("type") == "new_element":
                element = incoming.delta.new_element
                kind = element.WhichOneof("type")
                if kind == "exception":
                    raise RuntimeError(f"exception: {element.exception.message[:60]}")
                widget_id = getattr(getattr(element, kind), "id", "")
                if isinstance(widget_id, str) and widget_id:
                    self.ids[widget_id.rsplit("-", 1)[-1]] = widget_id
            if incoming.WhichOneof("type") == "script_finished":
                return

    def move(self, key: str, value: float) -> None:
        state = WidgetState(id=self.ids[key])
        if key in SELECT_SLIDERS:
            state.string_array_value.data.append(str(value))
        else:
            state.double_array_value.data.append(value)
        self.states[key] = state


async def ws_student(url: str, path: str, seconds: float, start: asyncio.Event, ready: list[str], tally: Tally,
                     seed: int) -> None:
    """One websocket session: load ``path``, wait for the class, then move sliders for ``seconds``."""
    rng = random.Random(seed)
    try:
        socket = await websockets.connect(url.replace("http", "ws", 1) + "/_stcore/stream", subprotocols=["streamlit"],
                                          max_size=None, open_timeout=PAGE_RUN_TIMEOUT_MS / 1000)
        session = Session(socket, path)
        await session.rerun(timeout=PAGE_RUN_TIMEOUT_MS / 1000)  # a class opening pages together
    except Exception as error:
        tally.errors.append(f"{path}: did not load ({type(error).__name__})")
        ready.append(path)
        return
    ready.append(path)
    await start.wait()
    deadline = time.monotonic() + seconds
    async with socket:
        while time.monotonic() < deadline:
            await asyncio.sleep(rng.uniform(1.0, 3.0))
            key = rng.choice(PAGES[path])
            session.move(key, rng.choice(VALUES[key]))
            began = time.perf_counter()
            try:
                await session.rerun()
            except websockets.ConnectionClosed:
                tally.errors.append(f"{path}: websocket closed (session dropped)")
                return
            except Exception as error:
                tally.errors.append(f"{path}/{key}: {type(error).__name__} {error}")
                continue
            tally.latencies.append(1000 * (time.perf_counter() - began))


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


async def classroom(url: str, sessions: int, seconds: float, seed: int, client: str) -> Tally:
    tally, ready = Tally(), []
    start = asyncio.Event()
    paths = [list(PAGES)[i % len(PAGES)] for i in range(sessions)]
    if client == "ws":
        tasks = [asyncio.create_task(ws_student(url, path, seconds, start, ready, tally, seed + i))
                 for i, path in enumerate(paths)]
        while len(ready) < sessions:
            await asyncio.sleep(0.5)
        start.set()
        await asyncio.gather(*tasks)
        return tally
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--headless", "--no-sandbox"])
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
    parser.add_argument("--client", choices=("ws", "browser"), default="ws")
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.2f}; {args.client} clients, {args.seconds:g} s of slider moves "
          "per session; latencies in ms")
    print(f"{'N':>3} {'moves':>6} {'p50 ms':>7} {'p95 ms':>7} {'max ms':>7} {'errors':>6} {'server MB':>10}")
    for count in (int(n) for n in args.sessions.split(",")):
        with running_app(f"classroom_{count}.log") as url:
            watch = MemoryWatch(server_pid(int(url.rsplit(":", 1)[1])))
            watch.start()
            tally = asyncio.run(classroom(url, count, args.seconds, args.seed, args.client))
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
