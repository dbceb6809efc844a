from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from batch_arbiter.emulator import Emulator, EmulatorConfig
from support import PROVIDERS, ProviderProfile


@pytest.fixture(autouse=True)
def no_ambient_inputs(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests set every input themselves; the developer's shell must not leak into them."""
    for name in list(os.environ):
        if name.startswith(("INPUT_", "GITHUB_", "ANTHROPIC_", "GEMINI_", "GOOGLE_")):
            monkeypatch.delenv(name)


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    with Emulator(EmulatorConfig(processing_seconds=0.05)) as emu:
        yield emu


@pytest.fixture(params=sorted(PROVIDERS))
def provider(request: pytest.FixtureRequest) -> ProviderProfile:
    """Each provider in turn: a test that takes `provider` is part of the contract every adapter passes."""
    return PROVIDERS[request.param]
