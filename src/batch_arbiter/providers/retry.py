"""A synchronous call retried only while no answer has started.

A call the API refused outright (429, an overload or server error before any answer, a connection refused)
cost nothing and may be sent again. A call that timed out or broke off once the answer was streaming may
already be billed: it is never sent again blind. The SDKs' own retries (which also retry timeouts) are off
for these calls; this is the one retry loop, built on tenacity.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt

T = TypeVar("T")


@dataclass
class Attempt:
    """One attempt's progress, set by the call: `started` once the API began to answer (headers of a
    stream, or its first event), after which no failure is retried."""

    number: int = 0
    started: bool = False


def before_answer(
    call: Callable[[Attempt], T],
    *,
    retryable: Callable[[BaseException], bool],
    wait: Callable[[BaseException, int], float],
    attempts: int,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Run `call` until it returns, retrying (at most `attempts` tries in all) only a failure that
    `retryable` accepts and that came before the answer started; `wait(error, attempt)` says how long to
    sleep first. The last failure is raised as it was."""
    attempt = Attempt()

    def once() -> T:
        attempt.number += 1
        attempt.started = False
        return call(attempt)

    def waited(state: RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome is not None else None
        return 0.0 if error is None else max(0.0, wait(error, state.attempt_number))

    retrying = Retrying(
        stop=stop_after_attempt(max(1, attempts)),
        retry=retry_if_exception(lambda exc: not attempt.started and retryable(exc)),
        wait=waited,
        sleep=sleep,
        reraise=True,
    )
    return retrying(once)
