"""One family of errors, so a caller can tell bad input (exit 2, nothing sent) from a failed call.

Every message is safe to log and says what to do next. `Cancelled` is not an error: it is the runner
stopping the step, and derives from `BaseException` so no `except Exception` swallows it.
"""

from __future__ import annotations

__all__ = ["BatchArbiterError", "Cancelled", "InputError", "NoSuchBatch", "ProviderError"]


class BatchArbiterError(Exception):
    """Base of every error the action raises on purpose."""


class InputError(BatchArbiterError, ValueError):
    """An input, file or setting the run cannot start with; reported as `::error::` with exit code 2
    before any API call. `input` names the action input at fault, when there is one."""

    def __init__(self, message: str, input: str | None = None) -> None:
        super().__init__(message)
        self.input = input


class ProviderError(BatchArbiterError, RuntimeError):
    """A provider call failed after the SDK's own retries; the message is safe to log.

    `fatal` marks failures no other call can get past (a rejected key, a refused permission): the run
    stops there instead of falling back to sync calls that would fail the same way.
    """

    def __init__(self, message: str, *, fatal: bool = False) -> None:
        super().__init__(message)
        self.fatal = fatal


class NoSuchBatch(ProviderError):
    """The API says the batch does not exist (HTTP 404): nothing to wait for or collect."""

    def __init__(self, batch_id: str, detail: str) -> None:
        super().__init__(
            f"no such batch {batch_id} ({detail}); check `batch-id`, or the state.json it came from", fatal=True
        )
        self.batch_id = batch_id


class Cancelled(BaseException):
    """The runner is cancelling the step (SIGINT, then SIGTERM)."""
