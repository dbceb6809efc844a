"""The action's main step as the runner starts it: inputs read once, signals handled, then the run."""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Mapping
from types import FrameType
from typing import Any

from batch_arbiter.action.runner import Runner
from batch_arbiter.action.selftest import bundled_emulator
from batch_arbiter.agents.flow import execute
from batch_arbiter.core.settings import Settings, load_settings
from batch_arbiter.errors import Cancelled, InputError
from batch_arbiter.run.flow import EXIT_BAD_INPUT

__all__ = ["main_step", "step"]


def _on_signal(signum: int, frame: FrameType | None) -> None:
    raise Cancelled(signal.Signals(signum).name)


def main_step(flags: Mapping[str, Any], runner: Runner) -> int:
    """Read the settings (flags win over `INPUT_*`), then run, plan or audit."""
    try:
        settings = load_settings(**flags)
    except InputError as exc:
        runner.error(str(exc), title="batch-arbiter: bad input")
        return EXIT_BAD_INPUT
    # Python as PID 1 ignores SIGTERM unless told otherwise; both signals end the run cleanly.
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    # Only the process entrypoint reads the switch; in-process callers pass their own base URL.
    with bundled_emulator(settings, runner) as settings:
        code = step(settings, runner)
    if any(t.is_alive() and not t.daemon for t in threading.enumerate() if t is not threading.main_thread()):
        # A cancel left synchronous calls in flight. Every answer that arrived is on disk; waiting for
        # the rest would hold the step until the runner kills it, so the process ends now.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


def step(settings: Settings, runner: Runner) -> int:
    """One step with settings already read: `mode: audit` audits, every other mode runs."""
    if settings.mode == "audit":
        from batch_arbiter.observatory.audit import run_step

        return run_step(settings, runner)
    return execute(settings, runner)
