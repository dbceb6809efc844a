from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from batch_arbiter.core.settings import Settings, input_env_name, input_name, load_settings
from batch_arbiter.errors import InputError

ACTION = yaml.safe_load((Path(__file__).parents[2] / "action.yml").read_text(encoding="utf-8"))


@pytest.fixture(autouse=True)
def clean_inputs(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("INPUT_"):
            monkeypatch.delenv(name)


def test_reads_hyphenated_runner_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INPUT_PROMPT-FILES", "prompts/*.md\n  extra.json  \n\n")
    monkeypatch.setenv("INPUT_MAX-TOKENS", "512")
    monkeypatch.setenv("INPUT_POLL-INTERVAL", "0.25")
    monkeypatch.setenv("INPUT_TIMEOUT-MINUTES", "1.5")
    monkeypatch.setenv("INPUT_ON-TIMEOUT", "leave")
    monkeypatch.setenv("INPUT_EFFORT", "XHigh")
    s = load_settings()
    assert s.prompt_files == ["prompts/*.md", "extra.json"]
    assert (s.max_tokens, s.poll_interval, s.timeout_minutes) == (512, 0.25, 1.5)
    assert s.on_timeout == "leave"
    assert s.effort == "xhigh"


def test_empty_inputs_mean_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    # The runner passes every declared input; unset ones arrive as empty strings.
    for name in Settings.model_fields:
        monkeypatch.setenv(input_env_name(name), "")
    monkeypatch.setenv("INPUT_PROMPT-FILES", "a.md")
    s = load_settings()
    assert s.model is None and s.effort is None and s.upgrade is None and s.budget_usd is None
    assert s.timeout_minutes == 300 and s.output_dir == "batch-results" and s.mode == "auto"


def test_flags_win_over_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INPUT_PROMPT-FILES", "a.md")
    monkeypatch.setenv("INPUT_MODE", "sync")
    assert load_settings(mode="batch").mode == "batch"


@pytest.mark.parametrize(
    ("env", "value", "fragment"),
    [
        ("INPUT_EFFORT", "extreme", "input `effort`"),
        ("INPUT_PROVIDER", "openai", "input `provider`"),
        ("INPUT_MAX-TOKENS", "-3", "input `max-tokens`"),
        ("INPUT_POLL-INTERVAL", "soon", "input `poll-interval`"),
        ("INPUT_TIMEOUT-MINUTES", "inf", "input `timeout-minutes`"),
        ("INPUT_UPGRADE", "yes", "input `upgrade`"),
        ("INPUT_ON-TIMEOUT", "retry", "input `on-timeout`"),
    ],
)
def test_bad_inputs_name_the_input(monkeypatch: pytest.MonkeyPatch, env: str, value: str, fragment: str) -> None:
    monkeypatch.setenv("INPUT_PROMPT-FILES", "a.md")
    monkeypatch.setenv(env, value)
    with pytest.raises(InputError) as info:
        load_settings()
    assert fragment in str(info.value)


def test_prompt_files_required() -> None:
    with pytest.raises(InputError, match="prompt-files"):
        load_settings()


def test_api_key_never_in_error_or_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INPUT_PROMPT-FILES", "a.md")
    monkeypatch.setenv("INPUT_API-KEY", "sk-very-secret")
    s = load_settings()
    assert "sk-very-secret" not in repr(s)
    assert s.api_key is not None and s.api_key.get_secret_value() == "sk-very-secret"


def test_action_yml_declares_exactly_the_settings() -> None:
    declared = set(ACTION["inputs"])
    assert declared == {input_name(n) for n in Settings.model_fields}


def test_action_yml_defaults_agree_with_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    # Feed action.yml's defaults through the runner's variables: they must mean the Settings defaults.
    for name, spec in ACTION["inputs"].items():
        monkeypatch.setenv("INPUT_" + name.upper(), str(spec.get("default", "")))
    monkeypatch.setenv("INPUT_PROMPT-FILES", "a.md")
    from_action = load_settings().model_dump()
    from_code = Settings(prompt_files=["a.md"]).model_dump()
    assert from_action == from_code


def test_action_yml_outputs_and_runs() -> None:
    runs = ACTION["runs"]
    assert (runs["using"], runs["image"]) == ("docker", "Dockerfile")
    assert runs["post-entrypoint"] == "/usr/local/bin/batch-arbiter-post"
    assert set(ACTION["outputs"]) == {
        "mode",
        "status",
        "batch-id",
        "model",
        "results-dir",
        "results-file",
        "results-json",
        "succeeded",
        "failed",
        "incomplete",
        "input-tokens",
        "output-tokens",
        "cost-usd",
        "sync-cost-usd",
        "savings-usd",
        "savings-percent",
        "runner-minutes",
        "runner-cost-usd",
        "net-savings-usd",
        "batch-candidates",
        "monthly-savings-usd",
        "monthly-net-savings-usd",
    }
    for name, spec in ACTION["inputs"].items():
        assert spec.get("description"), name
        assert "default" in spec or spec.get("required"), name


def test_poll_interval_is_floored() -> None:
    from batch_arbiter.core.settings import poll_seconds

    assert poll_seconds(load_settings(prompt_files="a.md", poll_interval="1e-12")) == 1.0
    assert poll_seconds(load_settings(prompt_files="a.md", poll_interval="1e-12", base_url="http://x")) == 0.01
    assert poll_seconds(load_settings(prompt_files="a.md", poll_interval="30")) == 30
