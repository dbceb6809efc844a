"""What only Gemini has, end to end through google-genai against the emulator: the file-input path, a job
that fails as a whole, a cancelled job keeping what finished, the Flex tier, thinking controls, implicit
caching and its batch pricing rule."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest

from batch_arbiter.core.records import PromptRequest
from batch_arbiter.emulator import Emulator, Fault
from batch_arbiter.providers import ProviderConfig, RunSpec
from batch_arbiter.providers.gemini import GeminiProvider
from batch_arbiter.providers.registry import price_table
from support import API_KEY, GEMINI, write_prompts

PROMPTS = {
    "prompts/alpha.md": "Propose a feature for the CLI.",
    "prompts/beta.md": "Propose a feature for the docs.",
    "prompts/gamma.md": "Propose a pricing feature.",
}
IDS = {"prompts_alpha_md", "prompts_beta_md", "prompts_gamma_md"}


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    write_prompts(root, PROMPTS)
    return root


def test_a_batch_over_the_inline_limit_goes_through_an_uploaded_jsonl_file(ws: Path, emulator: Emulator) -> None:
    emulator.config.gemini_inline_limit_bytes = 4096
    write_prompts(ws, {f"prompts/long-{n}.md": f"Long signal {n}: " + "evidence " * 200 for n in range(3)})
    emulator.config.outcomes = {"prompts_long-1_md": "errored"}
    run = GEMINI.run(ws, emulator, prompt_files="prompts/*", mode="batch", timeout_minutes=10)
    assert run.code == 0, run.log
    creates = emulator.calls("gemini_create")
    # The inline body is refused as too large; the same batch then goes up as a file.
    assert [c.status for c in creates] == [400, 200]
    assert creates[1].body["batch"]["inputConfig"].keys() == {"fileName"}
    start, finalize = emulator.calls("files_upload")
    assert start.headers["x-goog-upload-header-content-type"] == "application/jsonl"
    assert finalize.headers["x-goog-upload-command"] == "upload, finalize"
    lines = [
        json.loads(line)
        for line in emulator.gemini.file(creates[1].body["batch"]["inputConfig"]["fileName"]).data.splitlines()
    ]
    assert {line["key"] for line in lines} == IDS | {f"prompts_long-{n}_md" for n in range(3)}
    assert len(emulator.calls("files_download")) == 1
    via = {r["custom_id"]: r["via"] for r in run.results}
    assert via == {**dict.fromkeys(via, "batch"), "prompts_long-1_md": "sync"}
    assert "sent it as a JSONL file" in run.summary


def test_the_provider_switches_to_a_file_before_the_inline_limit(emulator: Emulator) -> None:
    provider = GeminiProvider(ProviderConfig(api_key=API_KEY, base_url=emulator.base_url), inline_limit_bytes=200)
    requests = [
        PromptRequest(f"r{n}", f"r{n}.md", ({"role": "user", "content": f"Question {n} " * 10},), system="Be brief.")
        for n in range(3)
    ]
    try:
        name = provider.submit(requests, RunSpec(model="gemini-2.5-flash", effort="low", max_tokens=256))
    finally:
        provider.close()
    (create,) = emulator.calls("gemini_create")
    assert create.status == 200 and "fileName" in create.body["batch"]["inputConfig"]
    line = json.loads(emulator.gemini.file(create.body["batch"]["inputConfig"]["fileName"]).data.splitlines()[0])
    assert line["request"]["systemInstruction"] == {"parts": [{"text": "Be brief."}]}
    assert line["request"]["generationConfig"] == {"maxOutputTokens": 256, "thinkingConfig": {"thinkingBudget": 1024}}
    assert name.startswith("batches/") and emulator.gemini_job(name).input_file is not None


CJK = "批处理的价格是同步调用的一半，结果在截止时间之前收集。" * 12


def test_the_inline_size_is_measured_as_the_sdk_sends_it() -> None:
    from batch_arbiter.providers.gemini import inline_item_bytes

    provider = GeminiProvider(ProviderConfig(api_key=API_KEY, base_url="http://127.0.0.1:9"))
    try:
        wire = provider.wire_request(PromptRequest("r", "r.md", CJK), RunSpec("gemini-3.8-flash"))
    finally:
        provider.close()
    compact = len(json.dumps({"request": wire}, ensure_ascii=False, separators=(",", ":")).encode())
    # Each CJK character is 3 bytes of UTF-8 but a 6-byte \\uXXXX escape in the SDK's json.dumps.
    assert inline_item_bytes("r", wire) > 1.8 * compact


def test_a_cjk_batch_that_fits_as_utf8_but_not_as_sent_goes_as_a_file_at_once(emulator: Emulator) -> None:
    requests = [PromptRequest(f"r{n}", f"r{n}.md", CJK) for n in range(4)]
    utf8 = sum(len(CJK.encode()) for _ in requests)
    # Between the compact UTF-8 size and the size the SDK sends: inline would be refused as too large.
    limit = utf8 + 1500
    emulator.config.gemini_inline_limit_bytes = limit
    provider = GeminiProvider(ProviderConfig(api_key=API_KEY, base_url=emulator.base_url), inline_limit_bytes=limit)
    try:
        provider.submit(requests, RunSpec(model="gemini-3.8-flash", max_tokens=256))
        small = provider.submit(requests[:1], RunSpec(model="gemini-3.8-flash", max_tokens=256))
    finally:
        provider.close()
    file_create, inline_create = emulator.calls("gemini_create")
    # No refused inline attempt first: the size was known before sending.
    assert file_create.status == 200 and "fileName" in file_create.body["batch"]["inputConfig"]
    assert inline_create.status == 200 and "requests" in inline_create.body["batch"]["inputConfig"]
    assert small.startswith("batches/")


def test_a_failed_job_says_why_and_everything_reruns(ws: Path, emulator: Emulator) -> None:
    emulator.config.gemini_job_error = "the input could not be read: quota for batch jobs exhausted"
    run = GEMINI.run(ws, emulator, prompt_files="prompts/*", mode="batch", timeout_minutes=10)
    assert run.code == 0, run.log
    assert {r["via"] for r in run.results} == {"sync"} and run.outputs["status"] == "succeeded"
    assert "failed: the input could not be read: quota for batch jobs exhausted" in run.summary
    assert "3 errored; rerunning them synchronously" in run.summary
    assert float(run.outputs["savings-usd"]) == 0


def test_a_cancelled_job_keeps_what_finished(ws: Path, emulator: Emulator) -> None:
    emulator.config.outcomes = {"prompts_gamma_md": "hang"}
    run = GEMINI.run(ws, emulator, prompt_files="prompts/*", mode="batch", timeout_minutes=0.01)
    assert run.code == 0, run.log
    job = emulator.gemini_job(run.outputs["batch-id"])
    assert job.state == "BATCH_STATE_CANCELLED"
    tiers = {r["custom_id"]: (r["via"], r["tier"]) for r in run.results}
    assert tiers == {
        "prompts_alpha_md": ("batch", "batch"),
        "prompts_beta_md": ("batch", "batch"),
        # The deadline has passed: no time for Flex, the standard tier answers at once.
        "prompts_gamma_md": ("sync", "standard"),
    }
    assert "1 canceled; rerunning them synchronously" in run.summary


def test_the_fallback_runs_on_flex_at_half_price_when_the_deadline_allows(ws: Path, emulator: Emulator) -> None:
    emulator.config.outcomes = {"prompts_beta_md": "errored"}
    run = GEMINI.run(ws, emulator, prompt_files="prompts/*", mode="batch", timeout_minutes=120)
    assert run.code == 0, run.log
    (call,) = emulator.calls("gemini_generate")
    assert call.body["serviceTier"] == "flex"
    beta = {r["custom_id"]: r for r in run.results}["prompts_beta_md"]
    assert (beta["via"], beta["tier"]) == ("sync", "flex")
    assert beta["cost_usd"] == pytest.approx(beta["sync_cost_usd"] / 2, abs=1e-8)  # rounded to 8 places
    assert float(run.outputs["savings-percent"]) == pytest.approx(50.0, abs=0.1)
    assert "1 sync on the Flex tier at half price" in run.summary


def test_flex_shedding_the_request_falls_back_to_standard_at_full_price(ws: Path, emulator: Emulator) -> None:
    write_prompts(ws, {"prompts/beta.md": "Propose a feature for the docs. [[emulator:flex-unavailable]]"})
    emulator.config.outcomes = {"prompts_beta_md": "errored"}
    run = GEMINI.run(ws, emulator, prompt_files="prompts/*", mode="batch", timeout_minutes=120)
    assert run.code == 0, run.log
    calls = emulator.calls("gemini_generate")
    assert [(c.body.get("serviceTier"), c.status) for c in calls] == [("flex", 429), (None, 200)]
    beta = {r["custom_id"]: r for r in run.results}["prompts_beta_md"]
    assert (beta["status"], beta["tier"]) == ("succeeded", "standard")
    assert beta["cost_usd"] == pytest.approx(beta["sync_cost_usd"])


@pytest.mark.parametrize(
    ("model", "effort", "thinking"),
    [
        # 2.5 Pro and 2.5 Flash were retired on 2026-12-01; 2.5 Flash-Lite still takes budgets.
        ("gemini-2.5-flash-lite", "max", {"thinking_budget": 24576}),
        ("gemini-2.5-flash-lite", "medium", {"thinking_budget": 4096}),
        ("gemini-4-argon", "low", {"thinking_level": "LOW"}),
        ("gemini-4-hydrogen", "max", {"thinking_level": "XHIGH"}),
        # 3.1 Pro takes low, medium and high: medium goes through as asked, max becomes its highest.
        ("gemini-3.1-pro-preview", "medium", {"thinking_level": "MEDIUM"}),
        ("gemini-3.1-pro-preview", "max", {"thinking_level": "HIGH"}),
    ],
)
def test_effort_maps_to_one_thinking_control_per_model(
    ws: Path, emulator: Emulator, model: str, effort: str, thinking: dict[str, object]
) -> None:
    run = GEMINI.run(ws, emulator, prompt_files="prompts/alpha.md", mode="batch", model=model, effort=effort)
    assert run.code == 0, run.log
    (request,) = GEMINI.batch_requests(emulator)
    assert request["generationConfig"]["thinkingConfig"] == thinking
    assert run.results[0]["status"] == "succeeded"


def test_cached_tokens_are_mapped_and_get_no_batch_discount(ws: Path, emulator: Emulator) -> None:
    # Long enough for implicit caching: the first request stores the prefix, the others hit it.
    write_prompts(ws, {"system.md": "You are a careful product analyst. " * 150})
    run = GEMINI.run(
        ws,
        emulator,
        prompt_files="prompts/*",
        system_prompt_file="system.md",
        mode="batch",
        model="gemini-3.1-pro-preview",
    )
    assert run.code == 0, run.log
    cached = [r for r in run.results if r["usage"]["cache_read_tokens"]]
    assert len(cached) == 2
    rate = price_table().rate("gemini-3.1-pro-preview", date.today())
    for r in cached:
        u = r["usage"]
        discounted = (u["input_tokens"] * rate.input + u["output_tokens"] * rate.output) / 2
        assert r["cost_usd"] == pytest.approx((discounted + u["cache_read_tokens"] * rate.cache_read) / 1e6, abs=1e-8)
    assert int(run.outputs["input-tokens"]) == sum(
        r["usage"]["input_tokens"] + r["usage"]["cache_read_tokens"] for r in run.results
    )


def test_the_key_comes_from_gemini_or_google_api_key(
    ws: Path, emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    emulator.config.api_key = "gemini-key-from-env"
    monkeypatch.setenv("GOOGLE_API_KEY", "gemini-key-from-env")
    run = GEMINI.run(ws, emulator, prompt_files="prompts/alpha.md", mode="sync", api_key="")
    assert run.code == 0, run.log
    assert "::add-mask::gemini-key-from-env" in run.log
    monkeypatch.setenv("GEMINI_API_KEY", "a-wrong-key")
    refused = GEMINI.run(ws, emulator, prompt_files="prompts/alpha.md", mode="sync", api_key="")
    assert refused.code == 1 and "API key not valid" in refused.results[0]["error"]


def test_plan_counts_tokens_for_free_and_sends_nothing_paid(ws: Path, emulator: Emulator) -> None:
    run = GEMINI.run(ws, emulator, prompt_files="prompts/*", mode="plan", workload="feature-ideation")
    assert run.code == 0, run.log
    assert {c.route for c in emulator.calls()} == {"gemini_count_tokens"}
    assert run.outputs["status"] == "planned"
    assert float(run.outputs["sync-cost-usd"]) == pytest.approx(2 * float(run.outputs["cost-usd"]), abs=2e-6)


def test_a_long_prompt_is_priced_at_the_long_context_rate(ws: Path, emulator: Emulator) -> None:
    write_prompts(ws, {"prompts/huge.md": "Summarise this log. " + "line " * 165_000})
    run = GEMINI.run(ws, emulator, prompt_files="prompts/huge.md", mode="batch", model="gemini-3.1-pro-preview")
    assert run.code == 0, run.log
    (r,) = run.results
    u = r["usage"]
    assert u["input_tokens"] > 200_000
    # Above 200k prompt tokens gemini-3.1-pro-preview costs 4 / 18 per million, not 2 / 12.
    assert r["sync_cost_usd"] == pytest.approx((u["input_tokens"] * 4 + u["output_tokens"] * 18) / 1e6, abs=1e-8)
    assert r["cost_usd"] == pytest.approx(r["sync_cost_usd"] / 2, abs=1e-8)


def test_a_lost_create_answer_finds_the_job_instead_of_paying_twice(ws: Path, emulator: Emulator) -> None:
    emulator.config.faults = [Fault("gemini_create", kind="lose-response")]
    run = GEMINI.run(ws, emulator, prompt_files="prompts/*", mode="batch", timeout_minutes=10)
    assert run.code == 0, run.log
    assert len(emulator.calls("gemini_create")) == 1 and len(emulator.gemini.jobs()) == 1
    assert {r["via"] for r in run.results} == {"batch"}
    assert "found the job it created" in run.summary


def test_a_results_download_cut_short_is_fetched_again(ws: Path, emulator: Emulator) -> None:
    emulator.config.gemini_inline_limit_bytes = 100  # results come back as a file
    emulator.config.faults = [Fault("files_download", kind="cut", after_lines=1)]
    run = GEMINI.run(ws, emulator, prompt_files="prompts/*", mode="batch", timeout_minutes=10)
    assert run.code == 0, run.log
    assert len(emulator.calls("files_download")) == 2
    assert {r["via"] for r in run.results} == {"batch"} and len(run.results) == 3


def test_a_rejected_key_stops_the_run_before_any_sync_call(ws: Path, emulator: Emulator) -> None:
    emulator.config.api_key = "the-right-gemini-key"
    run = GEMINI.run(ws, emulator, prompt_files="prompts/*", mode="batch")
    assert run.code == 1
    assert emulator.calls("gemini_generate") == []  # no fallback that would fail the same way
    assert {r["status"] for r in run.results} == {"errored"}
    assert "API key not valid" in run.results[0]["error"]
    assert API_KEY not in run.summary


def test_sync_calls_are_retried_with_explicit_limits(ws: Path, emulator: Emulator) -> None:
    emulator.config.faults = [Fault("gemini_generate", 429, times=1), Fault("gemini_generate", 503, times=1)]
    run = GEMINI.run(ws, emulator, prompt_files="prompts/alpha.md", mode="sync")
    assert run.code == 0, run.log
    calls = emulator.calls("gemini_generate")
    assert [c.status for c in calls] == [429, 503, 200]
    # The SDK has neither by default: every call carries a timeout (sent as X-Server-Timeout too).
    assert all(c.headers.get("x-server-timeout") == "600" for c in calls)


def test_every_call_goes_to_the_documented_api_version(ws: Path, emulator: Emulator) -> None:
    emulator.config.gemini_inline_limit_bytes = 4096
    write_prompts(ws, {"prompts/long.md": "Long signal: " + "evidence " * 600})
    run = GEMINI.run(ws, emulator, prompt_files="prompts/*", mode="batch", budget_usd="5", timeout_minutes=10)
    assert run.code == 0, run.log
    paths = [c.path for c in emulator.calls()]
    assert {"gemini_create", "files_upload", "files_download", "gemini_get", "gemini_count_tokens"} <= {
        c.route for c in emulator.calls()
    }
    # The Batch and Files APIs are documented under v1beta only; the SDK's default v1 is never used.
    assert [p for p in paths if not p.startswith(("/v1beta/", "/upload/v1beta/", "/download/v1beta/"))] == []


def test_the_raw_job_body_is_read_through_the_sdk_client(emulator: Emulator) -> None:
    # The one private SDK access (google-genai's `_api_client.request`): an SDK that renames or reshapes
    # it fails here, not in a run that then misses why a job failed.
    from batch_arbiter.providers.gemini import raw_get

    provider = GeminiProvider(ProviderConfig(api_key=API_KEY, base_url=emulator.base_url))
    try:
        name = provider.submit([PromptRequest("a", "a.md", "x [[emulator:job-failed]]")], RunSpec("gemini-3.8-flash"))
        body = raw_get(provider._client, name)
        assert body["name"] == name and "batchStats" in body["metadata"]
        assert [c.path for c in emulator.calls("gemini_get")][-1] == f"/v1beta/{name}"
    finally:
        provider.close()


@pytest.mark.parametrize("model", ["gemini-2.5-pro", "gemini-2.5-flash"])
def test_a_retired_model_is_refused_before_any_call(ws: Path, emulator: Emulator, model: str) -> None:
    run = GEMINI.run(ws, emulator, prompt_files="prompts/*", mode="batch", model=model)
    assert run.code == 2
    assert "::error" in run.log and "was retired on 2026-12-01" in run.log and "nothing was sent" in run.log
    assert emulator.calls() == []


def test_an_answer_that_says_its_model_is_retired_warns_once(emulator: Emulator) -> None:
    # The run refuses retired models up front; an adapter used directly still hears it from the API, which
    # answers a retired model's requests from its replacement and says so in modelStatus.
    events: list[str] = []
    config = ProviderConfig(api_key=API_KEY, base_url=emulator.base_url, on_event=events.append)
    provider = GeminiProvider(config)
    try:
        outcomes = [
            provider.run_sync(PromptRequest(f"r{n}", "r.md", "Hello"), RunSpec("gemini-2.5-pro")) for n in range(2)
        ]
    finally:
        provider.close()
    assert [o.model for o in outcomes] == ["gemini-3.8-flash"] * 2
    assert len(events) == 1 and "retired" in events[0] and "answered by gemini-3.8-flash" in events[0]
    assert "2026-12-01" in events[0]
