"""Polling until something holds, within a deadline: the one wait loop, built on tenacity.

Used wherever zoo-ops waits for another party (a Deployment rolling out, the automation
making a version ACTIVE). The schedule: probe at once; while the probe answers None,
sleep ``first_s``, then twice that, ... at most ``cap_s`` and never past the deadline,
and probe again; a last probe is made at the deadline itself. Exceptions raised by the
probe are not retried: they end the wait.
"""

from __future__ import annotations

from collections.abc import Callable
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
