"""How the audit and report commands end: problems to stderr, then JSON on stdout or the Markdown report."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from typing import Any

from batch_arbiter.core.console import Console

__all__ = ["emit"]


def emit(console: Console, problems: Iterable[str], data: Any, markdown: str, *, as_json: bool) -> int:
    """Print what could not be read as warnings, then the report; returns the exit code (0)."""
    for problem in problems:
        print(f"warning: {problem}", file=sys.stderr)
    if as_json:
        print(json.dumps(data, indent=2))
    else:
        console.publish(markdown)
    return 0
