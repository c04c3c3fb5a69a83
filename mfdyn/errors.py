"""Errors shared by the engines."""


class BlowUp(RuntimeError):
    """A run became invalid (non-finite or negative density, mass drift, non-finite particles, dt
    collapse). The message names the cause, where it happened, and the likely fix, on one line."""
