"""A one-line text progress bar (downloads, foreground training): ``label [####....]  45%  9/20  3s``.

On a terminal the line is redrawn in place at most ten times a second; on anything else
(a log file) only the final line is written, so logs hold no carriage-return noise.
"""
from __future__ import annotations

import sys
import time
from typing import Callable, TextIO


class ProgressBar:
    """Progress of ``done`` out of ``total`` units; ``format_count`` renders a count (e.g. as MB)."""

    def __init__(self, total: int, label: str = "", stream: TextIO | None = None, width: int = 30,
                 format_count: Callable[[int], str] = str) -> None:
        self.total = max(int(total), 1)
        self.label = label
        self.stream = sys.stderr if stream is None else stream
        self.width = width
        self.format_count = format_count
        self.start = time.monotonic()
        self.last_draw = 0.0
        self.line = ""
        self.live = hasattr(self.stream, "isatty") and self.stream.isatty()

    def update(self, done: int, suffix: str = "") -> None:
        """Set progress to ``done`` units, with ``suffix`` shown after the counts."""
        frac = min(max(done / self.total, 0.0), 1.0)
        filled = round(frac * self.width)
        elapsed = time.monotonic() - self.start
        self.line = (f"{self.label} [{'#' * filled}{'.' * (self.width - filled)}] {frac:4.0%} "
                     f"{self.format_count(done)}/{self.format_count(self.total)} {elapsed:.0f}s {suffix}").rstrip()
        now = time.monotonic()
        if self.live and (now - self.last_draw >= 0.1 or done >= self.total):
            self.stream.write("\r\033[K" + self.line)
            self.stream.flush()
            self.last_draw = now

    def write(self, text: str) -> None:
        """Print ``text`` as a line on stdout above the bar, then redraw the bar."""
        if self.live:
            self.stream.write("\r\033[K")
            self.stream.flush()
        print(text, flush=True)
        if self.live and self.line:
            self.stream.write(self.line)
            self.stream.flush()

    def close(self) -> None:
        """End the line (writing it once when the stream is not a terminal)."""
        self.stream.write(("\r\033[K" if self.live else "") + self.line + "\n")
        self.stream.flush()
