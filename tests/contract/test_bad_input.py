"""Bad input ends the run with an `::error::` and exit 2 before anything is sent: never a traceback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from batch_arbiter.emulator import Emulator
from support import Run, run_action, runner_env, write_prompts


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    write_prompts(root, {"prompts/a.md": "A fine prompt."})
    return root


def refused(run: Run, emulator: Emulator | None, fragment: str) -> None:
    assert run.code == 2, run.log
    assert "::error" in run.log, run.log
    assert fragment in run.log, run.log
    # A traceback only ever in a folded group under the annotation (an unforeseen error), never raw.
    assert run.log.count("Traceback (most recent call last)") == run.log.count("::group::Traceback")
    if emulator is not None:
        assert emulator.calls() == [], [c.route for c in emulator.calls()]


def request_file(root: Path, name: str, obj: dict[str, Any]) -> None:
    write_prompts(root, {name: json.dumps(obj)})


# -- item 4: content blocks are checked against what the provider takes ---------------------------


@pytest.mark.parametrize("provider", ["anthropic", "gemini"])
def test_a_text_block_whose_text_is_not_a_string_is_bad_input(ws: Path, emulator: Emulator, provider: str) -> None:
    blocks = [{"type": "text", "text": 5}]
    request_file(ws, "prompts/b.json", {"messages": [{"role": "user", "content": blocks}]})
    run = run_action(ws, emulator, prompt_files="prompts/*", mode="batch", provider=provider)
    refused(run, emulator, "prompts/b.json: messages.0.content.0.text")


def test_an_image_block_is_bad_input_on_gemini(ws: Path, emulator: Emulator) -> None:
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}}
    blocks = [image, {"type": "text", "text": "What is this?"}]
    request_file(ws, "prompts/b.json", {"messages": [{"role": "user", "content": blocks}]})
    run = run_action(ws, emulator, prompt_files="prompts/*", mode="batch", provider="gemini")
    refused(run, emulator, "gemini takes only text blocks")


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ([], "content: a list of content blocks must not be empty"),
        (["just a string"], "content.0: a content block must be an object with a string `type`"),
        ([{"text": "no type"}], "content.0: a content block must be an object with a string `type`"),
    ],
)
def test_malformed_content_blocks_are_bad_input(ws: Path, emulator: Emulator, content: Any, fragment: str) -> None:
    request_file(ws, "prompts/b.json", {"messages": [{"role": "user", "content": content}]})
    run = run_action(ws, emulator, prompt_files="prompts/*", mode="batch")
    refused(run, emulator, fragment)


def test_an_image_block_still_goes_to_anthropic(ws: Path, emulator: Emulator) -> None:
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}}
    blocks = [image, {"type": "text", "text": "What is this?"}]
    request_file(ws, "prompts/b.json", {"messages": [{"role": "user", "content": blocks}]})
    run = run_action(ws, emulator, prompt_files="prompts/*", mode="batch")
    assert run.code == 0, run.log
    sent = {r["custom_id"]: r["params"] for r in emulator.calls("create")[0].body["requests"]}
    assert sent["prompts_b_json"]["messages"][0]["content"][0]["type"] == "image"


# -- item 10: unreadable files and out-of-range inputs are bad input, never a traceback ------------


def test_a_system_prompt_file_that_is_not_utf8_is_bad_input(ws: Path, emulator: Emulator) -> None:
    (ws / "system.txt").write_bytes(b"Be terse.\xff\xfe\n")
    run = run_action(ws, emulator, prompt_files="prompts/*", mode="batch", system_prompt_file="system.txt")
    refused(run, emulator, "system.txt")


@pytest.mark.parametrize(
    ("input_name", "name", "data"),
    [
        ("policy_file", "policy.yml", "rules: []\n".encode("utf-16")),
        ("pricing_file", "prices.tsv", "claude-*\t2020-01-01\t1\t1\t1\t1\n".encode("utf-16")),
        ("policy_file", "policy.yml", b"rules:\n  - match: '*'\n    mode: batch\n    reason: \xe9t\xe9\n"),
    ],
)
def test_a_policy_or_pricing_file_that_is_not_utf8_is_bad_input(
    ws: Path, emulator: Emulator, input_name: str, name: str, data: bytes
) -> None:
    (ws / name).write_bytes(data)
    run = run_action(ws, emulator, prompt_files="prompts/*", mode="batch", **{input_name: name})
    refused(run, emulator, "UTF-8")


def test_a_deeply_nested_policy_file_is_bad_input(ws: Path, emulator: Emulator) -> None:
    (ws / "policy.yml").write_text("[" * 50_000 + "]" * 50_000)
    run = run_action(ws, emulator, prompt_files="prompts/*", mode="batch", policy_file="policy.yml")
    refused(run, emulator, "policy.yml")


def test_a_timeout_past_any_batch_lifetime_is_bad_input(ws: Path, emulator: Emulator) -> None:
    run = run_action(ws, emulator, prompt_files="prompts/*", mode="batch", timeout_minutes="1e10")
    refused(run, emulator, "input `timeout-minutes`")


def test_an_absolute_metrics_glob_is_bad_input_in_an_audit(ws: Path) -> None:
    (ws / ".github" / "workflows").mkdir(parents=True)
    run = run_action(ws, None, mode="audit", metrics_file=f"{ws}/*.jsonl")
    refused(run, None, "input `metrics-file`")


def metrics_line(**fields: object) -> str:
    record = {"ts": "2026-01-05T10:00:00Z", "workflow": "nightly", "engine": "claude", "model": "claude-sonnet-5-5"}
    return json.dumps({**record, **fields})


@pytest.mark.parametrize("field", ["input_tokens", "cost_usd", "requests"])
def test_a_metrics_line_with_an_overflowing_number_is_skipped_with_a_warning(ws: Path, field: str) -> None:
    good = metrics_line(input_tokens=1000, output_tokens=10)
    bad = metrics_line(output_tokens=10).replace('"output_tokens": 10', f'"output_tokens": 10, "{field}": 1e999')
    (ws / "metrics.jsonl").write_text(good + "\n" + bad + "\n")
    (ws / ".github" / "workflows").mkdir(parents=True)
    run = run_action(ws, None, mode="audit", metrics_file="metrics.jsonl")
    assert run.code == 0, run.log
    assert "Traceback" not in run.log
    assert f"metrics.jsonl:2: `{field}` is not a finite number; skipped" in run.log


def test_the_report_command_skips_an_overflowing_metrics_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from batch_arbiter.cli import main

    log = tmp_path / "metrics.jsonl"
    log.write_text(metrics_line(input_tokens=1000) + "\n" + metrics_line(input_tokens="1e999") + "\n")
    assert main(["report", "--metrics", str(log), "--json"]) == 0
    out = capsys.readouterr()
    assert "metrics.jsonl:2: `input_tokens` is not a finite number; skipped" in out.err
    assert json.loads(out.out)


def test_an_unexpected_error_before_the_first_call_is_bad_input(
    ws: Path, emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    def unforeseen(source: str) -> str:
        raise RuntimeError(f"no id for {source}")

    # A defect nobody anticipated, met while the run is still being prepared.
    monkeypatch.setattr("batch_arbiter.core.prompts.derive_custom_id", unforeseen)
    run = run_action(ws, emulator, prompt_files="prompts/*", mode="batch")
    refused(run, emulator, "unexpected RuntimeError: no id for prompts/a.md; nothing was sent")


# -- item 11: non-finite numbers are refused wherever a file gives one -----------------------------


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "1e999", "NaN"])
def test_a_non_finite_price_is_bad_input(ws: Path, emulator: Emulator, value: str) -> None:
    (ws / "prices.tsv").write_text(f"claude-sonnet-5-5\t2020-01-01\t{value}\t0.3\t3.75\t15\n")
    run = run_action(ws, emulator, prompt_files="prompts/*", mode="batch", pricing_file="prices.tsv", budget_usd=1)
    refused(run, emulator, "prices.tsv:1: prices must be finite numbers")


@pytest.mark.parametrize("value", [".inf", ".nan", "1e999"])
def test_a_non_finite_policy_number_is_bad_input(ws: Path, emulator: Emulator, value: str) -> None:
    (ws / "policy.yml").write_text(f"rules:\n  - match: '*'\n    mode: batch\n    max-wait-minutes: {value}\n")
    run = run_action(ws, emulator, prompt_files="prompts/*", policy_file="policy.yml")
    refused(run, emulator, "max-wait-minutes")


# -- item 12: smaller input defects ----------------------------------------------------------------


def test_a_vanishing_poll_interval_is_floored(ws: Path, emulator: Emulator) -> None:
    emulator.config.processing_seconds = 0.3
    run = run_action(ws, emulator, prompt_files="prompts/*", mode="batch", poll_interval=1e-12)
    assert run.code == 0, run.log
    # From 1e-12 doubling, about 38 status checks before the batch ends; from the floor, a handful.
    assert len(emulator.calls("retrieve")) <= 8


def test_an_api_key_with_a_trailing_newline_is_stripped_and_said_so(ws: Path, emulator: Emulator) -> None:
    key = "sk-ant-test-with-a-newline-0123"
    run = run_action(ws, emulator, prompt_files="prompts/*", mode="batch", api_key=key + "\n")
    assert run.code == 0, run.log
    assert "::notice::the API key ends or starts with whitespace" in run.log
    assert key not in run.log.replace(f"::add-mask::{key}", "")
    assert emulator.calls("create") and {c.status for c in emulator.calls()} == {200}


def test_upper_case_json_prompt_files_are_parsed_as_requests(ws: Path, emulator: Emulator) -> None:
    write_prompts(ws, {"prompts/b.JSON": json.dumps({"prompt": "Upper.", "custom_id": "upper"})})
    write_prompts(ws, {"prompts/c.JSONL": json.dumps({"prompt": "Lines.", "custom_id": "lines"}) + "\n"})
    run = run_action(ws, emulator, prompt_files="prompts/*", mode="batch")
    assert run.code == 0, run.log
    sent = {
        r["custom_id"]: r["params"]["messages"][-1]["content"] for r in emulator.calls("create")[0].body["requests"]
    }
    assert sent == {"prompts_a_md": "A fine prompt.", "upper": "Upper.", "lines": "Lines."}


def test_a_utf8_bom_is_not_sent_to_the_model(ws: Path, emulator: Emulator) -> None:
    (ws / "prompts" / "a.md").write_bytes("\ufeffA fine prompt.".encode())
    (ws / "prompts" / "b.json").write_bytes(("\ufeff" + json.dumps({"prompt": "From JSON."})).encode())
    (ws / "system.txt").write_bytes("\ufeffBe terse.".encode())
    run = run_action(ws, emulator, prompt_files="prompts/*", mode="batch", system_prompt_file="system.txt")
    assert run.code == 0, run.log
    params = [r["params"] for r in emulator.calls("create")[0].body["requests"]]
    assert sorted(p["messages"][-1]["content"] for p in params) == ["A fine prompt.", "From JSON."]
    assert {json.dumps(p["system"]) for p in params} == {json.dumps(params[0]["system"])}
    assert "\ufeff" not in json.dumps(params, ensure_ascii=False)


def test_post_help_prints_help_and_runs_no_post_step(tmp_path: Path, emulator: Emulator) -> None:
    ws, files = tmp_path / "workspace", tmp_path / "file_commands"
    (ws / "batch-results").mkdir(parents=True)
    files.mkdir()
    state: dict[str, object] = {"provider": "anthropic", "model": "claude-sonnet-5-5", "workload": "w", "deadline": ""}
    state |= {"status": "submitted", "batch_ids": ["msgbatch_01x"], "custom_ids": ["a"], "run": "4242.1"}
    (ws / "batch-results" / "state.json").write_text(json.dumps(state))
    env = runner_env(ws, files, emulator, prompt_files="x.md")
    # `batch-arbiter post` and the `batch-arbiter-post` script action.yml's post-entrypoint runs.
    script = ["-c", "from batch_arbiter.cli import post_main; raise SystemExit(post_main())", "-h"]
    for argv in (["-m", "batch_arbiter", "post", "--help"], script):
        post = subprocess.run([sys.executable, *argv], cwd=ws, env=env, capture_output=True, text=True, timeout=60)
        assert post.returncode == 0, post.stdout + post.stderr
        assert "usage: batch-arbiter post" in post.stdout
    assert emulator.calls() == []
    assert json.loads((ws / "batch-results" / "state.json").read_text())["status"] == "submitted"


def test_action_yml_lists_every_status_the_action_sets() -> None:
    import yaml

    action = yaml.safe_load((Path(__file__).parents[2] / "action.yml").read_text(encoding="utf-8"))
    described = action["outputs"]["status"]["description"]
    for status in ("succeeded", "partial", "failed", "pending", "planned"):
        assert f"`{status}`" in described


def test_deeply_nested_json_is_read_as_bad_data_not_a_crash(tmp_path: Path, emulator: Emulator) -> None:
    deep = "[" * 1000 + "]" * 1000
    ws = tmp_path / "ws"
    write_prompts(ws, {"prompts/deep.json": deep})
    run = run_action(ws, emulator, prompt_files="prompts/*", mode="batch")
    assert run.code == 2 and "nested too deeply to be a request" in run.log, run.log
    assert "unexpected RecursionError" not in run.log and emulator.calls() == []
    audit = tmp_path / "audit"
    write_prompts(audit, {".github/workflows/x.yml": "on: push\njobs: {}\n", "metrics.jsonl": deep + "\n"})
    run = run_action(audit, None, mode="audit", metrics_file="metrics.jsonl", api_key="")
    assert run.code == 0, run.log
    assert "metrics.jsonl:1: not a JSON object; skipped" in run.log


def test_a_jsonl_request_may_hold_a_raw_line_separator_in_a_string(tmp_path: Path, emulator: Emulator) -> None:
    ws = tmp_path / "ws"
    write_prompts(ws, {"prompts/p.jsonl": json.dumps({"prompt": "a\u2028b"}, ensure_ascii=False) + "\n"})
    run = run_action(ws, emulator, prompt_files="prompts/*", mode="batch")
    assert run.code == 0, run.log
    assert len(run.results) == 1 and run.results[0]["status"] == "succeeded"
