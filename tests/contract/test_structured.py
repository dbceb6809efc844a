"""Structured results, per provider through its real SDK: a response schema sent as the provider's own
structured output (batch and sync), every answer validated, an invalid one rerun synchronously once, and
`json`, `<custom_id>.json` and `results.json` for the step that follows."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from batch_arbiter.devtools import demo
from batch_arbiter.emulator import Emulator
from support import PROVIDERS, ProviderProfile, Run, write_prompts

# The demo's ideas schema (the README's worked example).
IDEAS_SCHEMA: dict[str, Any] = demo.SCHEMA
SCHEMA_FILE = "schemas/ideas.json"
LABELS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"labels": {"type": "array", "items": {"type": "string", "enum": ["bug", "feature", "docs"]}}},
    "required": ["labels"],
    "additionalProperties": False,
}


def workspace(tmp_path: Path, prompts: dict[str, str], schema: dict[str, Any] | None = IDEAS_SCHEMA) -> Path:
    root = tmp_path / "ws"
    files = dict(prompts)
    if schema is not None:
        files["schemas/ideas.json"] = json.dumps(schema)
    write_prompts(root, files)
    return root


def sent_schemas(p: ProviderProfile, emulator: Emulator, route: str) -> list[Any]:
    """The response schema of every call on `route` (a batch create: each of its requests), as sent."""
    found: list[Any] = []
    for call in emulator.calls(route):
        if route == p.create:
            bodies = (
                [r["params"] for r in call.body["requests"]]
                if p.name == "anthropic"
                else [r["request"] for r in call.body["batch"]["inputConfig"]["requests"]["requests"]]
            )
        else:
            bodies = [call.body]
        for body in bodies:
            if p.name == "anthropic":
                fmt = (body.get("output_config") or {}).get("format")
                found.append(fmt and (fmt["type"], fmt["schema"]))
            else:
                config = body.get("generationConfig") or body.get("generation_config") or {}
                mime = config.get("responseMimeType")
                schema = config.get("responseJsonSchema")
                found.append(schema and (mime, schema))
    return found


def expected_wire(p: ProviderProfile, schema: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    # `$schema` names the dialect the action validates with; it is not sent to the model.
    bare = {k: v for k, v in schema.items() if k != "$schema"}
    return ("json_schema", bare) if p.name == "anthropic" else ("application/json", bare)


def results_json(run: Run) -> list[dict[str, Any]]:
    path = run.workspace / run.outputs["results-json"]
    data: list[dict[str, Any]] = json.loads(path.read_text(encoding="utf-8"))
    return data


def test_conforming_batch(tmp_path: Path, emulator: Emulator, provider: ProviderProfile) -> None:
    p = provider
    ws = workspace(
        tmp_path,
        {"prompts/cli.md": "Ideas for the CLI.", "prompts/docs.md": "Ideas for the docs.", "prompts/ci.md": "CI."},
    )
    run = p.run(ws, emulator, prompt_files="prompts/*.md", response_schema="schemas/ideas.json", mode="batch")
    assert run.code == 0, run.log
    assert emulator.calls(p.sync) == []
    # Every request of the batch carried the schema through the provider's own structured output.
    assert sent_schemas(p, emulator, p.create) == [expected_wire(p, IDEAS_SCHEMA)] * 3
    assert run.outputs["results-json"] == "batch-results/results.json"
    rows = results_json(run)
    assert [r["custom_id"] for r in rows] == ["prompts_ci_md", "prompts_cli_md", "prompts_docs_md"]
    for row, line in zip(rows, sorted(run.results, key=lambda r: r["custom_id"]), strict=True):
        assert (row["status"], line["status"], line["validation"]) == ("succeeded", "succeeded", "valid")
        jsonschema.validate(row["json"], IDEAS_SCHEMA)
        assert row["json"] == line["json"] == json.loads(line["text"])
        assert row["source"] == line["source"]
        stored = json.loads((ws / "batch-results" / f"{row['custom_id']}.json").read_text(encoding="utf-8"))
        assert stored == row["json"]
    assert "| Structured results | 3 valid, 0 invalid then fixed by a rerun, 0 invalid" in run.summary


def test_invalid_in_batch_is_rerun_synchronously_and_fixed(
    tmp_path: Path, emulator: Emulator, provider: ProviderProfile
) -> None:
    p = provider
    ws = workspace(
        tmp_path,
        {"prompts/ok.md": "Ideas for the CLI.", "prompts/bad.md": "Ideas. [[emulator:schema-invalid-batch]]"},
    )
    run = p.run(
        ws,
        emulator,
        prompt_files="prompts/*.md",
        response_schema="schemas/ideas.json",
        mode="batch",
        timeout_minutes=10,
    )
    assert run.code == 0, run.log
    lines = run.by_id()
    ok, bad = lines["prompts_ok_md"], lines["prompts_bad_md"]
    assert (ok["via"], ok["validation"]) == ("batch", "valid")
    assert (bad["status"], bad["via"], bad["validation"]) == ("succeeded", "sync", "fixed")
    jsonschema.validate(bad["json"], IDEAS_SCHEMA)
    # The batch's answer was paid for: kept on the line, with where and why it did not match.
    first = bad["first_answer"]
    assert first["via"] == "batch" and first["text"]
    assert first["error"].startswith("the answer does not match the schema: at $.ideas[0]"), first["error"]
    assert 0 < first["cost_usd"] < bad["cost_usd"]
    assert p.sync_prompts(emulator) == ["Ideas. [[emulator:schema-invalid-batch]]"]
    assert sent_schemas(p, emulator, p.sync) == [expected_wire(p, IDEAS_SCHEMA)]
    assert "1 valid, 1 invalid then fixed by a rerun, 0 invalid" in run.summary
    assert "not matching the response schema" in run.log
    assert [r["status"] for r in results_json(run)] == ["succeeded", "succeeded"]


def test_answer_that_stays_invalid_is_errored_with_the_validation_message(
    tmp_path: Path, emulator: Emulator, provider: ProviderProfile
) -> None:
    p = provider
    ws = workspace(tmp_path, {"prompts/bad.md": "Ideas. [[emulator:schema-invalid]]", "prompts/ok.md": "Ideas."})
    run = p.run(
        ws,
        emulator,
        prompt_files="prompts/*.md",
        response_schema="schemas/ideas.json",
        mode="batch",
        timeout_minutes=10,
    )
    assert run.code == 1, run.log
    bad = run.by_id()["prompts_bad_md"]
    assert (bad["status"], bad["via"], bad["validation"], bad["json"]) == ("errored", "sync", "invalid", None)
    # Path and reason: the next step (or a person) can see what was wrong.
    assert bad["error"].startswith("the answer does not match the schema: at $.ideas[0].")
    assert bad["first_answer"]["via"] == "batch"
    assert len(emulator.calls(p.sync)) == 1  # one rerun, no more
    assert not (ws / "batch-results" / "prompts_bad_md.json").exists()
    assert {r["custom_id"]: (r["status"], r["json"] is None) for r in results_json(run)} == {
        "prompts_bad_md": ("errored", True),
        "prompts_ok_md": ("succeeded", False),
    }
    assert "1 valid, 0 invalid then fixed by a rerun, 1 invalid" in run.summary
    assert run.outputs["failed"] == "1"


def test_sync_mode_reruns_an_invalid_answer_once(tmp_path: Path, emulator: Emulator, provider: ProviderProfile) -> None:
    p = provider
    ws = workspace(tmp_path, {"prompts/bad.md": "Ideas. [[emulator:schema-invalid]]", "prompts/ok.md": "Ideas."})
    run = p.run(ws, emulator, prompt_files="prompts/*.md", response_schema="schemas/ideas.json", mode="sync")
    assert run.code == 1, run.log
    assert emulator.calls(p.create) == []
    assert sorted(p.sync_prompts(emulator)) == [
        "Ideas.",
        "Ideas. [[emulator:schema-invalid]]",
        "Ideas. [[emulator:schema-invalid]]",
    ]
    assert sent_schemas(p, emulator, p.sync) == [expected_wire(p, IDEAS_SCHEMA)] * 3
    bad = run.by_id()["prompts_bad_md"]
    assert (bad["status"], bad["validation"], bad["first_answer"]["via"]) == ("errored", "invalid", "sync")
    assert bad["usage"]["output_tokens"] == 2 * bad["first_answer"]["usage"]["output_tokens"]


@pytest.mark.parametrize(
    ("schema", "refused_by", "reason"),
    [
        ({"type": "objekt"}, {"anthropic", "gemini"}, "not valid JSON Schema: at $.type"),
        ({"$schema": "https://example.com/my-dialect", "type": "object"}, {"anthropic", "gemini"}, "unknown $schema"),
        ({"type": "string", "minLength": 3}, {"anthropic", "gemini"}, "keyword 'minLength' is not supported"),
        (
            {"type": "object", "properties": {"a": {"type": "string"}}},
            {"anthropic"},
            "an object must set additionalProperties to false",
        ),
    ],
)
def test_bad_schema_is_refused_before_any_call(
    tmp_path: Path,
    emulator: Emulator,
    provider: ProviderProfile,
    schema: dict[str, Any],
    refused_by: set[str],
    reason: str,
) -> None:
    p = provider
    ws = workspace(tmp_path, {"prompts/a.md": "Ideas."}, schema)
    run = p.run(ws, emulator, prompt_files="prompts/*.md", response_schema="schemas/ideas.json", mode="batch")
    if p.name not in refused_by:
        assert run.code == 0, run.log
        return
    assert run.code == 2, run.log
    assert emulator.calls() == []
    assert "::error" in run.log and "response-schema" in run.log and reason in run.log, run.log
    assert "Traceback" not in run.log


def test_bad_schema_file_and_per_request_schema_are_refused_before_any_call(
    tmp_path: Path, emulator: Emulator, provider: ProviderProfile
) -> None:
    p = provider
    ws = workspace(tmp_path, {"prompts/a.md": "Ideas.", "schemas/broken.json": "{not json"})
    run = p.run(ws, emulator, prompt_files="prompts/*.md", response_schema="schemas/broken.json")
    assert run.code == 2 and "is not valid JSON" in run.log and emulator.calls() == []
    run = p.run(ws, emulator, prompt_files="prompts/*.md", response_schema="schemas/missing.json")
    assert run.code == 2 and "response schema file not found" in run.log and emulator.calls() == []
    bad_line = json.dumps({"prompt": "x", "response_schema": {"type": "array", "minItems": "two"}})
    write_prompts(ws, {"more/b.jsonl": bad_line + "\n"})
    run = p.run(ws, emulator, prompt_files="more/b.jsonl", mode="batch")
    assert run.code == 2, run.log
    assert "more/b.jsonl:1: response_schema: not valid JSON Schema: at $.minItems" in run.log
    assert emulator.calls() == []


def test_per_request_schemas(tmp_path: Path, emulator: Emulator, provider: ProviderProfile) -> None:
    p = provider
    lines = [
        {"custom_id": "triage", "prompt": "Label issue 7.", "response_schema": LABELS_SCHEMA},
        {"custom_id": "ideas", "prompt": "Ideas for the docs.", "response_schema": "schemas/ideas.json"},
        {"custom_id": "default", "prompt": "Label issue 9."},
    ]
    ws = workspace(
        tmp_path,
        {
            "prompts/mixed.jsonl": "".join(json.dumps(line) + "\n" for line in lines),
            "schemas/labels.json": json.dumps(LABELS_SCHEMA),
        },
    )
    run = p.run(ws, emulator, prompt_files="prompts/mixed.jsonl", response_schema="schemas/labels.json", mode="batch")
    assert run.code == 0, run.log
    assert sent_schemas(p, emulator, p.create) == [
        expected_wire(p, LABELS_SCHEMA),
        expected_wire(p, IDEAS_SCHEMA),
        expected_wire(p, LABELS_SCHEMA),
    ]
    by_id = {r["custom_id"]: r["json"] for r in results_json(run)}
    jsonschema.validate(by_id["triage"], LABELS_SCHEMA)
    jsonschema.validate(by_id["default"], LABELS_SCHEMA)
    jsonschema.validate(by_id["ideas"], IDEAS_SCHEMA)
    assert "ideas" in by_id["ideas"] and "labels" in by_id["triage"]


def test_no_schema_no_structured_results(tmp_path: Path, emulator: Emulator, provider: ProviderProfile) -> None:
    p = provider
    ws = workspace(tmp_path, {"prompts/a.md": "Ideas."}, None)
    run = p.run(ws, emulator, prompt_files="prompts/*.md", mode="batch")
    assert run.code == 0, run.log
    assert run.outputs["results-json"] == ""
    assert not (ws / "batch-results" / "results.json").exists()
    assert "json" not in run.results[0] and "Structured results" not in run.summary
    assert sent_schemas(p, emulator, p.create) == [None]


def test_demo_structured(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from batch_arbiter.cli import main

    assert main(["demo", "--dir", str(tmp_path / "demo"), "--structured"]) == 0
    out = capsys.readouterr().out
    assert "5 valid, 1 invalid then fixed by a rerun, 0 invalid" in out
    results = tmp_path / "demo" / "batch-results"
    rows = json.loads((results / "results.json").read_text(encoding="utf-8"))
    assert len(rows) == 6 and all(r["status"] == "succeeded" for r in rows)
    schema = json.loads((tmp_path / "demo" / "prompts" / "ideas.schema.json").read_text(encoding="utf-8"))
    for row in rows:
        jsonschema.validate(row["json"], schema)


def test_gemini_batch_sent_as_a_file_carries_the_schema(tmp_path: Path, emulator: Emulator) -> None:
    emulator.config.gemini_inline_limit_bytes = 2048
    prompts = {f"prompts/long-{n}.md": f"Long signal {n}: " + "evidence " * 100 for n in range(3)}
    prompts["prompts/bad.md"] = "Ideas. [[emulator:schema-invalid-batch]]"
    ws = workspace(tmp_path, prompts)
    run = PROVIDERS["gemini"].run(
        ws, emulator, prompt_files="prompts/*.md", response_schema=SCHEMA_FILE, mode="batch", timeout_minutes=10
    )
    assert run.code == 0, run.log
    create = emulator.calls("gemini_create")[-1]
    lines = [
        json.loads(line)
        for line in emulator.gemini.file(create.body["batch"]["inputConfig"]["fileName"]).data.splitlines()
    ]
    bare = {k: v for k, v in IDEAS_SCHEMA.items() if k != "$schema"}
    for line in lines:
        config = line["request"]["generationConfig"]
        assert (config["responseMimeType"], config["responseJsonSchema"]) == ("application/json", bare)
    assert {r["custom_id"]: r["validation"] for r in run.results} == {
        **{f"prompts_long-{n}_md": "valid" for n in range(3)},
        "prompts_bad_md": "fixed",
    }


def test_left_then_collected_later_is_validated_at_collect(
    tmp_path: Path, emulator: Emulator, provider: ProviderProfile
) -> None:
    p = provider
    emulator.config.processing_seconds = 1.0
    ws = workspace(tmp_path, {"prompts/ok.md": "Ideas.", "prompts/bad.md": "Ideas. [[emulator:schema-invalid-batch]]"})
    inputs: dict[str, Any] = {"prompt_files": "prompts/*.md", "response_schema": SCHEMA_FILE, "mode": "batch"}
    first = p.run(ws, emulator, **inputs, timeout_minutes=0.002, on_timeout="leave")
    assert first.code == 0 and first.outputs["status"] == "pending", first.log
    # Nothing answered yet: every row is pending, none has a value the next step could take.
    assert [(r["status"], r["json"]) for r in results_json(first)] == [("pending", None), ("pending", None)]
    second = p.run(ws, emulator, **inputs, batch_id=first.outputs["batch-id"], poll_interval=0.2, timeout_minutes=10)
    assert second.code == 0, second.log
    assert len(emulator.calls(p.create)) == 1
    assert {r["custom_id"]: r["validation"] for r in second.results} == {
        "prompts_ok_md": "valid",
        "prompts_bad_md": "fixed",
    }
    for row in results_json(second):
        jsonschema.validate(row["json"], IDEAS_SCHEMA)


def test_cut_short_answer_is_invalid_and_rerun_and_a_refusal_is_not(
    tmp_path: Path, emulator: Emulator, provider: ProviderProfile
) -> None:
    p = provider
    cut = "[[emulator:max-tokens]] Ideas for the CLI."
    refused = "[[emulator:refusal]] Ideas for something forbidden."
    ws = workspace(tmp_path, {"prompts/cut.md": cut, "prompts/refused.md": refused, "prompts/ok.md": "Ideas."})
    run = p.run(
        ws, emulator, prompt_files="prompts/*.md", response_schema=SCHEMA_FILE, mode="batch", timeout_minutes=10
    )
    assert run.code == 1, run.log
    lines = run.by_id()
    # Cut at the output limit: not JSON the next step can use, so errored with why, and rerun once (cut again).
    cut_line = lines["prompts_cut_md"]
    assert (cut_line["status"], cut_line["validation"], cut_line["json"]) == ("errored", "invalid", None)
    assert cut_line["error"].startswith("the answer is not JSON"), cut_line["error"]
    assert cut_line["first_answer"]["via"] == "batch"
    # A refusal has no answer to validate: errored with its reason, never rerun.
    refused_line = lines["prompts_refused_md"]
    assert refused_line["status"] == "errored" and "validation" not in refused_line
    assert p.sync_prompts(emulator) == [cut]
    assert lines["prompts_ok_md"]["validation"] == "valid"
    assert {r["custom_id"]: r["status"] for r in results_json(run)} == {
        "prompts_cut_md": "errored",
        "prompts_ok_md": "succeeded",
        "prompts_refused_md": "errored",
    }
