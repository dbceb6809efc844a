"""`batch-arbiter smoke` against the emulator (base-url): every check passes for both providers, a mismatch
fails the run, and without keys it says it skipped. The real APIs are its purpose; these hold its logic."""

from __future__ import annotations

import pytest

from batch_arbiter.cli import main
from batch_arbiter.emulator import Emulator

KEYS = ("ANTHROPIC_API_KEY", "GEMINI_API_KEY", "GOOGLE_API_KEY")


@pytest.fixture(autouse=True)
def no_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in KEYS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    monkeypatch.delenv("GITHUB_OUTPUT", raising=False)


def _smoke(emulator: Emulator | None, *extra: str) -> int:
    args = ["smoke", "--poll-seconds", "0.1", "--wait-minutes", "1", *extra]
    return main([*args, "--base-url", emulator.base_url] if emulator else args)


def test_without_keys_it_says_it_skipped(capsys: pytest.CaptureFixture[str], emulator: Emulator) -> None:
    assert _smoke(emulator) == 0
    out = capsys.readouterr().out
    assert "anthropic: skipped (no ANTHROPIC_API_KEY set)" in out
    assert "gemini: skipped (no GEMINI_API_KEY or GOOGLE_API_KEY set)" in out
    assert "no provider had an API key" in out
    assert emulator.calls() == []


@pytest.mark.parametrize("provider", ["anthropic", "gemini"])
def test_every_check_passes_against_the_emulator(
    provider: str, emulator: Emulator, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY" if provider == "anthropic" else "GEMINI_API_KEY", "smoke-key")
    assert _smoke(emulator, "--provider", provider) == 0
    out = capsys.readouterr().out
    assert "FAIL" not in out and "every check passed" in out
    checks = ("model lookup", "token count", "adapter sync call", "sync call", "streamed call", "batch request counts")
    for check in (*checks, "cost"):
        assert f"ok   {check}:" in out, check
    # Two requests in one batch, one sync and one streamed call, on the cheapest model.
    creates = emulator.calls("create" if provider == "anthropic" else "gemini_create")
    assert len(creates) == 1
    model = "claude-haiku-5-5" if provider == "anthropic" else "gemini-2.5-flash-lite"
    assert f"{provider} on {model}:" in out
    assert "Emulated reply" not in out  # model text is never printed
    if provider == "anthropic":
        assert "ok   1-hour cache write:" in out
        (cached,) = [r for r in creates[0].body["requests"] if "system" in r["params"]]
        assert cached["params"]["system"][0]["cache_control"] == {"type": "ephemeral", "ttl": "1h"}


def test_five_minute_cache_writes_are_a_mismatch(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "smoke-key")
    emulator.config.anthropic_cache_1h = False
    assert _smoke(emulator, "--provider", "anthropic") == 1
    out = capsys.readouterr().out
    assert "FAIL 1-hour cache write: written" in out and "(0 for 1 hour)" in out
    assert "::error::" in out


def test_a_refused_key_is_a_failed_check_not_a_traceback(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    emulator.config.api_key = "the-right-key"
    monkeypatch.setenv("GEMINI_API_KEY", "a-wrong-key")
    assert _smoke(emulator, "--provider", "gemini") == 1
    out = capsys.readouterr().out
    assert "FAIL model lookup:" in out and "Traceback" not in out


def test_the_live_smoke_workflow_runs_it_by_hand_with_the_repository_secrets() -> None:
    from pathlib import Path

    import yaml

    workflow = yaml.safe_load((Path(__file__).parents[2] / ".github/workflows/live-smoke.yml").read_text())
    triggers = workflow.get("on", workflow.get(True))
    assert set(triggers) == {"workflow_dispatch"}  # it spends money: never on a push or a schedule
    (step,) = [s for s in workflow["jobs"]["smoke"]["steps"] if "batch-arbiter smoke" in s.get("run", "")]
    assert step["env"]["ANTHROPIC_API_KEY"] == "${{ secrets.ANTHROPIC_API_KEY }}"
    assert step["env"]["GEMINI_API_KEY"] == "${{ secrets.GEMINI_API_KEY }}"
    # Inputs reach the command through the environment, never spliced into the script.
    assert "${{" not in step["run"]
