"""The emulator's Gemini API against the real google-genai SDK over HTTP: if these pass, code written
against the SDK sees the wire shapes and behaviours it would see from the Gemini Developer API."""

from __future__ import annotations

import io
import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from google import genai
from google.genai import errors, types

from batch_arbiter.emulator import Emulator, EmulatorConfig, Fault

MODEL = "gemini-3.8-flash"


@pytest.fixture
def emu() -> Iterator[Emulator]:
    with Emulator(EmulatorConfig(processing_seconds=0.1)) as emulator:
        yield emulator


@pytest.fixture
def client(emu: Emulator) -> Iterator[genai.Client]:
    # v1beta, as the adapter pins it: the Batch and Files APIs are not served under the SDK's default v1.
    options = types.HttpOptions(base_url=emu.base_url, api_version="v1beta", timeout=10_000)
    sdk = genai.Client(api_key="test-key", vertexai=False, http_options=options)
    yield sdk
    sdk.close()


def inline(key: str, text: str | None = None, **config: Any) -> types.InlinedRequest:
    return types.InlinedRequest(
        contents=text or f"prompt for {key}",
        metadata={"key": key},
        config=types.GenerateContentConfig(**config) if config else None,
    )


def wait_done(client: genai.Client, name: str, timeout: float = 5.0) -> types.BatchJob:
    deadline = time.monotonic() + timeout
    while True:
        job = client.batches.get(name=name)
        if job.done:
            return job
        assert time.monotonic() < deadline, f"job still {job.state} after {timeout}s"
        time.sleep(0.02)


def raw(emu: Emulator, method: str, path: str, headers: dict[str, str] | None = None, body: Any = None) -> Any:
    """(status, parsed body) of a request without the SDK, for what the SDK hides."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(emu.base_url + path, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        with error:
            return error.code, json.loads(error.read() or b"null")


def test_generate_content_returns_text_and_usage(client: genai.Client, emu: Emulator) -> None:
    response = client.models.generate_content(
        model=MODEL,
        contents="Name one colour.",
        config=types.GenerateContentConfig(system_instruction="Be brief.", max_output_tokens=64),
    )
    assert response.text == "Emulated reply from gemini-3.8-flash to: Name one colour."
    usage = response.usage_metadata
    assert usage is not None and usage.prompt_token_count and usage.candidates_token_count
    assert usage.thoughts_token_count == 64  # thinking by default, billed as output
    assert usage.total_token_count == usage.prompt_token_count + usage.candidates_token_count + 64
    (call,) = emu.calls("gemini_generate")
    assert call.path == "/v1beta/models/gemini-3.8-flash:generateContent"
    assert "x-goog-api-key" not in call.headers  # credentials are never logged


def test_request_errors_come_back_as_the_sdk_expects(client: genai.Client) -> None:
    with pytest.raises(errors.ClientError) as unknown:
        client.models.generate_content(model="gemini-9-imaginary", contents="x")
    assert (unknown.value.code, unknown.value.status) == (404, "NOT_FOUND")
    # The API serves 3.1 Pro as a preview only; the bare id is not found there, so not here either.
    with pytest.raises(errors.ClientError) as bare:
        client.models.generate_content(model="gemini-3.1-pro", contents="x")
    assert bare.value.code == 404
    both = types.ThinkingConfig(thinking_level=types.ThinkingLevel.LOW, thinking_budget=1024)
    with pytest.raises(errors.ClientError, match="cannot both be set"):
        client.models.generate_content(
            model=MODEL, contents="x", config=types.GenerateContentConfig(thinking_config=both)
        )
    with pytest.raises(errors.ClientError, match=r"not supported by gemini-2\.5-pro"):
        client.models.generate_content(
            model="gemini-2.5-pro",
            contents="x",
            config=types.GenerateContentConfig(
                thinking_config=types.ThinkingConfig(thinking_level=types.ThinkingLevel.HIGH)
            ),
        )
    with pytest.raises(errors.ClientError, match="thinking_budget is not supported by gemini-4-argon"):
        client.models.generate_content(
            model="gemini-4-argon",
            contents="x",
            config=types.GenerateContentConfig(thinking_config=types.ThinkingConfig(thinking_budget=2048)),
        )


def test_flex_can_shed_a_request_that_standard_answers(client: genai.Client, emu: Emulator) -> None:
    text = "busy hour [[emulator:flex-unavailable]]"
    with pytest.raises(errors.ClientError) as shed:
        client.models.generate_content(
            model=MODEL, contents=text, config=types.GenerateContentConfig(service_tier=types.ServiceTier.FLEX)
        )
    assert (shed.value.code, shed.value.status) == (429, "RESOURCE_EXHAUSTED")
    assert client.models.generate_content(model=MODEL, contents=text).text
    assert [c.body.get("serviceTier") for c in emu.calls("gemini_generate")] == ["flex", None]


def test_keys_are_checked(emu: Emulator) -> None:
    path = f"/v1/models/{MODEL}:generateContent"
    body = {"contents": [{"parts": [{"text": "x"}]}]}
    assert raw(emu, "POST", path, body=body)[0] == 403
    emu.config.api_key = "right"
    status, error = raw(emu, "POST", path, {"x-goog-api-key": "wrong", "Content-Type": "application/json"}, body)
    assert status == 400 and error["error"]["message"].startswith("API key not valid")
    assert raw(emu, "POST", path, {"x-goog-api-key": "right", "Content-Type": "application/json"}, body)[0] == 200


def test_count_tokens(client: genai.Client, emu: Emulator) -> None:
    assert client.models.count_tokens(model=MODEL, contents="a" * 400).total_tokens == 100
    assert emu.calls("gemini_count_tokens")[0].path == f"/v1beta/models/{MODEL}:countTokens"


def test_inline_job_lifecycle_results_and_raw_stats(client: genai.Client, emu: Emulator) -> None:
    emu.config.outcomes = {"b": "errored"}
    job = client.batches.create(model=MODEL, src=[inline("a"), inline("b"), inline("c")], config={"display_name": "n"})
    assert job.name is not None and job.name.startswith("batches/")
    assert (job.state, job.display_name) == (types.JobState.JOB_STATE_PENDING, "n")
    done = wait_done(client, job.name)
    assert done.state == types.JobState.JOB_STATE_SUCCEEDED
    assert done.dest is not None and done.dest.inlined_responses is not None
    by_key = {(r.metadata or {})["key"]: r for r in done.dest.inlined_responses}
    assert set(by_key) == {"a", "b", "c"}
    assert (
        by_key["a"].response is not None
        and by_key["a"].response.text == "Emulated reply from gemini-3.8-flash to: prompt for a"
    )
    assert by_key["b"].response is None and by_key["b"].error is not None and by_key["b"].error.code == 3
    # The SDK drops the batch stats; they are in the raw body, int64s as strings.
    status, body = raw(emu, "GET", f"/v1beta/{job.name}", {"x-goog-api-key": "k"})
    assert status == 200 and body["done"] is True
    assert body["metadata"]["batchStats"] == {
        "requestCount": "3",
        "successfulRequestCount": "2",
        "failedRequestCount": "1",
        "pendingRequestCount": "0",
    }
    # Batches are served under v1beta only (the documented version), generateContent under both.
    assert raw(emu, "GET", f"/v1/{job.name}", {"x-goog-api-key": "k"})[0] == 404
    generate = {"contents": [{"parts": [{"text": "x"}]}]}
    assert raw(emu, "POST", f"/v1/models/{MODEL}:generateContent", {"x-goog-api-key": "k"}, generate)[0] == 200


def test_the_sdk_default_version_reaches_no_batch_route(emu: Emulator) -> None:
    # google-genai 3.x sends batch calls under its default `v1`, which the Batch API is not served under.
    sdk = genai.Client(api_key="k", vertexai=False, http_options=types.HttpOptions(base_url=emu.base_url))
    try:
        with pytest.raises(errors.ClientError) as missing:
            sdk.batches.create(model=MODEL, src=[inline("a")])
        assert missing.value.code == 404
        assert emu.calls("gemini_create") == []
    finally:
        sdk.close()


def test_file_job_upload_create_and_download(client: genai.Client, emu: Emulator) -> None:
    lines = b"".join(
        json.dumps({"key": k, "request": {"contents": [{"parts": [{"text": f"q {k}"}]}]}}).encode() + b"\n"
        for k in ("x", "y")
    )
    with pytest.raises(ValueError, match="Unknown mime type"):
        client.files.upload(file=io.BytesIO(lines))
    uploaded = client.files.upload(file=io.BytesIO(lines), config={"mime_type": "application/jsonl"})
    assert uploaded.name is not None and uploaded.size_bytes == len(lines)
    job = client.batches.create(model=MODEL, src=uploaded.name)
    assert job.name is not None
    done = wait_done(client, job.name)
    assert done.dest is not None and done.dest.file_name is not None
    out = [json.loads(line) for line in client.files.download(file=done.dest.file_name).splitlines()]
    assert {o["key"] for o in out} == {"x", "y"} and all("response" in o for o in out)
    with pytest.raises(errors.ClientError, match="Only generated files"):
        client.files.download(file=uploaded.name)


def test_inline_limit_is_enforced(client: genai.Client, emu: Emulator) -> None:
    emu.config.gemini_inline_limit_bytes = 1000
    with pytest.raises(errors.ClientError, match="payload size exceeds the limit: 1000 bytes"):
        client.batches.create(model=MODEL, src=[inline(str(n), "word " * 50) for n in range(5)])


def test_cancel_keeps_what_finished(client: genai.Client, emu: Emulator) -> None:
    job = client.batches.create(model=MODEL, src=[inline("done"), inline("slow", "wait [[emulator:hang]]")])
    assert job.name is not None
    time.sleep(0.15)  # past processing_seconds: "done" has finished, "slow" never will
    assert client.batches.get(name=job.name).state == types.JobState.JOB_STATE_RUNNING
    client.batches.cancel(name=job.name)
    finished = wait_done(client, job.name)
    assert finished.state == types.JobState.JOB_STATE_CANCELLED
    assert finished.dest is not None and finished.dest.inlined_responses is not None
    assert [(r.metadata or {})["key"] for r in finished.dest.inlined_responses] == ["done"]
    with pytest.raises(errors.ClientError, match="already finished"):
        client.batches.cancel(name=job.name)


def test_a_failed_job_reports_its_error_only_in_the_raw_body(client: genai.Client, emu: Emulator) -> None:
    job = client.batches.create(model=MODEL, src=[inline("a", "x [[emulator:job-failed]]"), inline("b")])
    assert job.name is not None
    failed = wait_done(client, job.name)
    assert failed.state == types.JobState.JOB_STATE_FAILED and failed.error is None  # the SDK drops it
    body = raw(emu, "GET", f"/v1beta/{job.name}", {"x-goog-api-key": "k"})[1]
    assert body["error"] == {"code": 3, "message": "the job failed ([[emulator:job-failed]] marker)"}


def test_expired_items_end_the_job_expired(client: genai.Client, emu: Emulator) -> None:
    job = client.batches.create(model=MODEL, src=[inline("a"), inline("late", "x [[emulator:expired]]")])
    assert job.name is not None
    done = wait_done(client, job.name)
    assert done.state == types.JobState.JOB_STATE_EXPIRED
    assert emu.gemini_job(job.name).results() == {"a": "succeeded", "late": "expired"}


def test_faults_hit_gemini_routes_only(client: genai.Client, emu: Emulator) -> None:
    emu.config.faults = [Fault("gemini_get", 503, times=1)]
    job = client.batches.create(model=MODEL, src=[inline("a")])
    assert job.name is not None
    with pytest.raises(errors.ServerError) as failed:
        client.batches.get(name=job.name)  # no retries: the SDK's default
    assert (failed.value.code, failed.value.status) == (503, "UNAVAILABLE")
    assert client.batches.get(name=job.name).name == job.name
    assert [c.status for c in emu.calls("gemini_get")] == [503, 200]
    assert emu.calls("retrieve") == []


def test_list_pages_newest_first(client: genai.Client) -> None:
    names = [client.batches.create(model=MODEL, src=[inline(str(n))]).name for n in range(3)]
    listed = [job.name for job in client.batches.list(config={"page_size": 2})]
    assert listed == names[::-1]
