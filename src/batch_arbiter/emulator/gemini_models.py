"""What a Gemini `GenerateContentRequest` means to the emulator: models, validation, markers, token counts,
implicit caching and the deterministic reply. Shared by `generateContent` and batch items.

The model table is a plausible reading of the public docs as of late 2026, not an authority: it exists so
that requests the real API would refuse (a thinking level the model lacks, a level and a budget in one
request) are refused here as well.
"""

from __future__ import annotations

import base64
import hashlib
import re
import threading
import time
from dataclasses import dataclass
from typing import Any

from . import agent_script
from .anthropic_messages import BATCH_MARKER, MAX_TOKENS_MARKER, REFUSAL_MARKER, SYNC_ERROR_MARKER, tokens_for
from .routing import HttpError
from .structured import answer, gemini_schema_problem

# Steer a whole job, or the Flex tier, from a prompt (the batch and sync markers are shared with Anthropic).
JOB_FAILED_MARKER = "[[emulator:job-failed]]"
FLEX_UNAVAILABLE_MARKER = "[[emulator:flex-unavailable]]"
# A prompt the safety filters block before any candidate (promptFeedback.blockReason); the shared
# [[emulator:refusal]] marker blocks the candidate instead (finishReason SAFETY).
PROMPT_BLOCKED_MARKER = "[[emulator:prompt-blocked]]"
_BLOCKED_RATINGS = [
    {"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH", "blocked": True},
    {"category": "HARM_CATEGORY_HARASSMENT", "probability": "NEGLIGIBLE"},
]

LEVELS = ("MINIMAL", "LOW", "MEDIUM", "HIGH", "XHIGH")
_THOUGHTS_BY_LEVEL = {"MINIMAL": 8, "LOW": 16, "MEDIUM": 64, "HIGH": 256, "XHIGH": 512}
# What a thinking model spends when the request leaves thinking to it (dynamic budget, default level).
_DEFAULT_THOUGHTS = 64
_OUTPUT_OVERHEAD_TOKENS = 5
# Implicit caching applies to a repeated prefix of at least this many tokens, for this long.
IMPLICIT_CACHE_MIN_TOKENS = 1024
_IMPLICIT_CACHE_SECONDS = 3600.0
SERVICE_TIERS = frozenset({"unspecified", "standard", "flex", "priority"})

# Request keys of GenerateContentRequest on the Gemini Developer API; `model` appears in batch items.
_REQUEST_KEYS = frozenset(
    {
        "model",
        "contents",
        "systemInstruction",
        "generationConfig",
        "safetySettings",
        "tools",
        "toolConfig",
        "cachedContent",
        "serviceTier",
        "labels",
        "store",
    }
)
_GENERATION_KEYS = frozenset(
    {
        "maxOutputTokens",
        "temperature",
        "topP",
        "topK",
        "candidateCount",
        "stopSequences",
        "seed",
        "presencePenalty",
        "frequencyPenalty",
        "responseMimeType",
        "responseSchema",
        "responseJsonSchema",
        "responseModalities",
        "responseLogprobs",
        "logprobs",
        "mediaResolution",
        "thinkingConfig",
    }
)
_THINKING_KEYS = frozenset({"thinkingLevel", "thinkingBudget", "includeThoughts"})


@dataclass(frozen=True)
class GeminiModel:
    id: str
    # Thinking levels the model takes; empty for the 2.5 models, which take budgets only.
    levels: frozenset[str]
    # (min, max) thinking budget, or None when the model refuses budgets.
    budget: tuple[int, int] | None
    # Whether a budget of 0 (thinking off) is allowed.
    can_disable: bool
    aliases: tuple[str, ...] = ()
    input_token_limit: int = 1_048_576
    output_token_limit: int = 65_536


_MODELS = (
    GeminiModel("gemini-4-carbon", frozenset({"LOW", "MEDIUM", "HIGH"}), None, False),
    GeminiModel("gemini-4-argon", frozenset({"LOW", "MEDIUM", "HIGH"}), None, False),
    GeminiModel("gemini-4-hydrogen", frozenset({"LOW", "MEDIUM", "HIGH", "XHIGH"}), None, False),
    GeminiModel("gemini-3.8-flash", frozenset({"LOW", "MEDIUM", "HIGH"}), (0, 24_576), True),
    GeminiModel("gemini-3.5-flash", frozenset({"MINIMAL", "LOW", "MEDIUM", "HIGH"}), (0, 24_576), True),
    GeminiModel("gemini-3.5-flash-lite", frozenset({"MINIMAL", "LOW", "MEDIUM", "HIGH"}), (0, 24_576), True),
    # The SDK's model list (google/genai/_gaos/types/interactions/model.py) has no bare `gemini-3.1-pro`.
    GeminiModel("gemini-3.1-pro-preview", frozenset({"LOW", "MEDIUM", "HIGH"}), (128, 32_768), False),
    GeminiModel("gemini-2.5-pro", frozenset(), (128, 32_768), False),
    GeminiModel("gemini-2.5-flash", frozenset(), (0, 24_576), True),
    GeminiModel("gemini-2.5-flash-lite", frozenset(), (512, 24_576), True),
)
_BY_NAME = {name: m for m in _MODELS for name in (m.id, *m.aliases)}

# Models past their shutdown: the API still answers, from the replacement at its price, and says so in the
# response's modelStatus (google-genai `types.ModelStatus`). Gemini 2.5 Pro and 2.5 Flash since 2026-12-01
# (Google's deprecations page as quoted by dev.to/aideprecations, 2026-11-10).
RETIRED: dict[str, tuple[str, str]] = {
    "gemini-2.5-pro": ("2026-12-01T00:00:00Z", "gemini-3.8-flash"),
    "gemini-2.5-flash": ("2026-12-01T00:00:00Z", "gemini-3.5-flash-lite"),
}

STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    413: "INVALID_ARGUMENT",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "NOT_IMPLEMENTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


def status_name(code: int) -> str:
    return STATUS_NAMES.get(code, "INTERNAL" if code >= 500 else "FAILED_PRECONDITION")


def invalid(message: str) -> HttpError:
    return HttpError(400, message, "INVALID_ARGUMENT")


def find_model(name: str, version: str = "v1") -> GeminiModel:
    """The model a `models/{m}` path names; 404 as the real API words it when unknown."""
    model = _BY_NAME.get(name.removeprefix("models/"))
    if model is None:
        raise HttpError(
            404, f"models/{name.removeprefix('models/')} is not found for API version {version}", "NOT_FOUND"
        )
    return model


def _camel(key: str) -> str:
    head, *rest = key.split("_")
    return head + "".join(part.capitalize() for part in rest)


def _camel_keys(value: dict[str, Any]) -> dict[str, Any]:
    # Proto-JSON parsers accept snake_case too, and the SDK sends `thinking_level` inside thinkingConfig.
    return {_camel(k): v for k, v in value.items()}


def validate_request(body: Any, where: str = "") -> dict[str, Any]:
    """A structurally valid request, normalised to camelCase keys; 400 INVALID_ARGUMENT otherwise."""
    if not isinstance(body, dict):
        raise invalid(f"Invalid JSON payload received. {where or 'request'} must be an object.")
    request = _camel_keys(body)
    unknown = sorted(set(request) - _REQUEST_KEYS)
    if unknown:
        raise invalid(f"Invalid JSON payload received. Unknown name \"{unknown[0]}\" at '{where or 'request'}'.")
    contents = request.get("contents")
    if not isinstance(contents, list) or not contents:
        raise invalid(f"{where}contents is not specified")
    for index, content in enumerate(contents):
        _check_content(content, f"{where}contents[{index}]")
    system = request.get("systemInstruction")
    if system is not None:
        _check_content(system, f"{where}system_instruction")
    config = request.get("generationConfig")
    if config is not None:
        if not isinstance(config, dict):
            raise invalid(f"Invalid JSON payload received. {where}generation_config must be an object.")
        config = request["generationConfig"] = _camel_keys(config)
        unknown = sorted(set(config) - _GENERATION_KEYS)
        if unknown:
            raise invalid(f"Invalid JSON payload received. Unknown name \"{unknown[0]}\" at 'generation_config'.")
        max_tokens = config.get("maxOutputTokens")
        if max_tokens is not None and (not isinstance(max_tokens, int) or max_tokens < 1):
            raise invalid(f"{where}generation_config.max_output_tokens must be a positive integer")
        schema = config.get("responseJsonSchema")
        if schema is not None:
            if config.get("responseSchema") is not None:
                raise invalid(f"{where}generation_config: response_schema and response_json_schema cannot both be set")
            if config.get("responseMimeType") != "application/json":
                raise invalid(
                    f"{where}generation_config.response_mime_type: must be application/json when "
                    "response_json_schema is set"
                )
            problem = gemini_schema_problem(schema)
            if problem is not None:
                raise invalid(f"{where}generation_config.{problem}")
        thinking = config.get("thinkingConfig")
        if thinking is not None:
            if not isinstance(thinking, dict):
                raise invalid(f"{where}generation_config.thinking_config must be an object")
            thinking = config["thinkingConfig"] = _camel_keys(thinking)
            unknown = sorted(set(thinking) - _THINKING_KEYS)
            if unknown:
                raise invalid(f"Invalid JSON payload received. Unknown name \"{unknown[0]}\" at 'thinking_config'.")
            level = thinking.get("thinkingLevel")
            if level is not None and (not isinstance(level, str) or level.upper() not in LEVELS):
                raise invalid(f"{where}thinking_config.thinking_level: invalid value {level!r}")
            if level is not None and thinking.get("thinkingBudget") is not None:
                raise invalid("thinking_level and thinking_budget cannot both be set; use one of them")
    tier = request.get("serviceTier")
    if tier is not None and (not isinstance(tier, str) or tier.lower() not in SERVICE_TIERS):
        raise invalid(f"Invalid value at 'service_tier': {tier!r}")
    _check_tools(request.get("tools"), where)
    _check_function_turns(request["contents"], where)
    return request


_TOOL_KEYS = frozenset(
    {
        "functionDeclarations",
        "googleSearch",
        "googleSearchRetrieval",
        "urlContext",
        "codeExecution",
        "fileSearch",
        "googleMaps",
        "computerUse",
    }
)
_DECLARATION_KEYS = frozenset(
    {"name", "description", "parameters", "parametersJsonSchema", "response", "responseJsonSchema", "behavior"}
)
_FUNCTION_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_.:-]{0,127}$")


def _check_tools(tools: Any, where: str) -> None:
    if tools is None:
        return
    if not isinstance(tools, list):
        raise invalid(f"Invalid JSON payload received. {where}tools must be a list.")
    for i, raw in enumerate(tools):
        tool = _camel_keys(raw) if isinstance(raw, dict) else None
        if not tool:
            raise invalid(f"{where}tools[{i}] must be a non-empty object")
        unknown = sorted(set(tool) - _TOOL_KEYS)
        if unknown:
            raise invalid(f"Invalid JSON payload received. Unknown name \"{unknown[0]}\" at 'tools[{i}]'.")
        for j, declaration in enumerate(tool.get("functionDeclarations") or []):
            declaration = _camel_keys(declaration) if isinstance(declaration, dict) else {}
            unknown = sorted(set(declaration) - _DECLARATION_KEYS)
            if unknown:
                raise invalid(
                    f'Invalid JSON payload received. Unknown name "{unknown[0]}" at '
                    f"'tools[{i}].function_declarations[{j}]'."
                )
            if not _FUNCTION_NAME.match(str(declaration.get("name", ""))):
                raise invalid(f"{where}tools[{i}].function_declarations[{j}].name: Invalid function name.")
            if "parameters" in declaration and "parametersJsonSchema" in declaration:
                raise invalid("parameters and parameters_json_schema cannot both be set")


def _part(part: Any) -> dict[str, Any]:
    return _camel_keys(part) if isinstance(part, dict) else {}


def _check_function_turns(contents: list[Any], where: str) -> None:
    """Function calls replayed with their thought signatures, each answered 1:1 in the next turn."""
    for i, content in enumerate(contents):
        if content.get("role") != "model":
            continue
        parts = [_part(p) for p in content["parts"]]
        calls = [p for p in parts if isinstance(p.get("functionCall"), dict)]
        if not calls:
            continue
        first = calls[0]
        expected = function_signature(calls)
        if _signature_bytes(first.get("thoughtSignature")) != expected:
            name = first["functionCall"].get("name")
            raise invalid(
                "Function call is missing a thought_signature in functionCall parts. This is required for tools "
                f"to work correctly. Additional data, function call `default_api:{name}`, position {i + 1}. "
                "Please refer to https://ai.google.dev/gemini-api/docs/thought-signatures for more details."
            )
        following = contents[i + 1] if i + 1 < len(contents) else None
        if following is None:
            continue
        responses = [p for p in (_part(q) for q in following.get("parts", [])) if "functionResponse" in p]
        if len(responses) != len(calls):
            raise invalid(
                "Please ensure that the number of function response parts is equal to the number of function "
                "call parts of the function call turn."
            )


def function_signature(calls: list[dict[str, Any]]) -> bytes:
    """The thought signature the emulator puts on a turn's first function call."""
    names = [str(c["functionCall"].get("name")) for c in calls]
    return hashlib.sha256(agent_script.signature("gemini", *names).encode()).digest()[:24]


def _signature_bytes(value: Any) -> bytes | None:
    # Proto JSON takes bytes in either base64 alphabet (the SDK sends the URL-safe one).
    if not isinstance(value, str):
        return None
    try:
        return base64.b64decode(value.replace("-", "+").replace("_", "/"), validate=True)
    except ValueError:
        return None


def _check_content(content: Any, where: str) -> None:
    if not isinstance(content, dict):
        raise invalid(f"Invalid JSON payload received. {where} must be an object.")
    role = content.get("role")
    if role is not None and role not in ("user", "model"):
        raise invalid(f"{where}.role: please use a valid role: user, model")
    parts = content.get("parts")
    if not isinstance(parts, list) or not parts:
        raise invalid(f"{where}.parts must not be empty")
    for part in parts:
        if not isinstance(part, dict) or not part:
            raise invalid(f"{where}.parts: each part must be a non-empty object")


def check_thinking(model: GeminiModel, request: dict[str, Any]) -> None:
    """Model-dependent checks; 400 INVALID_ARGUMENT for a thinking setting the model does not take, or an
    output limit above the model's."""
    limit = (request.get("generationConfig") or {}).get("maxOutputTokens")
    if isinstance(limit, int) and not 1 <= limit <= model.output_token_limit:
        raise invalid(
            f"Unable to submit request because it has a maxOutputTokens value of {limit} but the supported range "
            f"is from 1 (inclusive) to {model.output_token_limit + 1} (exclusive). Update the value and try again."
        )
    config = request.get("generationConfig") or {}
    json_answer = config.get("responseMimeType") == "application/json"
    if model.id.startswith("gemini-2.") and request.get("tools") and json_answer:
        # Gemini 3 combines tools with structured output; Gemini 2 refuses the request.
        raise invalid("Function calling with a response mime type: 'application/json' is unsupported")
    thinking = (request.get("generationConfig") or {}).get("thinkingConfig") or {}
    level = thinking.get("thinkingLevel")
    budget = thinking.get("thinkingBudget")
    if level is not None:
        if not model.levels:
            raise invalid(f"thinking_level is not supported by {model.id}; use thinking_budget")
        if level.upper() not in model.levels:
            supported = ", ".join(sorted(model.levels, key=LEVELS.index))
            raise invalid(f"thinking_level {level.upper()} is not supported by {model.id} (supported: {supported})")
    if budget is not None:
        if model.budget is None:
            raise invalid(f"thinking_budget is not supported by {model.id}; use thinking_level")
        low, high = model.budget
        if budget == 0 and not model.can_disable:
            raise invalid(f"thinking cannot be turned off on {model.id} (thinking_budget 0)")
        if budget != -1 and budget != 0 and not low <= budget <= high:
            raise invalid(f"thinking_budget must be between {low} and {high} for {model.id}, or -1 for dynamic")


def _texts(content: dict[str, Any]) -> list[str]:
    return [p["text"] for p in content.get("parts", []) if isinstance(p, dict) and isinstance(p.get("text"), str)]


def user_texts(request: dict[str, Any]) -> list[str]:
    return ["\n".join(_texts(c)) for c in request.get("contents", []) if c.get("role", "user") == "user"]


def all_texts(request: dict[str, Any]) -> list[str]:
    system = request.get("systemInstruction")
    return (_texts(system) if system else []) + [t for c in request.get("contents", []) for t in _texts(c)]


def is_slow(request: dict[str, Any]) -> bool:
    """Whether the agent script asks for a slow batch at this turn."""
    script, step = _script(request)
    return script is not None and step < len(script) and script[step].outcome == "slow"


def _script(request: dict[str, Any]) -> tuple[tuple[agent_script.Step, ...] | None, int]:
    contents = request.get("contents") or []
    first = next((c for c in contents if c.get("role", "user") == "user"), None)
    script = agent_script.parse("\n".join(_texts(first))) if first is not None else None
    return script, sum(1 for c in contents if c.get("role") == "model")


def batch_marker(request: dict[str, Any]) -> str | None:
    script, step = _script(request)
    if script is not None and step < len(script) and script[step].outcome not in (None, "slow"):
        return script[step].outcome
    for text in user_texts(request):
        found = BATCH_MARKER.search(text)
        if found:
            return found.group(1)
    return None


def has_marker(request: dict[str, Any], marker: str) -> bool:
    return any(marker in text for text in user_texts(request))


def has_sync_error_marker(request: dict[str, Any]) -> bool:
    return has_marker(request, SYNC_ERROR_MARKER)


def prompt_tokens(request: dict[str, Any]) -> int:
    return max(1, tokens_for(sum(len(t) for t in all_texts(request))))


def system_tokens(request: dict[str, Any]) -> int:
    system = request.get("systemInstruction")
    return tokens_for(sum(len(t) for t in _texts(system))) if system else 0


def thoughts_tokens(model: GeminiModel, request: dict[str, Any]) -> int:
    thinking = (request.get("generationConfig") or {}).get("thinkingConfig") or {}
    level = thinking.get("thinkingLevel")
    if isinstance(level, str):
        return _THOUGHTS_BY_LEVEL[level.upper()]
    budget = thinking.get("thinkingBudget")
    if isinstance(budget, int) and budget >= 0:
        return min(budget, _THOUGHTS_BY_LEVEL["HIGH"])
    return _DEFAULT_THOUGHTS


class ImplicitCache:
    """Gemini's automatic prefix cache, reduced to the system instruction: a repeat within the TTL is a hit."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[str, float] = {}

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def account(self, model: GeminiModel, request: dict[str, Any], now: float | None = None) -> int:
        """Cached tokens for this request; the first sight of a prefix stores it at no charge."""
        tokens = system_tokens(request)
        if tokens < IMPLICIT_CACHE_MIN_TOKENS:
            return 0
        moment = time.monotonic() if now is None else now
        system = "\x00".join(_texts(request["systemInstruction"]))
        key = hashlib.sha256(f"{model.id}\x00{system}".encode()).hexdigest()
        with self._lock:
            hit = self._entries.get(key, 0.0) > moment
            self._entries[key] = moment + _IMPLICIT_CACHE_SECONDS
        return tokens if hit else 0


def _offered(request: dict[str, Any]) -> tuple[set[str], set[str]]:
    """Function names and server tools (by common name) the request offers."""
    functions: set[str] = set()
    server: set[str] = set()
    names = {"googleSearch": "web-search", "urlContext": "web-fetch", "codeExecution": "code-execution"}
    for raw in request.get("tools") or []:
        tool = _camel_keys(raw)
        for declaration in tool.get("functionDeclarations") or []:
            functions.add(str(declaration.get("name")))
        server |= {common for key, common in names.items() if key in tool}
    return functions, server


def _agent_turn(request: dict[str, Any]) -> tuple[list[dict[str, Any]], dict[str, Any], int, bool]:
    """The scripted model's parts before any answer, candidate metadata, the tool prompt tokens its
    server tools add, and whether the turn stops for function results."""
    script, step = _script(request)
    if script is None or step >= len(script):
        return [], {}, 0, False
    functions, server = _offered(request)
    seed = "\n".join(_texts(request["contents"][0]))
    current = script[step]
    parts: list[dict[str, Any]] = []
    meta: dict[str, Any] = {}
    tool_tokens = 0
    for call in current.server:
        if call.name not in server:
            continue
        tool_tokens += 200
        if call.name == "web-search":
            query = str(call.input.get("query", ""))
            grounding = meta.setdefault("groundingMetadata", {"webSearchQueries": [], "groundingChunks": []})
            grounding["webSearchQueries"].append(query)
            grounding["groundingChunks"].append(
                {"web": {"uri": f"https://example.com/search/{agent_script.signature(query)[:8]}", "title": query}}
            )
        elif call.name == "web-fetch":
            url = str(call.input.get("url", ""))
            urls = meta.setdefault("urlContextMetadata", {"urlMetadata": []})
            urls["urlMetadata"].append({"retrievedUrl": url, "urlRetrievalStatus": "URL_RETRIEVAL_STATUS_SUCCESS"})
        else:
            code = str(call.input.get("code", "print('hello')"))
            parts.append({"executableCode": {"language": "PYTHON", "code": code}})
            parts.append({"codeExecutionResult": {"outcome": "OUTCOME_OK", "output": "emulated output\n"}})
    calls: list[dict[str, Any]] = []
    for index, call in enumerate(c for c in current.client if c.name in functions):
        call_id = agent_script.call_id("call_", seed, step, index)
        calls.append({"functionCall": {"id": call_id, "name": call.name, "args": call.input}})
    if calls:
        calls[0]["thoughtSignature"] = base64.b64encode(function_signature(calls)).decode()
    return parts + calls, meta, tool_tokens, bool(calls)


def _final_text(request: dict[str, Any], model: GeminiModel) -> str:
    responses = [
        p["functionResponse"]
        for c in request.get("contents", [])
        if c.get("role", "user") == "user"
        for p in (_part(q) for q in c.get("parts", []))
        if isinstance(p.get("functionResponse"), dict)
    ]
    errors = sum(1 for r in responses if isinstance(r.get("response"), dict) and "error" in r["response"])
    first = agent_script.without_marker("\n".join(_texts(request["contents"][0])))
    return f"Emulated reply from {model.id} after {len(responses)} tool results ({errors} errors) to: {first[:80]}"


def build_response(
    model: GeminiModel, request: dict[str, Any], *, response_id: str, cached: int, batch: bool = False
) -> dict[str, Any]:
    """A GenerateContentResponse; the same request always gives the same text and token counts. With a
    response schema the text is JSON generated from it (a `batch` item may be asked by marker not to conform)."""
    texts = user_texts(request)
    last_user = texts[-1] if texts else ""
    config = request.get("generationConfig") or {}
    schema = config.get("responseJsonSchema")
    if isinstance(schema, dict):
        # A conversation's final answer follows its first prompt (later user turns are function responses).
        text = answer(schema, texts[0] if request.get("tools") and texts else last_user, batch=batch)
    else:
        text = f"Emulated reply from {model.id} to: {last_user[:80]}"
    agent_parts, meta, tool_tokens, stops = _agent_turn(request) if request.get("tools") else ([], {}, 0, False)
    if request.get("tools") and not isinstance(schema, dict):
        text = _final_text(request, model)
    finish = "STOP"
    for stop in config.get("stopSequences") or []:
        at = text.find(stop) if stop else -1
        if at >= 0:
            text = text[:at]
            break
    output = tokens_for(len(text)) + _OUTPUT_OVERHEAD_TOKENS
    limit = config.get("maxOutputTokens")
    if isinstance(limit, int) and (output > limit or any(MAX_TOKENS_MARKER in t for t in texts)):
        text, output, finish = text[: min(limit * 4, max(1, len(text) // 2))], limit, "MAX_TOKENS"
    prompt = prompt_tokens(request)
    thoughts = thoughts_tokens(model, request)
    blocked_prompt = any(PROMPT_BLOCKED_MARKER in t for t in texts)
    refused = any(REFUSAL_MARKER in t for t in texts)
    if blocked_prompt:
        output = thoughts = 0
    elif refused:
        output = 0
    if finish == "MAX_TOKENS":
        # Cut off before the model got to its function calls: none is made.
        agent_parts, stops = [p for p in agent_parts if "functionCall" not in p], False
    parts: list[dict[str, Any]] = [*agent_parts, {"text": text}]
    if stops:
        parts = [{"text": "Let me look that up."}, *agent_parts]
        output = tokens_for(len(str(parts))) + _OUTPUT_OVERHEAD_TOKENS
    elif agent_parts:
        output += tokens_for(len(str(agent_parts)))
    usage: dict[str, Any] = {
        "promptTokenCount": prompt,
        "totalTokenCount": prompt + output + thoughts + tool_tokens,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt}],
    }
    if output:
        usage["candidatesTokenCount"] = output
    if tool_tokens:
        usage["toolUsePromptTokenCount"] = tool_tokens
    if thoughts:
        usage["thoughtsTokenCount"] = thoughts
    if cached:
        usage["cachedContentTokenCount"] = cached
        usage["cacheTokensDetails"] = [{"modality": "TEXT", "tokenCount": cached}]
    response: dict[str, Any] = {"usageMetadata": usage, "modelVersion": model.id, "responseId": response_id}
    if model.id in RETIRED:
        retired_at, replacement = RETIRED[model.id]
        response["modelVersion"] = replacement
        response["modelStatus"] = {
            "modelStage": "RETIRED",
            "retirementTime": retired_at,
            "message": f"{model.id} is retired; this request was answered by {replacement}",
        }
    if blocked_prompt:
        # As the real API blocks a prompt: no candidates at all, and the reason in promptFeedback.
        response["promptFeedback"] = {"blockReason": "SAFETY", "safetyRatings": _BLOCKED_RATINGS}
        return response
    if refused:
        # A blocked candidate carries no content, only its finish reason and the ratings that blocked it.
        candidate: dict[str, Any] = {"finishReason": "SAFETY", "index": 0, "safetyRatings": _BLOCKED_RATINGS}
    else:
        candidate = {"content": {"role": "model", "parts": parts}, "finishReason": finish, "index": 0}
        candidate.update(meta)
    return {"candidates": [candidate], **response}


def stream_chunks(response: dict[str, Any], pieces: int = 3) -> list[dict[str, Any]]:
    """`response` as streamGenerateContent sends it: the text in a few chunks, each a GenerateContentResponse
    with the usage so far; the finish reason and the final usage on the last. A blocked prompt or a blocked
    candidate is one chunk, as it is whole."""
    candidates = response.get("candidates") or []
    parts = (candidates[0].get("content") or {}).get("parts") if candidates else None
    if not parts or any("text" not in p for p in parts) or set(candidates[0]) - {"content", "finishReason", "index"}:
        # Function calls, code and grounding come whole, in one chunk, as the real stream sends them.
        return [response]
    text = "".join(p.get("text", "") for p in parts)
    step = max(1, -(-len(text) // pieces))
    texts = [text[at : at + step] for at in range(0, len(text), step)] or [""]
    usage = response["usageMetadata"]
    prompt = {k: v for k, v in usage.items() if k in ("promptTokenCount", "promptTokensDetails")}
    chunks: list[dict[str, Any]] = []
    for i, piece in enumerate(texts):
        last = i == len(texts) - 1
        candidate: dict[str, Any] = {"content": {"role": "model", "parts": [{"text": piece}]}, "index": 0}
        if last:
            candidate["finishReason"] = candidates[0].get("finishReason", "STOP")
        chunk: dict[str, Any] = {
            "candidates": [candidate],
            "usageMetadata": usage if last else {**prompt, "totalTokenCount": usage["promptTokenCount"]},
            "modelVersion": response["modelVersion"],
            "responseId": response["responseId"],
        }
        if "modelStatus" in response:
            chunk["modelStatus"] = response["modelStatus"]
        chunks.append(chunk)
    return chunks


def derived_id(*parts: str) -> str:
    # Deterministic ids keep repeated downloads of one job's results byte-identical.
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:24]


_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,39}")


def valid_resource_id(value: str) -> bool:
    return bool(_NAME.fullmatch(value))
