"""Errors raised by the intake parsers."""

from __future__ import annotations


class PayloadError(ValueError):
    """A webhook payload is malformed; answer it with a 4xx (the sender must not retry).

    ``path`` names the offending field (``"alerts[3].labels"``); the message always
    starts with it so it can be shown to the sender as is.
    """

    def __init__(self, path: str, problem: str) -> None:
        self.path = path or "<payload>"
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")
