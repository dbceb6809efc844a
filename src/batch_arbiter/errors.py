"""One family of errors, so a caller can tell bad input (exit 2, nothing sent) from a failed call.

Every message is safe to log and says what to do next. `Cancelled` is not an error: it is the runner
stopping the step, and derives from `BaseException` so no `except Exception` swallows it.
"""

from __future__ import annotations

from typing import ClassVar

__all__ = ["AuthError", "BatchArbiterError", "Cancelled", "InputError", "NoSuchBatch", "ProviderError", "Refused"]


class BatchArbiterError(Exception):
    """Base of every error the action raises on purpose."""


class InputError(BatchArbiterError, ValueError):
    """An input, file or setting the run cannot start with; reported as `::error::` with exit code 2
    before any API call. `input` names the action input at fault, when there is one."""

    def __init__(self, message: str, input: str | None = None) -> None:
        super().__init__(message)
        self.input = input


class ProviderError(BatchArbiterError, RuntimeError):
    """A provider call failed after the SDK's own retries; the message is safe to log. The run may go on
    (a retry, another batch, the sync fallback)."""

    # Set on the kinds no other call can get past: the run stops there instead of paying for sync
    # calls that would fail the same way.
    fatal: ClassVar[bool] = False


class Refused(ProviderError):
    """The API refused for good (a result file that is gone, and the subclasses): no retry or fallback helps."""

    fatal = True


class AuthError(Refused):
    """The API refused the key or its permissions: no other call with that key can succeed."""


class NoSuchBatch(Refused):
    """The API says the batch does not exist (HTTP 404): nothing to wait for or collect."""

    def __init__(self, batch_id: str, detail: str) -> None:
        super().__init__(f"no such batch {batch_id} ({detail}); check `batch-id`, or the state.json it came from")
        self.batch_id = batch_id


class Cancelled(BaseException):
    """The runner is cancelling the step (SIGINT, then SIGTERM)."""
