"""Input -> idle latency of the toy pages' controls, in the real app driven by headless Chromium.

For every page and control (a slider moved one step with the keyboard, or a click on the
play-back slider drawn inside a plotly figure) it measures, in the browser:

  total    input -> the last DOM change (the page is idle when nothing changed for 0.5 s and
           the script is not running);
  to run   input -> Streamlit marks the script as running (debounce + websocket);
  server   the script run as the browser sees it (running -> not running: the Python compute,
           the rest of the script rerun, figure serialization, the websocket transfer of its
           deltas, which streams while the script runs);
  render   script done -> the last DOM change (plotly drawing the new figures in the browser);
  KB       bytes the server sent over the websocket for the interaction.

Each control moves to a value not seen before (so the compute is never a cache hit), ``--repeat``
times; the script prints median and p95 (with 5 repeats, p95 is about the slowest).  With several
``--root`` checkouts (e.g. a ``git worktree`` of an older commit), one server per checkout runs
side by side and the checkouts take turns control by control, so the ratios share the machine's
load.

Usage: python -m benchmarks.page_latency [--repeat 5] [--pages regions,trajectories,...] [--root DIR ...]
"""
from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

from playwright.sync_api import Page, sync_playwright

from tests.conftest import CHROMIUM, ROOT, open_app_page, running_app

QUIET_MS = 500
TIMEOUT_S = 120
VIEWPORT = {"width": 1400, "height": 900}

_OBSERVE = """() => {
  window.__last = performance.now(); window.__runStart = null; window.__runEnd = null;
  const app = document.querySelector('[data-testid="stApp"]');
  const watched = new WeakSet();
  const watch = (doc) => {  // the page and every figure frame (views.figure_frame: same origin)
    if (!doc || watched.has(doc)) return;
    watched.add(doc);
    new MutationObserver((records) => {
      const now = performance.now();
      for (const r of records) {
        if (r.target === app && r.attributeName === 'data-test-script-state') {
          if (app.getAttribute('data-test-script-state') === 'running') window.__runStart ??= now;
          else if (window.__runStart !== null) window.__runEnd = now;
        }
      }
      window.__last = now;
      frames();
    }).observe(doc, {subtree: true, childList: true, attributes: true, characterData: true});
  };
  const frames = () => document.querySelectorAll('iframe').forEach((frame) => {
    try { watch(frame.contentDocument); } catch (error) {}
  });
  watch(document);
  frames();
}"""


@dataclass(frozen=True)
class Control:
    """A control of a page: a Streamlit slider by its widget key (``new|old``: the first one the
    page has, so older checkouts can be measured), or ``playback``, the trajectories' play-back."""

    key: str
    label: str
    press: str = "ArrowRight"  # ArrowLeft for a slider that starts at its maximum


@dataclass(frozen=True)
class Sample:
    total: float
    to_run: float | None
    server: float | None
    render: float
    kilobytes: float


PAGES: dict[str, tuple[str, list[Control]]] = {
    "regions": ("regions", [Control("regions_a", "a"), Control("regions_rho", "ρ"), Control("regions_eta", "η")]),
    "playback": ("trajectories", [Control("playback", "play-back")]),
    "trajectories": ("trajectories", [
        Control("traj_lr", "learning rate α"), Control("traj_rho", "ρ"), Control("traj_eta", "η"),
        Control("traj_momentum", "momentum"), Control("traj_steps", "steps"), Control("traj_map_steps", "map steps"),
    ]),
    "scale_invariance": ("scale_invariance", [Control("si_a|si_log_a", "a"), Control("si_rho", "ρ")]),
    "noisy_labels": ("noisy_labels", [Control("nl_seed", "seed (retrain, quick preset)")]),
    "snapshot": ("noisy_labels", [Control("nl_snapshot", "snapshot", "ArrowLeft")]),
    "sharpness_vs_gap": ("sharpness_vs_gap", [Control("sg_flip", "flipped labels (16 MLPs retrained)")]),
}


class Browser:
    """One Chromium tab per served checkout, with a websocket byte counter."""

    def __init__(self, page: Page):
        self.page = page
        self.received = 0
        page.on("websocket", lambda ws: ws.on("framereceived", self._count))

    def _count(self, payload: str | bytes) -> None:
        self.received += len(payload)

    def open(self, url: str) -> None:
        open_app_page(self.page, url)
        self.page.evaluate(_OBSERVE)

    def act(self, control: Control, turn: int) -> Sample:
        """Move ``control`` (the ``turn``-th time) and wait until the page is idle."""
        page = self.page
        before = self.received
        page.evaluate("() => { window.__runStart = null; window.__runEnd = null; }")
        if control.key == "playback":
            self._click_playback(turn)
        else:
            selector = ", ".join(f".st-key-{key} input[type=range]" for key in control.key.split("|"))
            slider = page.locator(selector).first
            end = slider.get_attribute("max" if control.press == "ArrowRight" else "min")
            if slider.input_value() == end:
                raise SystemExit(f"{control.key} is at its end ({end}) after {turn} moves: use a smaller --repeat")
            slider.focus()
            start = page.evaluate("() => performance.now()")
            page.keyboard.press(control.press)
            return self._idle(start, before)
        return self._idle(self._clicked_at, before)

    def _click_playback(self, turn: int) -> None:
        """Click the plotly slider rail of the paths figure (or, before the client-side animation,
        the Streamlit play-back slider) at a new position each turn."""
        page = self.page
        in_frame = page.locator(".st-key-traj_paths iframe").count()  # views.figure_frame, or st.plotly_chart before it
        figure = page.frame_locator(".st-key-traj_paths iframe") if in_frame else page.locator(".st-key-traj_paths")
        rail = figure.locator(".slider-rail-rect")
        if rail.count():
            rail.first.scroll_into_view_if_needed()
            box = rail.first.bounding_box()
            x = box["x"] + box["width"] * (0.15 + 0.11 * (turn % 8))
            self._clicked_at = page.evaluate("() => performance.now()")
            page.mouse.click(x, box["y"] + box["height"] / 2)
            return
        thumb = page.locator(".st-key-traj_step input[type=range]").first
        thumb.scroll_into_view_if_needed()
        thumb.focus()
        self._clicked_at = page.evaluate("() => performance.now()")
        page.keyboard.press("ArrowLeft")

    def _idle(self, start: float, bytes_before: int) -> Sample:
        deadline = time.monotonic() + TIMEOUT_S
        while True:
            state = self.page.evaluate(
                "() => ({now: performance.now(), last: window.__last, runStart: window.__runStart,"
                " runEnd: window.__runEnd, state: document.querySelector('[data-testid=\"stApp\"]')"
                ".getAttribute('data-test-script-state')})"
            )
            quiet = state["now"] - state["last"] > QUIET_MS
            if state["state"] != "running" and quiet and state["last"] > start:
                break
            if time.monotonic() > deadline:
                raise TimeoutError("the page did not become idle")
            time.sleep(0.05)
        run_start, run_end = state["runStart"], state["runEnd"]
        ran = run_start is not None and run_end is not None
        return Sample(
            total=state["last"] - start,
            to_run=run_start - start if ran else None,
            server=run_end - run_start if ran else None,
            render=state["last"] - (run_end if ran else start),
            kilobytes=(self.received - bytes_before) / 1024,
        )


def percentile(values: list[float], q: float) -> float:
    """The q-quantile of ``values`` by linear interpolation."""
    ordered = sorted(values)
    position = q * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def summary(samples: list[Sample]) -> str:
    totals = [s.total for s in samples]
    servers = [s.server for s in samples if s.server is not None]
    parts = [f"{statistics.median(totals):7.0f} {percentile(totals, 0.95):7.0f}"]
    parts.append(f"{statistics.median([s.to_run for s in samples if s.to_run is not None]):7.0f}" if servers else "      –")
    parts.append(f"{statistics.median(servers):7.0f}" if servers else "      –")
    parts.append(f"{statistics.median([s.render for s in samples]):7.0f}")
    parts.append(f"{statistics.median([s.kilobytes for s in samples]):7.0f}")
    return " ".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--pages", default=",".join(PAGES))
    parser.add_argument("--root", action="append", type=Path, help="checkout to serve (repeatable; default: this one)")
    args = parser.parse_args()
    roots = args.root or [ROOT]
    print(f"load average before: {os.getloadavg()[0]:.2f}; {args.repeat} moves per control; times in ms")
    with contextlib.ExitStack() as stack, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--headless", "--no-sandbox"])
        servers = [stack.enter_context(running_app(f"latency_{i}.log", root)) for i, root in enumerate(roots)]
        tabs = [Browser(browser.new_page(viewport=VIEWPORT)) for _ in roots]
        print(f"{'page / control':40} {'checkout':>10}   median     p95  to run  server  render      KB")
        for name in args.pages.split(","):
            path, controls = PAGES[name]
            for tab, url in zip(tabs, servers):
                tab.open(f"{url}/{path}")
            for control in controls:
                samples: list[list[Sample]] = [[] for _ in roots]
                for turn in range(args.repeat):
                    for i, tab in enumerate(tabs):
                        samples[i].append(tab.act(control, turn))
                for root, rows in zip(roots, samples):
                    print(f"{name + ' / ' + control.label:40} {root.name[-10:]:>10} {summary(rows)}", flush=True)
        browser.close()
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
