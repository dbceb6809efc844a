"""The emulator against the real anthropic SDK over HTTP: if these pass, code written against the SDK
sees the wire shapes and behaviours it would see from the real API."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import anthropic
import pytest
from anthropic.types.messages import MessageBatch
from anthropic.types.messages.batch_create_params import Request

from batch_arbiter.emulator import Emulator, EmulatorConfig, Fault

MODEL = "claude-sonnet-5-5"
VERSION = "2026-10-21"


@pytest.fixture
def emu() -> Iterator[Emulator]:
    with Emulator(EmulatorConfig(processing_seconds=0.1)) as emulator:
        yield emulator


@pytest.fixture
def client(emu: Emulator) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(api_key="test-key", base_url=emu.base_url, max_retries=0) as sdk:
        yield sdk


def params(text: str, *, model: str = MODEL, max_tokens: int = 256, **extra: Any) -> dict[str, Any]:
    return {"model": model, "max_tokens": max_tokens, "messages": [{"role": "user", "content": text}], **extra}


def item(custom_id: str, text: str | None = None, **extra: Any) -> Request:
    return cast(Request, {"custom_id": custom_id, "params": params(text or f"prompt for {custom_id}", **extra)})


def wait_ended(client: anthropic.Anthropic, batch_id: str, timeout: float = 5.0) -> MessageBatch:
    deadline = time.monotonic() + timeout
    while True:
        batch = client.messages.batches.retrieve(batch_id)
        if batch.processing_status == "ended":
            return batch
        assert time.monotonic() < deadline, f"batch still {batch.processing_status} after {timeout}s"
        time.sleep(0.02)


def result_types(client: anthropic.Anthropic, batch_id: str) -> dict[str, str]:
    return {line.custom_id: line.result.type for line in client.messages.batches.results(batch_id)}


def raw(
    emu: Emulator, method: str, path: str, headers: dict[str, str] | None = None, body: Any = None
) -> tuple[int, dict[str, str], bytes]:
    """A request without the SDK, for what the SDK will not send or hides."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(emu.base_url + path, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, dict(error.headers), error.read()


# --- sync messages --------------------------------------------------------------------------------


def test_sync_create_returns_text_and_usage(client: anthropic.Anthropic, emu: Emulator) -> None:
    message = client.messages.create(
        model=MODEL,
        max_tokens=256,
        messages=[
            {"role": "user", "content": "first question"},
            {"role": "assistant", "content": "an answer"},
            {"role": "user", "content": [{"type": "text", "text": "Summarise the design of the cache layer."}]},
        ],
    )
    assert message.type == "message" and message.role == "assistant" and message.model == MODEL
    assert message.id.startswith("msg_")
    [block] = message.content
    assert block.type == "text"
    assert block.text == f"Emulated reply from {MODEL} to: Summarise the design of the cache layer."
    assert message.stop_reason == "end_turn" and message.stop_sequence is None
    chars = len("first question") + len("an answer") + len("Summarise the design of the cache layer.")
    assert message.usage.input_tokens == pytest.approx(chars / 4, abs=3)
    assert message.usage.output_tokens > len(block.text) // 4
    assert message.usage.service_tier == "standard"
    assert message.usage.cache_read_input_tokens == 0 and message.usage.cache_creation_input_tokens == 0
    [call] = emu.calls("messages")
    assert (call.method, call.path, call.status) == ("POST", "/v1/messages", 200)
    assert call.body["max_tokens"] == 256


def test_reply_is_deterministic_and_capped_by_max_tokens(client: anthropic.Anthropic) -> None:
    long_text = "x" * 300
    first = client.messages.create(**params(long_text))
    second = client.messages.create(**params(long_text))
    assert first.content == second.content and first.usage == second.usage
    assert first.content[0].type == "text" and first.content[0].text.endswith("x" * 80 + "")
    assert "x" * 81 not in first.content[0].text
    capped = client.messages.create(**params(long_text, max_tokens=3))
    assert capped.stop_reason == "max_tokens" and capped.usage.output_tokens == 3


@pytest.mark.parametrize("name", ["temperature", "top_p", "top_k"])
def test_sampling_params_removed_in_this_api_version(client: anthropic.Anthropic, name: str) -> None:
    with pytest.raises(anthropic.BadRequestError) as caught:
        client.messages.create(**params("hi"), extra_body={name: 1})
    assert caught.value.status_code == 400
    body = caught.value.body
    assert isinstance(body, dict) and body["type"] == "error"
    assert body["error"]["type"] == "invalid_request_error" and name in body["error"]["message"]
    assert body["request_id"].startswith("req_")
    assert caught.value.request_id == body["request_id"]  # the SDK reads the request-id header


def test_unknown_params_and_missing_fields_are_rejected(client: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.BadRequestError, match="not_a_param"):
        client.messages.create(**params("hi"), extra_body={"not_a_param": True})
    with pytest.raises(anthropic.BadRequestError, match="max_tokens"):
        client.messages.create(**params("hi"), extra_body={"max_tokens": 0})


def test_wrong_anthropic_version_is_rejected(client: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.BadRequestError, match="anthropic-version"):
        client.messages.create(**params("hi"), extra_headers={"anthropic-version": "2023-06-01"})


def test_missing_version_header_is_rejected(emu: Emulator) -> None:
    status, _, body = raw(emu, "GET", "/v1/models", {"x-api-key": "k"})
    assert status == 400 and json.loads(body)["error"]["type"] == "invalid_request_error"


def test_configured_api_key_must_match(emu: Emulator) -> None:
    emu.config.api_key = "the-right-key"
    with anthropic.Anthropic(api_key="wrong-key", base_url=emu.base_url, max_retries=0) as wrong:
        with pytest.raises(anthropic.AuthenticationError) as caught:
            wrong.models.list()
        assert caught.value.status_code == 401
    with anthropic.Anthropic(api_key="the-right-key", base_url=emu.base_url, max_retries=0) as right:
        assert right.models.retrieve(MODEL).id == MODEL
    # x-api-key, which SDK 1.x and curl users send, is accepted as well.
    status, _, _ = raw(emu, "GET", f"/v1/models/{MODEL}", {"x-api-key": "the-right-key", "anthropic-version": VERSION})
    assert status == 200
    status, _, body = raw(emu, "GET", "/v1/models", {"anthropic-version": VERSION})
    assert status == 401 and json.loads(body)["error"]["type"] == "authentication_error"
    # Credentials never reach the call log.
    for call in emu.calls():
        assert "authorization" not in call.headers and "x-api-key" not in call.headers
        assert "the-right-key" not in json.dumps(call.headers)


def test_unknown_model_is_404_for_sync(client: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.NotFoundError) as caught:
        client.messages.create(**params("hi", model="claude-imaginary-9"))
    assert isinstance(caught.value.body, dict) and caught.value.body["error"]["type"] == "not_found_error"


def test_effort_the_model_lacks_is_rejected(client: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.BadRequestError, match="effort"):
        client.messages.create(**params("hi", model="claude-haiku-4-5"), output_config={"effort": "low"})
    with pytest.raises(anthropic.BadRequestError, match="effort"):
        client.messages.create(**params("hi", model="claude-opus-4-6"), output_config={"effort": "xhigh"})
    ok = client.messages.create(**params("hi", model="claude-opus-5-5"), output_config={"effort": "xhigh"})
    assert ok.stop_reason == "end_turn"


def test_sync_marker_errors_but_batch_markers_do_not_affect_sync(client: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.BadRequestError) as caught:
        client.messages.create(**params("please fail [[emulator:sync-errored]]"))
    assert isinstance(caught.value.body, dict) and caught.value.body["error"]["type"] == "invalid_request_error"
    for marker in ("errored", "expired", "canceled", "hang"):
        message = client.messages.create(**params(f"fallback [[emulator:{marker}]]"))
        assert message.stop_reason == "end_turn"


def test_count_tokens(client: anthropic.Anthropic) -> None:
    counted = client.messages.count_tokens(
        model=MODEL, system="You are terse.", messages=[{"role": "user", "content": "a" * 400}]
    )
    assert counted.input_tokens == 100 + 4  # ceil(400/4) + ceil(14/4)
    with pytest.raises(anthropic.NotFoundError):
        client.messages.count_tokens(model="claude-nope", messages=[{"role": "user", "content": "hi"}])


# --- prompt caching -------------------------------------------------------------------------------


def cached_system(ttl: str) -> list[dict[str, Any]]:
    return [
        {"type": "text", "text": "You review pull requests. " * 40},
        {
            "type": "text",
            "text": "Project rules: " + "be kind. " * 40,
            "cache_control": {"type": "ephemeral", "ttl": ttl},
        },
    ]


def test_prompt_cache_is_written_once_then_read(client: anthropic.Anthropic) -> None:
    system = cached_system("1h")
    prefix_tokens = sum((len(block["text"]) + 3) // 4 for block in system)
    first = client.messages.create(**params("review PR 1", system=system))
    second = client.messages.create(**params("review PR 2, which is different", system=system))
    assert first.usage.cache_creation_input_tokens == prefix_tokens
    assert first.usage.cache_creation is not None
    assert first.usage.cache_creation.ephemeral_1h_input_tokens == prefix_tokens
    assert first.usage.cache_creation.ephemeral_5m_input_tokens == 0
    assert first.usage.cache_read_input_tokens == 0
    assert second.usage.cache_read_input_tokens == prefix_tokens
    assert second.usage.cache_creation_input_tokens == 0
    # The cached prefix is not counted again as plain input.
    assert first.usage.input_tokens == (len("review PR 1") + 3) // 4
    assert second.usage.input_tokens == (len("review PR 2, which is different") + 3) // 4
    # A different prefix (or model) is a different cache entry, and the 5m TTL is reported as such.
    other_system = [*system[:1], {"type": "text", "text": "Other rules.", "cache_control": {"type": "ephemeral"}}]
    other = client.messages.create(**params("review PR 3", system=other_system))
    assert other.usage.cache_read_input_tokens == 0
    assert other.usage.cache_creation is not None and other.usage.cache_creation.ephemeral_5m_input_tokens > 0


def test_batch_items_share_the_cache_in_request_order(client: anthropic.Anthropic) -> None:
    system = cached_system("1h")
    batch = client.messages.batches.create(requests=[item(f"r{i}", f"question {i}", system=system) for i in range(4)])
    wait_ended(client, batch.id)
    usage = {}
    for line in client.messages.batches.results(batch.id):
        assert line.result.type == "succeeded"
        usage[line.custom_id] = line.result.message.usage
    assert (usage["r0"].cache_creation_input_tokens or 0) > 0 and usage["r0"].cache_read_input_tokens == 0
    for name in ("r1", "r2", "r3"):
        assert usage[name].cache_read_input_tokens == usage["r0"].cache_creation_input_tokens
        assert usage[name].service_tier == "batch"
    # Downloading again gives identical numbers: the accounting happened once, when the batch ended.
    again = {line.custom_id: line for line in client.messages.batches.results(batch.id)}
    assert again["r0"].result.type == "succeeded" and again["r0"].result.message.usage == usage["r0"]


# --- batches --------------------------------------------------------------------------------------


def test_batch_lifecycle_and_all_result_types_from_outcome_map(client: anthropic.Anthropic, emu: Emulator) -> None:
    emu.config.processing_seconds = 0.3
    emu.config.outcomes = {"err-*": "errored", "exp-*": "expired", "can-*": "canceled"}
    ids = ["ok-1", "ok-2", "err-1", "exp-1", "can-1"]
    created = client.messages.batches.create(requests=[item(i) for i in ids])
    assert created.id.startswith("msgbatch_") and created.type == "message_batch"
    assert created.processing_status == "in_progress"
    assert created.request_counts.processing == 5 and created.request_counts.succeeded == 0
    assert created.results_url is None and created.ended_at is None and created.cancel_initiated_at is None
    assert (created.expires_at - created.created_at).total_seconds() == pytest.approx(24 * 3600)

    still = client.messages.batches.retrieve(created.id)
    assert still.processing_status == "in_progress" and still.request_counts.processing == 5
    with pytest.raises(anthropic.AnthropicError, match="No `results_url`"):
        list(client.messages.batches.results(created.id))

    ended = wait_ended(client, created.id)
    counts = ended.request_counts
    assert (counts.processing, counts.succeeded, counts.errored, counts.expired, counts.canceled) == (0, 2, 1, 1, 1)
    assert ended.ended_at is not None
    assert (ended.ended_at - ended.created_at).total_seconds() == pytest.approx(0.3, abs=0.01)
    assert ended.results_url == f"{emu.base_url}/v1/messages/batches/{created.id}/results"

    lines = {line.custom_id: line for line in client.messages.batches.results(created.id)}
    assert {k: v.result.type for k, v in lines.items()} == {
        "ok-1": "succeeded",
        "ok-2": "succeeded",
        "err-1": "errored",
        "exp-1": "expired",
        "can-1": "canceled",
    }
    ok = lines["ok-1"].result
    assert ok.type == "succeeded"
    assert ok.message.content[0].type == "text"
    assert ok.message.content[0].text == f"Emulated reply from {MODEL} to: prompt for ok-1"
    assert ok.message.usage.service_tier == "batch"
    err = lines["err-1"].result
    assert err.type == "errored" and err.error.type == "error"
    assert err.error.error.type == "invalid_request_error" and err.error.request_id
    assert emu.batch(created.id).results()["exp-1"] == "expired"


def test_markers_pick_the_outcome_and_beat_the_glob_map(client: anthropic.Anthropic, emu: Emulator) -> None:
    emu.config.outcomes = {"*": "errored"}
    requests = [item("plain")] + [
        item(f"m-{kind}", f"do it [[emulator:{kind}]]") for kind in ("errored", "expired", "canceled")
    ]
    batch = client.messages.batches.create(requests=requests)
    wait_ended(client, batch.id)
    assert result_types(client, batch.id) == {
        "plain": "errored",
        "m-errored": "errored",
        "m-expired": "expired",
        "m-canceled": "canceled",
    }


def test_unknown_model_errors_only_that_item(client: anthropic.Anthropic) -> None:
    batch = client.messages.batches.create(requests=[item("good"), item("bad", model="claude-imaginary-9")])
    wait_ended(client, batch.id)
    lines = {line.custom_id: line.result for line in client.messages.batches.results(batch.id)}
    assert lines["good"].type == "succeeded"
    bad = lines["bad"]
    assert bad.type == "errored" and bad.error.error.type == "not_found_error"


@pytest.mark.parametrize(
    ("requests", "needle"),
    [
        ([item("has space")], "custom_id"),
        ([item("x" * 65)], "custom_id"),
        ([item("ümlaut")], "custom_id"),
        ([item("same"), item("same")], "duplicate"),
        ([], "requests"),
        ([item("a", temperature=0.5)], "temperature"),
        ([item("a", stream=True)], "stream"),
        ([{"custom_id": "a"}], "params"),
    ],
)
def test_invalid_batch_is_refused_whole(
    client: anthropic.Anthropic, emu: Emulator, requests: list[Any], needle: str
) -> None:
    with pytest.raises(anthropic.BadRequestError, match=needle):
        client.messages.batches.create(requests=requests)
    assert [c.status for c in emu.calls("create")] == [400]
    assert emu.anthropic.batch_ids() == []


def test_cancel_hang_batch_keeps_finished_items(client: anthropic.Anthropic, emu: Emulator) -> None:
    emu.config.processing_seconds = 0.05
    emu.config.outcomes = {"slow": "hang"}
    batch = client.messages.batches.create(requests=[item("fast-1"), item("fast-2"), item("slow")])
    time.sleep(0.15)
    # Past processing_seconds, yet a hang item keeps the whole batch open.
    assert client.messages.batches.retrieve(batch.id).processing_status == "in_progress"
    with pytest.raises(anthropic.BadRequestError):
        client.messages.batches.delete(batch.id)

    canceling = client.messages.batches.cancel(batch.id)
    assert canceling.processing_status == "canceling" and canceling.cancel_initiated_at is not None
    assert canceling.results_url is None

    ended = wait_ended(client, batch.id)
    assert ended.cancel_initiated_at == canceling.cancel_initiated_at
    assert (ended.request_counts.succeeded, ended.request_counts.canceled) == (2, 1)
    assert result_types(client, batch.id) == {"fast-1": "succeeded", "fast-2": "succeeded", "slow": "canceled"}

    with pytest.raises(anthropic.BadRequestError, match="ended"):
        client.messages.batches.cancel(batch.id)
    deleted = client.messages.batches.delete(batch.id)
    assert (deleted.id, deleted.type) == (batch.id, "message_batch_deleted")
    with pytest.raises(anthropic.NotFoundError):
        client.messages.batches.retrieve(batch.id)


def test_cancel_before_processing_finishes_cancels_everything(client: anthropic.Anthropic, emu: Emulator) -> None:
    emu.config.processing_seconds = 30
    batch = client.messages.batches.create(requests=[item("a"), item("b")])
    client.messages.batches.cancel(batch.id)
    ended = wait_ended(client, batch.id)
    assert ended.request_counts.canceled == 2 and ended.request_counts.succeeded == 0
    assert result_types(client, batch.id) == {"a": "canceled", "b": "canceled"}


def test_results_endpoint_refuses_unfinished_and_unknown_batches(client: anthropic.Anthropic, emu: Emulator) -> None:
    emu.config.processing_seconds = 30
    batch = client.messages.batches.create(requests=[item("a")])
    headers = {"x-api-key": "k", "anthropic-version": VERSION}
    status, _, body = raw(emu, "GET", f"/v1/messages/batches/{batch.id}/results", headers)
    assert status == 400 and json.loads(body)["error"]["type"] == "invalid_request_error"
    status, _, body = raw(emu, "GET", "/v1/messages/batches/msgbatch_nope/results", headers)
    assert status == 404 and json.loads(body)["error"]["type"] == "not_found_error"
    with pytest.raises(anthropic.NotFoundError):
        client.messages.batches.retrieve("msgbatch_nope")


def test_results_url_is_absolute_and_follows_the_host_header(emu: Emulator) -> None:
    headers = {"x-api-key": "k", "anthropic-version": VERSION, "content-type": "application/json"}
    emu.config.processing_seconds = 0
    status, _, body = raw(emu, "POST", "/v1/messages/batches", headers, {"requests": [item("a")]})
    assert status == 200
    created = json.loads(body)
    assert created["processing_status"] == "in_progress" and created["results_url"] is None
    batch_id = created["id"]
    status, _, body = raw(emu, "GET", f"/v1/messages/batches/{batch_id}", {**headers, "Host": "emulator:8787"})
    assert json.loads(body)["results_url"] == f"http://emulator:8787/v1/messages/batches/{batch_id}/results"
    status, response_headers, body = raw(emu, "GET", f"/v1/messages/batches/{batch_id}/results", headers)
    assert status == 200 and response_headers.get("Transfer-Encoding") == "chunked"
    [line] = body.decode().splitlines()
    assert json.loads(line)["result"]["type"] == "succeeded"


def test_list_is_newest_first_and_paginates(client: anthropic.Anthropic) -> None:
    ids = [client.messages.batches.create(requests=[item(f"n{i}")]).id for i in range(3)]
    newest_first = ids[::-1]
    page = client.messages.batches.list(limit=2)
    assert [b.id for b in page.data] == newest_first[:2]
    assert page.has_more is True and page.first_id == newest_first[0] and page.last_id == newest_first[1]
    following = page.get_next_page()
    assert [b.id for b in following.data] == newest_first[2:] and following.has_more is False
    assert not following.has_next_page()
    # Auto-pagination walks every page via after_id.
    assert [b.id for b in client.messages.batches.list(limit=1)] == newest_first
    back = client.messages.batches.list(limit=5, before_id=newest_first[2])
    assert [b.id for b in back.data] == newest_first[:2] and back.has_more is False
    with pytest.raises(anthropic.BadRequestError):
        client.messages.batches.list(limit=0)


# --- faults ---------------------------------------------------------------------------------------


def test_fault_429_with_retry_after_is_logged(client: anthropic.Anthropic, emu: Emulator) -> None:
    emu.config.faults = [Fault("create", 429, times=1, retry_after=2)]
    with pytest.raises(anthropic.RateLimitError) as caught:
        client.messages.batches.create(requests=[item("a")])
    assert caught.value.response.headers["retry-after"] == "2"
    assert isinstance(caught.value.body, dict) and caught.value.body["error"]["type"] == "rate_limit_error"
    assert emu.anthropic.batch_ids() == []
    created = client.messages.batches.create(requests=[item("a")])
    assert [c.status for c in emu.calls("create")] == [429, 200]
    assert emu.calls("create")[0].body == emu.calls("create")[1].body
    assert emu.anthropic.batch_ids() == [created.id]


def test_sdk_retries_through_transient_faults(emu: Emulator) -> None:
    emu.config.faults = [
        Fault("retrieve", 529, times=2, retry_after=0.01),
        Fault("messages", 500, times=-1, retry_after=0.01),
    ]
    with anthropic.Anthropic(api_key="k", base_url=emu.base_url, max_retries=2) as sdk:
        batch = sdk.messages.batches.create(requests=[item("a")])
        assert sdk.messages.batches.retrieve(batch.id).id == batch.id
        with pytest.raises(anthropic.InternalServerError):
            sdk.messages.create(**params("hi"))
    assert [c.status for c in emu.calls("retrieve")] == [529, 529, 200]
    assert [c.status for c in emu.calls("messages")] == [500, 500, 500]
    assert emu.config.faults[0].times == 0 and emu.config.faults[1].times == -1


def test_faults_do_not_bypass_authentication(emu: Emulator) -> None:
    emu.config.faults = [Fault("models", 503, times=1)]
    status, _, _ = raw(emu, "GET", "/v1/models", {"anthropic-version": VERSION})
    assert status == 401
    assert emu.config.faults[0].times == 1


# --- models ---------------------------------------------------------------------------------------


def test_models_retrieve_reports_capabilities(client: anthropic.Anthropic) -> None:
    opus = client.models.retrieve("claude-opus-5-5")
    assert (opus.id, opus.type, opus.lifecycle, opus.line) == ("claude-opus-5-5", "model", "active", "opus")
    assert opus.display_name == "Claude Opus 5.5" and opus.max_tokens == 128_000
    caps = opus.capabilities
    assert caps is not None and caps.batch.supported
    assert caps.effort.supported and caps.effort.xhigh is not None and caps.effort.xhigh.supported
    assert caps.effort.max.supported and caps.thinking.types.adaptive.supported
    assert not caps.thinking.types.disabled.supported

    haiku = client.models.retrieve("claude-haiku-4-5")
    assert haiku.capabilities is not None and not haiku.capabilities.effort.supported
    assert not haiku.capabilities.effort.low.supported and haiku.capabilities.thinking.types.enabled.supported
    assert client.models.retrieve("claude-haiku-4-5-20251001").id == "claude-haiku-4-5"
    with pytest.raises(anthropic.NotFoundError):
        client.models.retrieve("claude-imaginary-9")


def test_models_list_covers_the_catalogue(client: anthropic.Anthropic) -> None:
    listed = [m.id for m in client.models.list(limit=5)]
    assert listed[0] == "claude-fable-5-2" and len(listed) == len(set(listed)) == 14
    assert {"claude-opus-4-8", "claude-sonnet-4-5", "claude-haiku-5-5"} <= set(listed)
    created = [m.created_at for m in client.models.list()]
    assert created == sorted(created, reverse=True)


# --- scale, lifecycle, standalone -----------------------------------------------------------------


def test_twenty_thousand_request_batch_round_trips(client: anthropic.Anthropic, emu: Emulator) -> None:
    emu.config.processing_seconds = 0
    count = 20_000
    started = time.perf_counter()
    requests = [item(f"req-{i:05d}", f"question {i}", max_tokens=64) for i in range(count)]
    batch = client.messages.batches.create(requests=requests)
    assert wait_ended(client, batch.id).request_counts.succeeded == count
    seen: list[str] = []
    for line in client.messages.batches.results(batch.id):
        assert line.result.type == "succeeded"
        seen.append(line.custom_id)
    elapsed = time.perf_counter() - started
    assert sorted(seen) == [r["custom_id"] for r in requests]
    assert seen != sorted(seen)  # results are not in request order; callers must match on custom_id
    # Typically 2.5-4.5 s, nearly all of it the SDK's own request encoding and JSONL decoding; the bound is
    # loose so a busy CI box does not flake, yet far below what a quadratic emulator would take.
    assert elapsed < 15.0, f"20k round trip took {elapsed:.1f}s"


def test_stop_closes_kept_alive_connections(emu: Emulator, client: anthropic.Anthropic) -> None:
    assert client.models.retrieve(MODEL).id == MODEL
    emu.stop()
    with pytest.raises(anthropic.APIConnectionError):
        client.models.retrieve(MODEL)


def test_unknown_path_and_method(emu: Emulator) -> None:
    headers = {"x-api-key": "k", "anthropic-version": VERSION}
    status, response_headers, body = raw(emu, "GET", "/v1/nothing-here", headers)
    assert status == 404 and json.loads(body)["type"] == "error" and response_headers["request-id"]
    status, _, _ = raw(emu, "PUT", "/v1/messages/batches", headers)
    assert status == 405
    assert [c.route for c in emu.calls()] == ["unknown", "unknown"]
    status, _, body = raw(emu, "GET", "/healthz")
    assert status == 200 and json.loads(body) == {"status": "ok"}


def test_module_runs_standalone_until_sigterm(tmp_path: Path) -> None:
    src = Path(__file__).resolve().parents[2] / "src"
    env = {**os.environ, "PYTHONPATH": f"{src}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    command = [
        sys.executable,
        "-m",
        "batch_arbiter.emulator",
        "--port",
        "0",
        "--processing-seconds",
        "0",
        "--outcome",
        "bad-*=errored",
        "--api-key",
        "secret",
    ]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) as process:
        try:
            assert process.stdout is not None
            base_url = process.stdout.readline().strip()
            assert base_url.startswith("http://127.0.0.1:")
            with anthropic.Anthropic(api_key="secret", base_url=base_url, max_retries=0) as sdk:
                batch = sdk.messages.batches.create(requests=[item("good"), item("bad-1")])
                wait_ended(sdk, batch.id)
                assert result_types(sdk, batch.id) == {"good": "succeeded", "bad-1": "errored"}
        finally:
            process.send_signal(signal.SIGTERM)
            _, stderr = process.communicate(timeout=10)
    assert process.returncode == 0, stderr
