"""The live progress line on stderr: tasks done/total, tasks/s, generated tokens/s, errors, ETA.

Rates are over the time since the stream started (model loading included), so they are honest
from the first line on. On a terminal the line is redrawn in place; in a log (ray job logs,
CI) a full line is printed at most every LOG_INTERVAL_S.
"""
from __future__ import annotations

import sys
import time

LOG_INTERVAL_S = 15.0


def format_duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


class ProgressLine:
    def __init__(self, total: int, *, interval_s: float, skipped: int = 0, stream=None) -> None:
        self.total, self.skipped = total, skipped
        self.stream = stream or sys.stderr
        self.is_tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.enabled = interval_s > 0
        self.interval_s = interval_s if self.is_tty else max(interval_s, LOG_INTERVAL_S)
        self.start = time.monotonic()
        self.last_print = float("-inf")
        self.done = self.errors = self.generated_tokens = 0
        self.printed_done = -1  # `done` when the last line was printed

    def update(self, *, tasks: int, errors: int, generated_tokens: int) -> None:
        self.done += tasks
        self.errors += errors
        self.generated_tokens += generated_tokens
        if time.monotonic() - self.last_print >= self.interval_s:
            self._print()

    def line(self) -> str:
        elapsed = max(time.monotonic() - self.start, 1e-9)
        rate = self.done / elapsed
        eta = format_duration((self.total - self.done) / rate) if rate > 0 else "?"
        resumed = f" (+{self.skipped} resumed)" if self.skipped else ""
        return (f"quasar: {self.done}/{self.total} tasks{resumed} | {rate:.2f} tasks/s | "
                f"{self.generated_tokens / elapsed:,.0f} gen tok/s | errors {self.errors} | "
                f"ETA {eta} | {format_duration(elapsed)} elapsed")

    def _print(self, final: bool = False) -> None:
        if not self.enabled:
            return
        self.last_print, self.printed_done = time.monotonic(), self.done
        if self.is_tty:
            self.stream.write("\r\033[K" + self.line() + ("\n" if final else ""))
        else:
            self.stream.write(self.line() + "\n")
        self.stream.flush()

    def close(self) -> None:
        """The final line, unless a log already ends with it."""
        if self.is_tty or self.printed_done != self.done:
            self._print(final=True)
