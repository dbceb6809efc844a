"""What the run and the audit need of the GitHub runner; `action.runner.Runner` is the real one.

Typed as a Protocol so the layers under `action/` never import it: the command wiring builds the
runner and passes it in.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Protocol

__all__ = ["Console"]


class Console(Protocol):
    """Log lines, annotations, step outputs and the step summary, with secrets masked."""

    workspace: Path
    workflow: str | None
    event_name: str | None

    @property
    def run_key(self) -> str | None:
        """This workflow run and attempt, to tell its state from a restored one."""
        ...

    def redact(self, text: str) -> str:
        """`text` with every masked secret replaced."""
        ...

    def log(self, message: str) -> None:
        """One plain log line (workflow commands in it are neutralised)."""
        ...

    def mask(self, secret: str) -> None:
        """Register a secret the log, outputs and summary must never show."""
        ...

    def error(self, message: str, title: str | None = None) -> None:
        """An `::error::` annotation."""
        ...

    def warning(self, message: str, title: str | None = None) -> None:
        """A `::warning::` annotation."""
        ...

    def notice(self, message: str, title: str | None = None) -> None:
        """A `::notice::` annotation."""
        ...

    def group(self, name: str) -> AbstractContextManager[None]:
        """A collapsed log group for the lines written inside it."""
        ...

    def set_outputs(self, outputs: Mapping[str, str]) -> None:
        """Step outputs."""
        ...

    def write_summary(self, markdown: str) -> None:
        """Append to the step summary."""
        ...

    def publish(self, markdown: str) -> None:
        """Print a report and add it to the step summary."""
        ...
