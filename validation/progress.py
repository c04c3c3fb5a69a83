"""What a long run tells a person at a terminal: one status line, and warnings on stderr."""
from __future__ import annotations

import sys
import threading
import time


def warn(message: str) -> None:
    """One warning line on stderr."""
    print(f"mfdyn: warning: {message}", file=sys.stderr)


class Progress:
    """One status line on stderr when it is a terminal (time reached, steps/s, elapsed, ETA, and a note such
    as where the time goes); silent otherwise (CI, pipes, notebooks without a terminal).

    The rate is measured from the first update on (a resumed run starts at its last snapshot, with its steps
    so far): until a second update has moved t, the line says "ETA …" and gives no steps/s.
    """

    def __init__(self, label: str, t_end: float, live: bool | None = None, board: StatusBoard | None = None,
                 slot: int = 0):
        self.label, self.t_end = label, t_end
        self.start = time.perf_counter()
        self.live = sys.stderr.isatty() if live is None else live
        self.board, self.slot = board, slot                     # engines running at once share one board's line
        self.origin: tuple[float, int, float] | None = None     # (t, steps, clock) of the first update
        self.width = 0                                           # of the longest line shown, to overwrite it

    def line(self, t: float, steps: int, note: str = "") -> str:
        """The status line at time t after `steps` steps (the first call fixes the rate's origin)."""
        now = time.perf_counter()
        if self.origin is None:
            self.origin = (t, steps, now)
        t0, steps0, clock0 = self.origin
        rate, eta = "", "ETA …"
        if t > t0 and now > clock0:
            rate = f"{(steps - steps0) / (now - clock0):.0f} steps/s"
            eta = f"ETA {(now - clock0) * (self.t_end - t) / (t - t0):.1f} s"
        parts = (f"{self.label}: t = {t:.4g} / {self.t_end:.4g}", rate, f"elapsed {now - self.start:.1f} s", eta, note)
        return "  ".join(part for part in parts if part)

    def update(self, t: float, steps: int, note: str = "") -> None:
        """Show the line (at a terminal), over the previous one."""
        if not self.live:
            return
        text = self.line(t, steps, note)
        if self.board is not None:
            self.board.show(self.slot, text)
            return
        self.width = max(self.width, len(text))
        print(f"\r{text:<{self.width}} ", end="", file=sys.stderr, flush=True)

    def done(self) -> None:
        if self.live and self.board is None:       # a board ends its line itself (StatusBoard.close)
            print(file=sys.stderr)


class StatusBoard:
    """One status line for engines that advance at the same time: each Progress on the board owns a slot, and
    the line is the slots' latest texts in slot order, joined by " | " (live at a terminal, as Progress)."""

    def __init__(self, live: bool | None = None):
        self.live = sys.stderr.isatty() if live is None else live
        self.parts: dict[int, str] = {}
        self.width = 0
        self.lock = threading.Lock()

    def show(self, slot: int, text: str) -> None:
        """Set the text of one slot and redraw the line (at a terminal)."""
        if not self.live:
            return
        with self.lock:
            self.parts[slot] = text
            line = " | ".join(self.parts[k] for k in sorted(self.parts))
            self.width = max(self.width, len(line))
            print(f"\r{line:<{self.width}} ", end="", file=sys.stderr, flush=True)

    def close(self) -> None:
        """End the line (after the last update of every slot)."""
        if self.live and self.parts:
            print(file=sys.stderr)
