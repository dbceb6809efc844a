"""What a Messages request means to the emulator: validation, markers, token counts, prompt caching and
the deterministic reply. Shared by the sync endpoint and batch items so both behave alike."""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from dataclasses import dataclass
from typing import Any

from . import agent_script
from .anthropic_catalog import EFFORT_LEVELS, THINKING_TYPES, ModelSpec, find_model
from .routing import HttpError
from .structured import answer, anthropic_schema_problem

API_VERSION = "2026-10-21"

# Body keys of MessageCreateParams in anthropic 2.12.0 (`types/message_create_params.py`).
# `user_profile_id` / `workspace_id` are headers on a sync call, so they are body keys only for batch items.
_CREATE_KEYS = frozenset(
    {
        "model",
        "max_tokens",
        "messages",
        "cache_control",
        "container",
        "diagnostics",
        "inference_geo",
        "metadata",
        "output_config",
        "service_tier",
        "speed",
        "stop_sequences",
        "stream",
        "system",
        "thinking",
        "tool_choice",
        "tools",
    }
)
_BATCH_EXTRA_KEYS = frozenset({"user_profile_id", "workspace_id"})
_COUNT_TOKENS_KEYS = frozenset(
    {
        "model",
        "messages",
        "cache_control",
        "output_config",
        "speed",
        "system",
        "thinking",
        "tool_choice",
        "tools",
    }
)
# Removed by API version 2026-10-21: the real API answers 400 even for default values.
_REMOVED_KEYS = ("temperature", "top_p", "top_k")

BATCH_MARKER = re.compile(r"\[\[emulator:(succeeded|errored|expired|canceled|hang)\]\]")
SYNC_ERROR_MARKER = "[[emulator:sync-errored]]"
# Steer how an answer stops, in a batch and in a sync call alike: cut short at `max_tokens` (half the text
# so far, every allowed token billed), or refused (stop_reason "refusal", no text, stop_details saying why).
MAX_TOKENS_MARKER = "[[emulator:max-tokens]]"
REFUSAL_MARKER = "[[emulator:refusal]]"

# Added to the reply's token estimate for the envelope the real model also bills; it keeps output_tokens
# clearly above zero for short replies, like the real API.
_OUTPUT_OVERHEAD_TOKENS = 5
_CACHE_TTL_SECONDS = {"5m": 300.0, "1h": 3600.0}


def tokens_for(chars: int) -> int:
    return (chars + 3) // 4


def _invalid(message: str) -> HttpError:
    return HttpError(400, message, "invalid_request_error")


def validate_params(
    params: Any,
    *,
    prefix: str = "",
    batch: bool = False,
    lenient_keys: bool = False,
    count_tokens: bool = False,
) -> dict[str, Any]:
    """Reject what the real API rejects up front, so shape bugs surface here and not in production.

    `prefix` locates the params in the body (e.g. "requests.3.params.") for the error message.
    `lenient_keys` skips the unknown-key check for beta requests, whose extra params we do not model.
    """
    if not isinstance(params, dict):
        raise _invalid(f"{prefix.rstrip('.') or 'body'}: Input should be an object")
    for key in _REMOVED_KEYS:
        if key in params:
            raise _invalid(f"{prefix}{key}: Extra inputs are not permitted (removed in API version {API_VERSION})")
    allowed = _COUNT_TOKENS_KEYS if count_tokens else _CREATE_KEYS | (_BATCH_EXTRA_KEYS if batch else frozenset())
    if not lenient_keys:
        for key in params:
            if key not in allowed:
                raise _invalid(f"{prefix}{key}: Extra inputs are not permitted")

    model = params.get("model")
    if not isinstance(model, str) or not model:
        raise _invalid(f"{prefix}model: Field required")
    if not count_tokens:
        max_tokens = params.get("max_tokens")
        if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
            raise _invalid(f"{prefix}max_tokens: Field required (an integer >= 1)")
    _validate_messages(params.get("messages"), prefix)
    _validate_system(params.get("system"), prefix)
    if "cache_control" in params and params["cache_control"] is not None:
        _validate_cache_control(params["cache_control"], f"{prefix}cache_control")
    tools = params.get("tools")
    if tools is not None:
        if not isinstance(tools, list):
            raise _invalid(f"{prefix}tools: Input should be a valid list")
        for i, tool in enumerate(tools):
            if not isinstance(tool, dict):
                raise _invalid(f"{prefix}tools.{i}: Input should be an object")
            _validate_tool(tool, f"{prefix}tools.{i}")
            if "cache_control" in tool:
                _validate_cache_control(tool["cache_control"], f"{prefix}tools.{i}.cache_control")
    _validate_tool_turns(params, prefix)
    stops = params.get("stop_sequences")
    if stops is not None and (not isinstance(stops, list) or not all(isinstance(s, str) for s in stops)):
        raise _invalid(f"{prefix}stop_sequences: Input should be a list of strings")
    _validate_thinking(params, prefix)
    _validate_output_config(params.get("output_config"), prefix)
    stream = params.get("stream")
    if batch and stream not in (None, False):
        raise _invalid(f"{prefix}stream: Input should be False (batch requests cannot stream)")
    if stream is not None and not isinstance(stream, bool):
        raise _invalid(f"{prefix}stream: Input should be a valid boolean")
    return params


def _validate_messages(messages: Any, prefix: str) -> None:
    if not isinstance(messages, list) or not messages:
        raise _invalid(f"{prefix}messages: Field required (a non-empty list)")
    for i, message in enumerate(messages):
        where = f"{prefix}messages.{i}"
        if not isinstance(message, dict):
            raise _invalid(f"{where}: Input should be an object")
        if message.get("role") not in ("user", "assistant"):
            raise _invalid(f"{where}.role: Input should be 'user' or 'assistant'")
        content = message.get("content")
        if isinstance(content, str):
            continue
        if not isinstance(content, list):
            raise _invalid(f"{where}.content: Input should be a string or a list of content blocks")
        for j, block in enumerate(content):
            if not isinstance(block, dict) or not isinstance(block.get("type"), str):
                raise _invalid(f"{where}.content.{j}: Input should be a content block with a type")
            if block["type"] == "text" and not isinstance(block.get("text"), str):
                raise _invalid(f"{where}.content.{j}.text: Field required")
            if "cache_control" in block and block["cache_control"] is not None:
                _validate_cache_control(block["cache_control"], f"{where}.content.{j}.cache_control")


# Server tool types of anthropic 2.12.0 the emulator runs, and the name each must carry.
SERVER_TOOL_TYPES = {
    **{f"web_search_{v}": "web_search" for v in ("20250305", "20260209", "20260318")},
    **{f"web_fetch_{v}": "web_fetch" for v in ("20250910", "20260209", "20260309", "20260318")},
    **{f"code_execution_{v}": "code_execution" for v in ("20250522", "20250825", "20260120", "20260521")},
}
_TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,128}$")
_COMMON_SERVER_NAMES = {"web_search": "web-search", "web_fetch": "web-fetch", "code_execution": "code-execution"}


def _validate_tool(tool: dict[str, Any], where: str) -> None:
    kind = tool.get("type")
    if kind is not None and kind != "custom":
        if kind not in SERVER_TOOL_TYPES:
            raise _invalid(
                f"{where}.type: Input tag {kind!r} found using 'type' does not match any of the expected tags"
            )
        if tool.get("name") != SERVER_TOOL_TYPES[kind]:
            raise _invalid(f"{where}.name: Input should be {SERVER_TOOL_TYPES[kind]!r}")
        return
    name = tool.get("name")
    if not isinstance(name, str) or not _TOOL_NAME.match(name):
        raise _invalid(f"{where}.name: String should match pattern '^[a-zA-Z0-9_-]{{1,128}}$'")
    schema = tool.get("input_schema")
    if not isinstance(schema, dict) or schema.get("type") != "object":
        raise _invalid(f"{where}.input_schema.type: Input should be 'object'")


def _validate_tool_turns(params: dict[str, Any], prefix: str) -> None:
    """tool_use / tool_result pairing, as the API checks it before running anything."""
    messages = params["messages"]
    tools = params.get("tools") or []
    offered = {t.get("name") for t in tools if isinstance(t, dict)}
    for i, message in enumerate(messages):
        content = message["content"]
        if isinstance(content, str):
            continue
        types = {b["type"] for b in content}
        if types & {"tool_use", "tool_result", "server_tool_use"} and not tools:
            raise _invalid(
                f"{prefix}messages.{i}: Requests which include `tool_use` or `tool_result` blocks must define tools."
            )
        if message["role"] == "assistant":
            for j, block in enumerate(content):
                if block["type"] == "thinking":
                    expected = agent_script.signature(str(block.get("thinking")))
                    if block.get("signature") != expected:
                        raise _invalid(f"{prefix}messages.{i}.content.{j}: Invalid `signature` in `thinking` block")
                if block["type"] == "server_tool_use" and block.get("name") not in offered:
                    raise _invalid(
                        f"{prefix}messages.{i}.content.{j}: server tool {block.get('name')!r} is not in `tools`; "
                        "a paused turn must be continued with the same tools"
                    )
            uses = [b["id"] for b in content if b["type"] == "tool_use"]
            if not uses:
                continue
            following = messages[i + 1] if i + 1 < len(messages) else None
            answered: list[str] = []
            if following is not None and following["role"] == "user" and isinstance(following["content"], list):
                answered = [b.get("tool_use_id") for b in following["content"] if b["type"] == "tool_result"]
            missing = [u for u in uses if u not in answered]
            if missing:
                raise _invalid(
                    f"{prefix}messages.{i + 1}: `tool_use` ids were found without `tool_result` blocks immediately "
                    f"after: {', '.join(missing)}. Each `tool_use` block must have a corresponding `tool_result` "
                    "block in the next message."
                )
        else:
            previous = messages[i - 1] if i else None
            prior: set[str] = set()
            if previous is not None and previous["role"] == "assistant" and isinstance(previous["content"], list):
                prior = {b.get("id") for b in previous["content"] if b["type"] == "tool_use"}
            for j, block in enumerate(content):
                if block["type"] == "tool_result" and block.get("tool_use_id") not in prior:
                    raise _invalid(
                        f"{prefix}messages.{i}.content.{j}: unexpected `tool_use_id` found in `tool_result` blocks: "
                        f"{block.get('tool_use_id')}. Each `tool_result` block must have a corresponding `tool_use` "
                        "block in the previous message."
                    )


def _validate_system(system: Any, prefix: str) -> None:
    if system is None or isinstance(system, str):
        return
    if not isinstance(system, list):
        raise _invalid(f"{prefix}system: Input should be a string or a list of text blocks")
    for i, block in enumerate(system):
        if not isinstance(block, dict) or block.get("type") != "text" or not isinstance(block.get("text"), str):
            raise _invalid(f"{prefix}system.{i}: Input should be a text block")
        if "cache_control" in block and block["cache_control"] is not None:
            _validate_cache_control(block["cache_control"], f"{prefix}system.{i}.cache_control")


def _validate_cache_control(value: Any, where: str) -> None:
    if not isinstance(value, dict) or value.get("type") != "ephemeral":
        raise _invalid(f"{where}: Input should be {{'type': 'ephemeral'}}")
    if value.get("ttl", "5m") not in _CACHE_TTL_SECONDS:
        raise _invalid(f"{where}.ttl: Input should be '5m' or '1h'")


def _validate_thinking(params: dict[str, Any], prefix: str) -> None:
    thinking = params.get("thinking")
    if thinking is None:
        return
    if not isinstance(thinking, dict) or thinking.get("type") not in THINKING_TYPES:
        raise _invalid(f"{prefix}thinking.type: Input should be one of {', '.join(THINKING_TYPES)}")
    if thinking["type"] == "enabled":
        budget = thinking.get("budget_tokens")
        if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1024:
            raise _invalid(f"{prefix}thinking.budget_tokens: Input should be an integer >= 1024")
        max_tokens = params.get("max_tokens")
        if isinstance(max_tokens, int) and budget >= max_tokens:
            raise _invalid(f"{prefix}thinking.budget_tokens: must be less than max_tokens")


def _validate_output_config(config: Any, prefix: str) -> None:
    if config is None:
        return
    if not isinstance(config, dict):
        raise _invalid(f"{prefix}output_config: Input should be an object")
    effort = config.get("effort")
    if effort is not None and effort not in EFFORT_LEVELS:
        raise _invalid(f"{prefix}output_config.effort: Input should be one of {', '.join(EFFORT_LEVELS)}")
    unknown = sorted(set(config) - {"effort", "format"})
    if unknown:
        raise _invalid(f"{prefix}output_config.{unknown[0]}: Extra inputs are not permitted")
    fmt = config.get("format")
    if fmt is None:
        return
    if not isinstance(fmt, dict) or fmt.get("type") != "json_schema":
        raise _invalid(f"{prefix}output_config.format.type: Input should be 'json_schema'")
    extra = sorted(set(fmt) - {"type", "schema"})
    if extra:
        raise _invalid(f"{prefix}output_config.format.{extra[0]}: Extra inputs are not permitted")
    if "schema" not in fmt:
        raise _invalid(f"{prefix}output_config.format.schema: Field required")
    problem = anthropic_schema_problem(fmt["schema"])
    if problem is not None:
        raise _invalid(f"{prefix}output_config.format.{problem}")


def response_schema(params: dict[str, Any]) -> dict[str, Any] | None:
    """The JSON Schema the reply must follow (`output_config.format`), if any."""
    fmt = (params.get("output_config") or {}).get("format")
    return fmt["schema"] if isinstance(fmt, dict) else None


def check_model(params: dict[str, Any]) -> ModelSpec:
    """Model-dependent checks, which the real API applies only once it knows the model.

    Raises 404 not_found_error for an unknown model, 400 for a setting the model does not support.
    """
    name: str = params["model"]
    spec = find_model(name)
    if spec is None:
        raise HttpError(404, f"model: {name}", "not_found_error")
    effort = (params.get("output_config") or {}).get("effort")
    if effort is not None and effort not in spec.effort:
        detail = "does not support the effort parameter" if not spec.effort else f"does not support effort {effort!r}"
        raise _invalid(f"output_config.effort: {name} {detail}")
    thinking = params.get("thinking")
    if thinking is not None and thinking["type"] not in spec.thinking:
        raise _invalid(f"thinking.type: {thinking['type']!r} is not supported by {name}")
    max_tokens = params.get("max_tokens")
    if isinstance(max_tokens, int) and max_tokens > spec.max_tokens:
        # The real API's wording; the output-300k beta (lenient beta requests) is not modelled.
        raise _invalid(
            f"max_tokens: {max_tokens} > {spec.max_tokens}, which is the maximum allowed number of output tokens "
            f"for {name}"
        )
    return spec


def _block_text(block: dict[str, Any]) -> str:
    return block["text"] if block.get("type") == "text" and isinstance(block.get("text"), str) else ""


def message_text(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(t for t in (_block_text(b) for b in content if isinstance(b, dict)) if t)
    return ""


def user_texts(params: dict[str, Any]) -> list[str]:
    return [message_text(m) for m in params.get("messages", []) if m.get("role") == "user"]


def batch_marker(params: dict[str, Any]) -> str | None:
    """The outcome a `[[emulator:...]]` marker in the user text asks for, if any; an agent script may ask
    for it on one turn only."""
    script, step = _script(params)
    if script is not None and step < len(script) and script[step].outcome not in (None, "slow"):
        return script[step].outcome
    for text in user_texts(params):
        found = BATCH_MARKER.search(text)
        if found:
            return found.group(1)
    return None


def is_slow(params: dict[str, Any]) -> bool:
    """Whether the agent script asks for a slow batch at this turn."""
    script, step = _script(params)
    return script is not None and step < len(script) and script[step].outcome == "slow"


def _script(params: dict[str, Any]) -> tuple[tuple[agent_script.Step, ...] | None, int]:
    """The agent script of the first user message, and the step this request plays."""
    messages = params.get("messages") or []
    first = next((m for m in messages if m.get("role") == "user"), None)
    script = agent_script.parse(message_text(first)) if first is not None else None
    return script, sum(1 for m in messages if m.get("role") == "assistant")


def has_sync_error_marker(params: dict[str, Any]) -> bool:
    return any(SYNC_ERROR_MARKER in text for text in user_texts(params))


@dataclass(frozen=True, slots=True)
class Segment:
    """One cacheable unit of the prompt, in the order the API builds its cache prefix."""

    fingerprint: str
    tokens: int
    ttl: str | None


def _without_cache_control(block: dict[str, Any]) -> str:
    # Moving a breakpoint must not change the content it covers.
    return json.dumps({k: v for k, v in block.items() if k != "cache_control"}, sort_keys=True)


def _ttl(block: dict[str, Any]) -> str | None:
    control = block.get("cache_control")
    if isinstance(control, dict):
        return str(control.get("ttl", "5m"))
    return None


def segments(params: dict[str, Any]) -> list[Segment]:
    """tools → system → messages, the prefix order the real prompt cache uses."""
    out: list[Segment] = []
    for tool in params.get("tools") or []:
        text = _without_cache_control(tool)
        out.append(Segment("tool:" + text, tokens_for(len(text)), _ttl(tool)))
    system = params.get("system")
    if isinstance(system, str):
        out.append(Segment("system:" + system, tokens_for(len(system)), None))
    elif isinstance(system, list):
        for block in system:
            out.append(Segment("system:" + block["text"], tokens_for(len(block["text"])), _ttl(block)))
    for message in params["messages"]:
        role = message["role"]
        content = message["content"]
        if isinstance(content, str):
            out.append(Segment(f"{role}:{content}", tokens_for(len(content)), None))
            continue
        for block in content:
            text = block["text"] if block["type"] == "text" else _without_cache_control(block)
            fingerprint = f"{role}:{block['type']}:{text}"
            out.append(Segment(fingerprint, tokens_for(len(text)), _ttl(block)))
    top = params.get("cache_control")
    if isinstance(top, dict) and out and out[-1].ttl is None:
        # Top-level cache_control marks the last cacheable block.
        last = out[-1]
        out[-1] = Segment(last.fingerprint, last.tokens, str(top.get("ttl", "5m")))
    return out


def has_cache_control(params: dict[str, Any]) -> bool:
    """Whether any breakpoint is set; most requests have none and skip prefix hashing entirely."""
    if params.get("cache_control"):
        return True
    system = params.get("system")
    blocks: list[Any] = list(params.get("tools") or [])
    if isinstance(system, list):
        blocks.extend(system)
    for message in params["messages"]:
        if isinstance(message["content"], list):
            blocks.extend(message["content"])
    return any(block.get("cache_control") for block in blocks)


def total_input_tokens(params: dict[str, Any]) -> int:
    return max(1, sum(s.tokens for s in segments(params)))


@dataclass(frozen=True, slots=True)
class CacheUse:
    created_5m: int = 0
    created_1h: int = 0
    read: int = 0

    @property
    def cached(self) -> int:
        return self.created_5m + self.created_1h + self.read


NO_CACHE = CacheUse()


class PromptCache:
    """Remembers which cache prefixes have been written, per model, until their TTL lapses."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[float, float]] = {}  # prefix hash -> (expires, ttl seconds)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def account(self, params: dict[str, Any], now: float | None = None, *, honour_1h: bool = True) -> CacheUse:
        """The cache writes and read of one request; `honour_1h` False writes 1-hour breakpoints for 5 minutes."""
        if not has_cache_control(params):
            return NO_CACHE
        moment = time.monotonic() if now is None else now
        digest = hashlib.sha256(str(params["model"]).encode())
        breakpoints: list[tuple[str, int, str]] = []  # (prefix hash, tokens through it, ttl)
        running = 0
        for segment in segments(params):
            digest.update(segment.fingerprint.encode())
            digest.update(b"\x00")
            running += segment.tokens
            if segment.ttl is not None:
                ttl = segment.ttl if honour_1h else "5m"
                breakpoints.append((digest.copy().hexdigest(), running, ttl))
        if not breakpoints:
            return NO_CACHE
        with self._lock:
            hit = -1
            for index in range(len(breakpoints) - 1, -1, -1):
                entry = self._entries.get(breakpoints[index][0])
                if entry is not None and entry[0] > moment:
                    hit = index
                    break
            read = 0
            if hit >= 0:
                key, read, _ = breakpoints[hit]
                ttl_seconds = self._entries[key][1]
                self._entries[key] = (moment + ttl_seconds, ttl_seconds)
            created = {"5m": 0, "1h": 0}
            previous = read
            for key, through, ttl in breakpoints[hit + 1 :]:
                created[ttl] += through - previous
                previous = through
                seconds = _CACHE_TTL_SECONDS[ttl]
                self._entries[key] = (moment + seconds, seconds)
        return CacheUse(created_5m=created["5m"], created_1h=created["1h"], read=read)


def _agent_turn(params: dict[str, Any]) -> tuple[list[dict[str, Any]], str | None, dict[str, int], int]:
    """What the scripted model does this turn: the blocks before any text, the stop reason (None: answer
    with text and end), server tool counts, and the input tokens the server tools' results add."""
    script, step = _script(params)
    blocks: list[dict[str, Any]] = []
    thinking = params.get("thinking") or {}
    if thinking.get("type") in ("enabled", "adaptive"):
        thought = f"Turn {step + 1}: deciding what to do next."
        blocks.append({"type": "thinking", "thinking": thought, "signature": agent_script.signature(thought)})
    if script is None or step >= len(script):
        return blocks, None, {}, 0
    offered = {t.get("name"): t for t in params.get("tools") or []}
    seed = message_text(params["messages"][0])
    current = script[step]
    counts = {"web_search_requests": 0, "web_fetch_requests": 0}
    added = 0
    for index, call in enumerate(current.server):
        wire = call.name.replace("-", "_")
        if wire not in offered:
            continue
        block_id = agent_script.call_id("srvtoolu_01", seed, step, index)
        blocks.append({"type": "server_tool_use", "id": block_id, "name": wire, "input": call.input})
        if wire == "web_search":
            counts["web_search_requests"] += 1
            query = str(call.input.get("query", ""))
            blocks.append(
                {
                    "type": "web_search_tool_result",
                    "tool_use_id": block_id,
                    "content": [
                        {
                            "type": "web_search_result",
                            "url": f"https://example.com/search/{agent_script.signature(query)[:8]}",
                            "title": f"Result for {query}"[:120],
                            "encrypted_content": agent_script.signature("page", query),
                            "page_age": None,
                        }
                    ],
                }
            )
        elif wire == "web_fetch":
            counts["web_fetch_requests"] += 1
            url = str(call.input.get("url", ""))
            blocks.append(
                {
                    "type": "web_fetch_tool_result",
                    "tool_use_id": block_id,
                    "content": {
                        "type": "web_fetch_result",
                        "url": url,
                        "content": {
                            "type": "document",
                            "source": {"type": "text", "media_type": "text/plain", "data": f"Emulated page {url}"},
                            "title": url,
                        },
                        "retrieved_at": "2026-12-01T00:00:00Z",
                    },
                }
            )
        else:
            blocks.append(
                {
                    "type": "code_execution_tool_result",
                    "tool_use_id": block_id,
                    "content": {
                        "type": "code_execution_result",
                        "stdout": "emulated output\n",
                        "stderr": "",
                        "return_code": 0,
                        "content": [],
                    },
                }
            )
        added += 200
    client = [c for c in current.client if c.name in offered]
    for index, call in enumerate(client):
        block_id = agent_script.call_id("toolu_01", seed, step, index)
        blocks.append({"type": "tool_use", "id": block_id, "name": call.name, "input": call.input})
    used = dict(counts)
    if client:
        return blocks, "tool_use", used, added
    if current.pause:
        return blocks, "pause_turn", used, added
    return blocks, None, used, added


def _final_text(params: dict[str, Any], model: str) -> str:
    """The closing answer of a conversation: what it saw of its tools, and the prompt it answers."""
    results = [
        b
        for m in params["messages"]
        if m["role"] == "user" and isinstance(m["content"], list)
        for b in m["content"]
        if b.get("type") == "tool_result"
    ]
    first = agent_script.without_marker(message_text(params["messages"][0]))
    errors = sum(1 for b in results if b.get("is_error"))
    return f"Emulated reply from {model} after {len(results)} tool results ({errors} errors) to: {first[:80]}"


def build_message(
    params: dict[str, Any], *, message_id: str, cache: CacheUse, service_tier: str, batch: bool = False
) -> dict[str, Any]:
    """A complete Message for `params`; the same params always give the same text and token counts. With a
    response schema the text is JSON generated from it (a `batch` item may be asked by marker not to conform)."""
    model: str = params["model"]
    texts = user_texts(params)
    last_user = texts[-1] if texts else ""
    schema = response_schema(params)
    if schema is not None:
        # A conversation's final answer follows its first prompt (later user turns are tool results).
        text = answer(schema, texts[0] if params.get("tools") and texts else last_user, batch=batch)
    else:
        text = f"Emulated reply from {model} to: {last_user[:80]}"
    blocks, agent_stop, server_use, tool_input = _agent_turn(params) if params.get("tools") else ([], None, {}, 0)
    if params.get("tools") and schema is None:
        text = _final_text(params, model)
    stop_reason = "end_turn"
    stop_sequence: str | None = None
    for stop in params.get("stop_sequences") or []:
        at = text.find(stop) if stop else -1
        if at >= 0:
            text, stop_reason, stop_sequence = text[:at], "stop_sequence", stop
            break
    output_tokens = tokens_for(len(text)) + _OUTPUT_OVERHEAD_TOKENS
    max_tokens: int = params["max_tokens"]
    forced_cut = any(MAX_TOKENS_MARKER in t for t in texts)
    if output_tokens > max_tokens or forced_cut:
        text, stop_reason, stop_sequence, output_tokens = (
            text[: min(max_tokens * 4, max(1, len(text) // 2))],
            "max_tokens",
            None,
            max_tokens,
        )
    if stop_reason == "max_tokens":
        # Cut off before the model got to its tool calls: none is made.
        blocks, agent_stop = [b for b in blocks if b["type"] != "tool_use"], None
    content: list[dict[str, Any]] = [*blocks, {"type": "text", "text": text}]
    if agent_stop is not None:
        # A tool call or a pause instead of the answer: the turn's text is a short preamble.
        preamble = "Let me look that up." if agent_stop == "tool_use" else "Still researching."
        content = (
            [*blocks[:1], {"type": "text", "text": preamble}, *blocks[1:]]
            if blocks and blocks[0]["type"] == "thinking"
            else [{"type": "text", "text": preamble}, *blocks]
        )
        stop_reason, stop_sequence = agent_stop, None
        output_tokens = tokens_for(len(json.dumps(content))) + _OUTPUT_OVERHEAD_TOKENS
    elif blocks:
        output_tokens += tokens_for(len(json.dumps(blocks)))
    usage_extra: dict[str, Any] = {"server_tool_use": server_use} if server_use else {}
    stop_details: dict[str, Any] | None = None
    if any(REFUSAL_MARKER in t for t in texts):
        # As the real API refuses: a successful message with no content, billed for what it generated.
        content, stop_reason, stop_sequence, output_tokens = [], "refusal", None, min(max_tokens, 12)
        stop_details = {
            "type": "refusal",
            "category": "general_harms",
            "explanation": "emulated refusal ([[emulator:refusal]] marker)",
        }
    return {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": stop_sequence,
        "stop_details": stop_details,
        "usage": {
            **usage_extra,
            "input_tokens": max(1, total_input_tokens(params) + tool_input - cache.cached),
            "cache_creation_input_tokens": cache.created_5m + cache.created_1h,
            "cache_read_input_tokens": cache.read,
            "cache_creation": {
                "ephemeral_5m_input_tokens": cache.created_5m,
                "ephemeral_1h_input_tokens": cache.created_1h,
            },
            "output_tokens": output_tokens,
            "service_tier": service_tier,
        },
    }


def sse_events(message: dict[str, Any], pieces: int = 3) -> list[bytes]:
    """The server-sent events of a streamed Messages call that ends as `message`, in the real API's order:
    message_start (usage so far, no content), a ping, each content block as start/deltas/stop,
    message_delta (stop reason, stop details, final usage), message_stop."""

    def event(name: str, data: dict[str, Any]) -> bytes:
        return f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()

    usage = message["usage"]
    start_usage = {**usage, "output_tokens": 1}
    start = {**message, "content": [], "stop_reason": None, "stop_sequence": None, "stop_details": None}
    out = [
        event("message_start", {"type": "message_start", "message": {**start, "usage": start_usage}}),
        event("ping", {"type": "ping"}),
    ]
    for index, block in enumerate(message["content"]):
        kind = block["type"]
        deltas: list[dict[str, Any]] = []
        if kind == "text":
            start_block: dict[str, Any] = {"type": "text", "text": ""}
            text = block.get("text", "")
            step = max(1, -(-len(text) // pieces))
            deltas = [{"type": "text_delta", "text": text[at : at + step]} for at in range(0, len(text), step)]
        elif kind == "thinking":
            start_block = {"type": "thinking", "thinking": "", "signature": ""}
            deltas = [
                {"type": "thinking_delta", "thinking": block["thinking"]},
                {"type": "signature_delta", "signature": block["signature"]},
            ]
        elif kind in ("tool_use", "server_tool_use"):
            # The input arrives as JSON text in pieces; the block starts with an empty input.
            start_block = {**block, "input": {}}
            raw = json.dumps(block["input"])
            step = max(1, -(-len(raw) // pieces))
            deltas = [
                {"type": "input_json_delta", "partial_json": raw[at : at + step]} for at in range(0, len(raw), step)
            ]
        else:
            # Server tool results come whole in their start event.
            start_block = block
        out.append(
            event("content_block_start", {"type": "content_block_start", "index": index, "content_block": start_block})
        )
        for delta in deltas:
            out.append(event("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta}))
        out.append(event("content_block_stop", {"type": "content_block_stop", "index": index}))
    delta = {
        "stop_reason": message["stop_reason"],
        "stop_sequence": message["stop_sequence"],
        "stop_details": message["stop_details"],
    }
    final_usage = {
        "input_tokens": usage["input_tokens"],
        "cache_creation_input_tokens": usage["cache_creation_input_tokens"],
        "cache_read_input_tokens": usage["cache_read_input_tokens"],
        "output_tokens": usage["output_tokens"],
    }
    if "server_tool_use" in usage:
        final_usage["server_tool_use"] = usage["server_tool_use"]
    out.append(event("message_delta", {"type": "message_delta", "delta": delta, "usage": final_usage}))
    out.append(event("message_stop", {"type": "message_stop"}))
    return out
