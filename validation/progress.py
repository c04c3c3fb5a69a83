"""What a long run tells a person at a terminal: one status line, and warnings on stderr."""
from __future__ import annotations

import sys
import time


def warn(message: str) -> None:
    """One warning line on stderr."""
    print(f"mfdyn: warning: {message}", file=sys.stderr)


class Progress:
    """One status line on stderr when it is a terminal (time reached, steps/s, elapsed, ETA); silent
    otherwise (CI, pipes, notebooks without a terminal)."""

    def __init__(self, label: str, t_end: float, live: bool | None = None):
        self.label, self.t_end = label, t_end
        self.start = time.perf_counter()
        self.live = sys.stderr.isatty() if live is None else live

    def update(self, t: float, steps: int) -> None:
        if not self.live:
            return
        elapsed = time.perf_counter() - self.start
        eta = f"ETA {elapsed * (self.t_end - t) / t:.1f} s" if t > 0 else "ETA …"
        print(f"\r{self.label}: t = {t:.4g} / {self.t_end:.4g}  {steps / max(elapsed, 1e-9):.0f} steps/s  "
              f"elapsed {elapsed:.1f} s  {eta} ", end="", file=sys.stderr, flush=True)

    def done(self) -> None:
        if self.live:
            print(file=sys.stderr)
