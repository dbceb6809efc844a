"""`BATCH_ARBITER_EMULATOR=1`: run the action against the bundled emulator, inside its own process.

This is how the action is tried and self-tested without an API key: a workflow step sets the variable in
its `env:` and the container answers its own API calls, so nothing needs a network or a secret (act,
a fork's pull request, a first try from the README). An explicit `base-url` still wins, so the switch
can never redirect a run that names its endpoint.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from pydantic import SecretStr

if TYPE_CHECKING:
    from batch_arbiter.action.runner import Runner
    from batch_arbiter.core.settings import Settings

SWITCH = "BATCH_ARBITER_EMULATOR"
# The emulator accepts any non-empty key; a fixed dummy means a real key is never needed nor sent.
DUMMY_KEY = "bundled-emulator-no-key"


def enabled() -> bool:
    return os.environ.get(SWITCH, "").strip().lower() in ("1", "true", "yes")


@contextmanager
def bundled_emulator(settings: Settings, runner: Runner) -> Iterator[Settings]:
    """The settings to run with: unchanged, or pointed at an emulator that lives as long as the run."""
    if not enabled() or settings.base_url:
        yield settings
        return
    from batch_arbiter.emulator import Emulator, EmulatorConfig

    # Batches finish in a second, so a self-test exercises submit, polling and results in one run.
    with Emulator(EmulatorConfig(processing_seconds=1.0)) as emulator:
        runner.notice(
            f"{SWITCH} is set: answering with the bundled emulator at {emulator.base_url}; "
            "nothing is sent to a provider and nothing is billed"
        )
        yield settings.model_copy(update={"base_url": emulator.base_url, "api_key": SecretStr(DUMMY_KEY)})
