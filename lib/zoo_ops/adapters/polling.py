"""Waiting until something holds, within a deadline: the one wait loop, built on tenacity,
and its watch-driven form (:func:`wait_watching`, for a Kubernetes watch where RBAC
allows one; it falls back to the poll).

Used wherever zoo-ops waits for another party (a Deployment rolling out, the automation
making a version ACTIVE). The schedule: probe at once; while the probe answers None,
sleep ``first_s``, then twice that, ... at most ``cap_s`` and never past the deadline,
and probe again; a last probe is made at the deadline itself. Exceptions raised by the
probe are not retried: they end the wait.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import TypeVar

from tenacity import RetryCallState, Retrying, retry_if_result, stop_after_delay, wait_exponential

T = TypeVar("T")


def poll(
    probe: Callable[[], T | None], *, timeout_s: float, first_s: float, cap_s: float
) -> T | None:
    """The first non-None answer of ``probe``; None when ``timeout_s`` passes first."""
    timeout = max(timeout_s, 0.0)
    backoff = wait_exponential(multiplier=first_s, max=cap_s)

    def wait(state: RetryCallState) -> float:
        remaining = timeout - (state.seconds_since_start or 0.0)
        return max(min(backoff(state), remaining), 0.0)

    retrying = Retrying(
        stop=stop_after_delay(timeout),
        wait=wait,
        retry=retry_if_result(lambda answer: answer is None),
        retry_error_callback=lambda state: None,
    )
    answer: T | None = retrying(probe)
    return answer


class WatchUnavailable(Exception):
    """The watch cannot be used here (RBAC grants no ``watch``, the server has none): wait
    by polling instead."""


class WatchBroken(Exception):
    """A watch stream failed mid-way (reset, 5xx, 410 Gone, a stalled read)."""


def wait_watching(
    probe: Callable[[], T | None],
    watch: Callable[[float], Iterable[T | None]],
    *,
    timeout_s: float,
    first_s: float,
    cap_s: float,
) -> T | None:
    """The first non-None answer, woken by changes rather than by a timer.

    The algorithm: probe once (the answer may already be there). Then open
    ``watch(seconds_left)``: an iterator of answers, one per change the server sends
    (None: not yet), which ends when the server closes the stream at ``seconds_left``.
    A stream that ends normally is re-opened while time is left. If the watch is
    refused (:class:`WatchUnavailable`: no RBAC ``watch``) or breaks
    (:class:`WatchBroken`), the rest of the time is spent in :func:`poll`. None when
    ``timeout_s`` passes first. Other exceptions (a failed rollout) end the wait.
    """
    deadline = time.monotonic() + max(timeout_s, 0.0)
    answer = probe()
    while answer is None:
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        try:
            for answer in watch(left):
                if answer is not None or time.monotonic() >= deadline:
                    break
            else:  # the server ended the stream: re-open it, not in a tight loop
                time.sleep(max(min(first_s, deadline - time.monotonic()), 0.0))
        except (WatchUnavailable, WatchBroken):
            left = deadline - time.monotonic()
            return poll(probe, timeout_s=left, first_s=first_s, cap_s=cap_s)
    return answer
