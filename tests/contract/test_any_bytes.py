"""Whatever the bytes of any file the action reads, the run ends in exit 0, 1 or 2, never a traceback.

One file of an otherwise good workspace is replaced per example: a prompt file (`.md`, `.json`,
`.jsonl`), the policy file, the pricing file, `<output-dir>/state.json`, the metrics log, or a workflow
the audit scans. Its bytes are random binary, random text, or near-valid structure (valid JSON, YAML or
TSV with random values: huge numbers, NaN, nested lists, wrong types). The run must end with

- exit 0, 1 or 2, and a traceback only ever folded in a `Traceback` group under an annotation;
- never an internal error: bad input is exit 2 with an `::error::`, and nothing reached the provider;
- exit 1 only where the input names a batch (state.json): the provider, not validation, refuses it.
"""

from __future__ import annotations

import json
import math
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from batch_arbiter.emulator import Emulator, EmulatorConfig
from support import Run, run_action, write_prompts

EXAMPLES = 40
# One emulator for every example of a test: the workspaces are fresh, the call log is cleared.
SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
    database=None,
)


@pytest.fixture(scope="module")
def emu() -> Iterator[Emulator]:
    with Emulator(EmulatorConfig(processing_seconds=0.0)) as emu:
        yield emu


# --- a good workspace, one file of which each example replaces ------------------------------------

GOOD_FILES = {
    "prompts/a.md": "A fine prompt.\n",
    "prompts/b.json": json.dumps({"prompt": "Another prompt.", "max_tokens": 64}),
    "prompts/c.jsonl": "\n".join(
        json.dumps(o)
        for o in (
            {"custom_id": "line-one", "prompt": "First line."},
            {"messages": [{"role": "user", "content": [{"type": "text", "text": "Second line."}]}]},
        )
    )
    + "\n",
    "policy.yml": "rules:\n  - match: 'nightly*'\n    mode: batch\n    max-wait-minutes: 30\n    reason: test\n",
    "prices.tsv": (
        "claude-sonnet-5-5*\t2020-01-01\t3\t0.3\t3.75\t15\ngemini-3.8-flash*\t2020-01-01\t0.3\t0.03\t0.3\t2.5\n"
    ),
    "metrics/usage.jsonl": json.dumps(
        {
            "ts": "2026-01-02T03:04:05Z",
            "workflow": "nightly",
            "tier": "sync",
            "engine": "claude",
            "model": "claude-sonnet-5-5",
            "input_tokens": 1000,
            "output_tokens": 200,
        }
    )
    + "\n",
    ".github/workflows/nightly.yml": (
        "on:\n  schedule:\n    - cron: '0 3 * * *'\njobs:\n  run:\n    runs-on: ubuntu-latest\n    steps:\n"
        "      - uses: anthropics/claude-code-action@v1\n        with:\n          model: claude-sonnet-5-5\n"
    ),
}
INPUTS: dict[str, Any] = {
    "prompt_files": "prompts/*",
    "policy_file": "policy.yml",
    "pricing_file": "prices.tsv",
    "metrics_file": "metrics/usage.jsonl",
}
STATE = "batch-results/state.json"


def workspace(root: Path, name: str, data: bytes) -> Path:
    ws = root / "ws"
    write_prompts(ws, GOOD_FILES)
    path = ws / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return ws


def holds(run: Run, emulator: Emulator, *, may_be_refused: bool = False) -> None:
    """The property, for one finished run."""
    log = run.log
    assert run.code in (0, 1, 2), log
    # A traceback only ever in a folded group under the annotation, never raw.
    assert log.count("Traceback (most recent call last)") == log.count("::group::Traceback"), log
    assert "batch-arbiter: internal error" not in log, log
    if run.code == 2:
        assert "::error" in log, log
        assert emulator.calls() == [], [c.route for c in emulator.calls()]
    if run.code == 1:
        # With a healthy provider, exit 1 means the provider refused what validation let through.
        assert may_be_refused, log


def check(emulator: Emulator, name: str, data: bytes, *, may_be_refused: bool = False, **inputs: Any) -> None:
    emulator.clear_calls()
    root = Path(tempfile.mkdtemp(prefix="any-bytes-"))
    try:
        ws = workspace(root, name, data)
        try:
            run = run_action(ws, emulator, **{**INPUTS, **inputs})
        except Exception as exc:  # an exception out of the step is the runner's raw traceback
            pytest.fail(f"{name} = {data!r}: uncaught {type(exc).__name__}: {exc}")
        holds(run, emulator, may_be_refused=may_be_refused)
    finally:
        shutil.rmtree(root, ignore_errors=True)


# --- strategies: random binary, random text, near-valid structure ---------------------------------

HUGE = st.sampled_from([10**400, -(10**400), 2**63, -(2**63) - 1, 2**64, 10**20, 0, -1])
NUMBERS = st.one_of(
    HUGE,
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([math.nan, math.inf, -math.inf, 1e308, 5e-324, -0.0]),
)
SCALARS = st.one_of(st.none(), st.booleans(), NUMBERS, st.text(max_size=30))


def values(leaf: st.SearchStrategy[Any] = SCALARS) -> st.SearchStrategy[Any]:
    return st.recursive(
        leaf,
        lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=4)),
        max_leaves=12,
    )


def near(valid: list[Any]) -> st.SearchStrategy[Any]:
    """A valid value or any value at all, as a field's value."""
    return st.one_of(st.sampled_from(valid), values())


def objects(fields: dict[str, st.SearchStrategy[Any]]) -> st.SearchStrategy[dict[str, Any]]:
    """Some of `fields` (each valid or not), sometimes with an unknown key."""
    return st.fixed_dictionaries({}, optional={**fields, "extra": values()})


def deep(max_depth: int = 3000) -> st.SearchStrategy[bytes]:
    return st.integers(1, max_depth).flatmap(
        lambda n: st.sampled_from([b"[" * n + b"]" * n, b'{"a":' * n + b"1" + b"}" * n, b"- " * n + b"x"])
    )


def to_json(value: Any) -> bytes:
    try:
        return json.dumps(value, allow_nan=True).encode()
    except ValueError:  # an integer past the str conversion limit
        return b"1" + b"0" * 5000


def to_yaml(value: Any) -> bytes:
    try:
        return yaml.safe_dump(value).encode()
    except (ValueError, yaml.YAMLError):
        return to_json(value)


def any_bytes(structured: st.SearchStrategy[bytes]) -> st.SearchStrategy[bytes]:
    text = st.text(max_size=400).map(lambda s: s.encode("utf-8"))
    return st.one_of(st.binary(max_size=400), text, structured, deep(), st.just(b""), st.just(b"\xef\xbb\xbf"))


CONTENT = near(["hi", "", [], [{"type": "text", "text": "hi"}], [{"type": "image"}], [{"type": 5}], [{}]])
MESSAGE = objects(
    {"role": near(["user", "assistant", "system", ""]), "content": st.one_of(CONTENT, st.lists(near([{}]), max_size=3))}
)
REQUEST = objects(
    {
        "custom_id": near(["ok", "", "a" * 65, "bad id", "line-one", "prompts_a_md"]),
        "prompt": near(["A prompt.", "", "   "]),
        "messages": st.one_of(st.lists(MESSAGE, max_size=3), values()),
        "system": near(["Be terse.", ""]),
        "max_tokens": st.one_of(NUMBERS, near([1, 0, 64, "64"])),
    }
)
JSON_PROMPT = any_bytes(st.one_of(REQUEST.map(to_json), values().map(to_json)))
JSONL_PROMPT = any_bytes(
    st.lists(st.one_of(REQUEST.map(to_json), values().map(to_json), st.binary(max_size=40)), max_size=5).map(b"\n".join)
)
MD_PROMPT = any_bytes(st.text(max_size=200).map(lambda s: ("---\nmodel: x\n---\n" + s).encode()))

RULE = objects(
    {
        "match": near(["nightly*", "*", "", "["]),
        "mode": near(["batch", "sync", "auto", "plan", "audit", "bogus"]),
        "upgrade": near([True, False, "yes"]),
        "model": near(["claude-sonnet-5-5", "claude-opus-5-5", "gemini-3.8-flash", "claude-nope", ""]),
        "effort": near(["low", "medium", "high", "xhigh", "max", "ultra"]),
        "max-wait-minutes": st.one_of(NUMBERS, near([30, 0, "30"])),
        "max_wait_minutes": NUMBERS,
        "reason": near(["because"]),
    }
)
POLICY_DOC = objects(
    {
        "rules": st.one_of(st.lists(RULE, max_size=3), values()),
        "defaults": near([True, False, "no"]),
        "batch-events": st.one_of(st.lists(near(["schedule", "push"]), max_size=3), values()),
    }
)
YAML_TRICKS = st.sampled_from(
    [
        b"rules: &a [*a]\n",
        b"a: &a\n  b: *a\n",
        b"rules: !!python/object:os.system {}\n",
        b"rules:\n  - !!binary aGk=\n",
        b"rules:\n  - match: x\n    mode: batch\n    max-wait-minutes: .nan\n",
        b"rules:\n  - match: x\n    mode: batch\n    max-wait-minutes: 1e999\n",
        b"rules:\n  - {match: x, mode: batch, match: y}\n",
        b"--- 1\n--- 2\n",
        b"? [a, b]\n: c\n",
        b"rules: 2001-12-14t21:59:43.10-05:00\n",
        b"\t- x\n",
    ]
)
POLICY = any_bytes(st.one_of(POLICY_DOC.map(to_yaml), values().map(to_yaml), YAML_TRICKS))

CELLS = st.one_of(
    st.sampled_from(["1", "0", "-1", "nan", "NaN", "inf", "-inf", "1e400", "1_000", "0x10", "", " 3 ", "abc", "١٢"]),
    HUGE.map(str),
    st.floats().map(repr),
    st.text(alphabet=st.characters(codec="utf-8", blacklist_characters="\t\n\r"), max_size=8),
)
DATES = st.one_of(
    st.sampled_from(["2020-01-01", "2020-13-45", "0001-01-01", "9999-12-31", "20200101", "", "yesterday"]),
    st.dates().map(str),
    st.text(alphabet=st.characters(codec="utf-8", blacklist_characters="\t\n\r"), max_size=10),
)
GLOBS = st.one_of(
    st.sampled_from(["claude-sonnet-5-5*", "*", "", "[", "claude-*", "gemini-3.8-flash*", "**"]),
    st.text(alphabet=st.characters(codec="utf-8", blacklist_characters="\t\n\r"), max_size=10),
)
ROW = st.tuples(GLOBS, DATES, st.lists(CELLS, min_size=0, max_size=7)).map(lambda r: "\t".join([r[0], r[1], *r[2]]))
HEADER = "model_glob\teffective_from\tinput\tcache_read\tcache_write\toutput"
PRICING = any_bytes(
    st.tuples(st.booleans(), st.lists(st.one_of(ROW, st.just("# comment"), st.just("")), max_size=6)).map(
        lambda t: "\n".join(([HEADER] if t[0] else []) + t[1]).encode()
    )
)

STATE_DOC = st.fixed_dictionaries(
    {
        "provider": st.sampled_from(["anthropic", "gemini"]),
        "model": st.sampled_from(["claude-sonnet-5-5", "gemini-3.8-flash"]),
        "workload": near(["nightly"]),
        "deadline": near(["2099-01-01T00:00:00+00:00", "never"]),
    },
    optional={
        "status": near(["new", "submitted", "pending", "canceled", "done:succeeded", "bogus"]),
        "batch_ids": st.one_of(st.lists(near(["msgbatch_nope", "batches/nope", ""]), max_size=3), values()),
        "batch_id": near(["msgbatch_nope", "batches/nope"]),
        "submitted_at": near(["2026-01-01T00:00:00+00:00"]),
        "custom_ids": st.one_of(
            st.just(["prompts_a_md", "prompts_b_json", "line-one", "prompts_c_jsonl_2"]),
            st.lists(near(["prompts_a_md", "x"]), max_size=3),
            values(),
        ),
        "run": near(["4242.1", None]),
        "path": near(["/etc/passwd"]),
        "extra": values(),
    },
)
STATE_BYTES = any_bytes(st.one_of(STATE_DOC.map(to_json), values().map(to_json)))

METRIC = objects(
    {
        "ts": near(["2026-01-02T03:04:05Z", "2026-01-02", "", "not a date", "9999-12-31T23:59:59-23:59"]),
        "kind": near([None, "", "other"]),
        "workflow": near(["nightly", "feature-ideation"]),
        "tier": near(["sync", "batch"]),
        "engine": near(["claude", "gemini", "copilot"]),
        "model": near(["claude-sonnet-5-5", "gemini-3.8-flash", "unknown"]),
        "provider": near(["anthropic", "gemini"]),
        "mode": near(["sync", "batch"]),
        **{
            k: st.one_of(NUMBERS, near(["12", "nan", "1e400", -5]))
            for k in (
                "input_tokens",
                "output_tokens",
                "cache_read_tokens",
                "cache_creation_tokens",
                "cache_creation_1h_tokens",
                "requests",
                "et",
                "cost_usd",
                "sync_cost_usd",
                "savings_usd",
            )
        },
    }
)
METRICS = any_bytes(
    st.lists(st.one_of(METRIC.map(to_json), values().map(to_json), st.binary(max_size=40)), max_size=5).map(b"\n".join)
)

STEP = objects(
    {
        "uses": near(["anthropics/claude-code-action@v1", "google-github-actions/run-gemini-cli@v0", "x"]),
        "run": near(["claude -p hi --model claude-sonnet-5-5", "gemini -m gemini-3.8-flash"]),
        "with": st.one_of(objects({"model": near(["claude-sonnet-5-5", ""]), "prompt": near(["hi"])}), values()),
        "env": values(),
    }
)
WORKFLOW_DOC = objects(
    {
        "name": values(),
        "on": st.one_of(
            objects({"schedule": st.one_of(st.lists(objects({"cron": near(["0 3 * * *", "* * *", "60 25 * * *"])})))}),
            near(["push", ["schedule"]]),
        ),
        "jobs": st.one_of(
            st.dictionaries(st.text(max_size=6), objects({"steps": st.one_of(st.lists(STEP, max_size=3), values())})),
            values(),
        ),
    }
)
WORKFLOW = any_bytes(st.one_of(WORKFLOW_DOC.map(to_yaml), values().map(to_yaml), YAML_TRICKS))

SCHEMA_NODE = st.recursive(
    objects(
        {
            "type": near(
                ["object", "string", "integer", "number", "array", "boolean", "null", ["string", "null"], "x"]
            ),
            "enum": st.one_of(st.lists(SCALARS, max_size=3), values()),
            "minItems": st.one_of(NUMBERS, near([0, 1, 2])),
            "maxLength": st.one_of(NUMBERS, near([0, 5])),
            "minimum": NUMBERS,
            "format": near(["date", "email", "regex", ""]),
            "$ref": near(["#", "#/$defs/a", "#/nope", "https://example.com/s.json"]),
            "additionalProperties": near([False, True, {}]),
            "required": st.one_of(st.lists(near(["a", "b"]), max_size=3), values()),
        }
    ),
    lambda inner: st.one_of(
        st.fixed_dictionaries(
            {"type": st.just("object"), "additionalProperties": near([False])},
            optional={
                "properties": st.dictionaries(st.sampled_from(["a", "b"]), inner, max_size=3),
                "required": st.lists(near(["a", "b"]), max_size=2),
                "$defs": st.dictionaries(st.just("a"), inner, max_size=1),
            },
        ),
        st.fixed_dictionaries({"type": st.just("array"), "items": inner}),
        st.fixed_dictionaries({"anyOf": st.lists(inner, max_size=3)}),
    ),
    max_leaves=8,
)
SCHEMA_DOC = st.one_of(
    SCHEMA_NODE,
    st.tuples(
        near(["https://json-schema.org/draft/2020-12/schema", "http://json-schema.org/draft-07/schema#", "x"]),
        SCHEMA_NODE,
    ).map(lambda t: {"$schema": t[0], **t[1]}),
)
SCHEMA_BYTES = any_bytes(st.one_of(SCHEMA_DOC.map(to_json), values().map(to_json)))

PROVIDERS = st.sampled_from(["anthropic", "gemini"])
RUN_MODES = st.sampled_from(["batch", "sync", "plan"])
ANY_MODE = st.sampled_from(["batch", "sync", "plan", "audit"])


def given_file(strategy: st.SearchStrategy[Any]) -> Callable[[Callable[..., None]], Callable[..., None]]:
    def wrap(test: Callable[..., None]) -> Callable[..., None]:
        return SETTINGS(given(data=strategy, provider=PROVIDERS)(test))

    return wrap


# --- the property, per file kind -------------------------------------------------------------------


@given_file(st.tuples(st.sampled_from(["prompts/a.md", "prompts/new.MD"]), MD_PROMPT, RUN_MODES))
def test_any_markdown_prompt(emu: Emulator, data: tuple[str, bytes, str], provider: str) -> None:
    name, raw, mode = data
    check(emu, name, raw, provider=provider, mode=mode)


@given_file(st.tuples(st.sampled_from(["prompts/b.json", "prompts/new.JSON"]), JSON_PROMPT, RUN_MODES))
def test_any_json_prompt(emu: Emulator, data: tuple[str, bytes, str], provider: str) -> None:
    name, raw, mode = data
    check(emu, name, raw, provider=provider, mode=mode)


@given_file(st.tuples(JSONL_PROMPT, RUN_MODES))
def test_any_jsonl_prompt(emu: Emulator, data: tuple[bytes, str], provider: str) -> None:
    raw, mode = data
    check(emu, "prompts/c.jsonl", raw, provider=provider, mode=mode)


@given_file(st.tuples(POLICY, ANY_MODE))
def test_any_policy_file(emu: Emulator, data: tuple[bytes, str], provider: str) -> None:
    raw, mode = data
    check(emu, "policy.yml", raw, provider=provider, mode=mode)


@given_file(st.tuples(PRICING, ANY_MODE))
def test_any_pricing_file(emu: Emulator, data: tuple[bytes, str], provider: str) -> None:
    raw, mode = data
    check(emu, "prices.tsv", raw, provider=provider, mode=mode)


@given_file(st.tuples(STATE_BYTES, st.sampled_from(["batch", "sync"])))
def test_any_state_file(emu: Emulator, data: tuple[bytes, str], provider: str) -> None:
    raw, mode = data
    # A readable state of this run names batches to collect: the provider, not validation, knows them.
    check(emu, STATE, raw, may_be_refused=True, provider=provider, mode=mode)


@given_file(st.tuples(METRICS, st.sampled_from(["batch", "audit"])))
def test_any_metrics_file(emu: Emulator, data: tuple[bytes, str], provider: str) -> None:
    raw, mode = data
    check(emu, "metrics/usage.jsonl", raw, provider=provider, mode=mode)


@given_file(WORKFLOW)
def test_any_workflow_file_in_an_audit(emu: Emulator, data: bytes, provider: str) -> None:
    check(emu, ".github/workflows/nightly.yml", data, provider=provider, mode="audit")


@given_file(st.tuples(SCHEMA_BYTES, RUN_MODES))
def test_any_response_schema_file(emu: Emulator, data: tuple[bytes, str], provider: str) -> None:
    raw, mode = data
    # A schema that passes the checks may still ask more than the emulator's generated answer gives (a pattern,
    # contradictory bounds): such answers end errored, exit 1, after their rerun.
    check(
        emu,
        "schemas/answer.json",
        raw,
        may_be_refused=True,
        provider=provider,
        mode=mode,
        response_schema="schemas/answer.json",
    )
