"""Structured output in the emulator: schemas refused as the real APIs refuse them, and a deterministic answer
generated from the schema (or, by prompt marker, one that does not conform)."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterator, Mapping
from typing import Any

# The answer does not match the schema, in batch and sync alike; or only in a batch (a sync rerun fixes it).
SCHEMA_INVALID_MARKER = "[[emulator:schema-invalid]]"
SCHEMA_INVALID_BATCH_MARKER = "[[emulator:schema-invalid-batch]]"

# What Anthropic's structured outputs refuse (numeric, length and size constraints are unsupported).
_ANTHROPIC_UNSUPPORTED = frozenset(
    {
        "minimum",
        "maximum",
        "exclusiveMinimum",
        "exclusiveMaximum",
        "multipleOf",
        "minLength",
        "maxLength",
        "maxItems",
        "minProperties",
        "maxProperties",
        "oneOf",
        "patternProperties",
        "dependentSchemas",
        "if",
        "then",
        "else",
        "not",
    }
)
# The keywords Gemini's response_json_schema documents; anything else is refused.
_GEMINI_KEYWORDS = frozenset(
    {
        "$id",
        "$defs",
        "$ref",
        "$anchor",
        "type",
        "format",
        "title",
        "description",
        "enum",
        "items",
        "prefixItems",
        "minItems",
        "maxItems",
        "minimum",
        "maximum",
        "anyOf",
        "oneOf",
        "properties",
        "additionalProperties",
        "required",
        "propertyOrdering",
    }
)
_FORMATS = {
    "date-time": "2026-01-01T00:00:00Z",
    "date": "2026-01-01",
    "time": "00:00:00Z",
    "duration": "P1D",
    "email": "someone@example.com",
    "hostname": "example.com",
    "uri": "https://example.com/",
    "ipv4": "192.0.2.1",
    "ipv6": "2001:db8::1",
    "uuid": "00000000-0000-4000-8000-000000000000",
}


def _nodes(node: Any, path: str) -> Iterator[tuple[str, Mapping[str, Any]]]:
    if not isinstance(node, Mapping):
        return
    yield path, node
    for key in ("properties", "$defs", "definitions"):
        for name, child in (node.get(key) or {}).items() if isinstance(node.get(key), Mapping) else ():
            yield from _nodes(child, f"{path}.{key}.{name}")
    for key in ("anyOf", "allOf", "oneOf", "prefixItems"):
        for i, child in enumerate(node.get(key) or []) if isinstance(node.get(key), list) else ():
            yield from _nodes(child, f"{path}.{key}[{i}]")
    for key in ("items", "additionalProperties"):
        if key in node:
            yield from _nodes(node[key], f"{path}.{key}")


def anthropic_schema_problem(schema: Any) -> str | None:
    """What the Messages API says of an `output_config.format.schema` it refuses, or None."""
    if not isinstance(schema, Mapping):
        return "schema: Input should be an object"
    for path, node in _nodes(schema, "schema"):
        for key in node:
            if key in _ANTHROPIC_UNSUPPORTED:
                return f"{path}: the '{key}' keyword is not supported"
        is_object = node.get("type") == "object" or "properties" in node
        if is_object and node.get("additionalProperties") is not False:
            return f"{path}: for 'object' type, 'additionalProperties' must be explicitly set to false"
        if node.get("minItems") not in (None, 0, 1):
            return f"{path}: minItems values other than 0 or 1 are not supported"
    return None


def gemini_schema_problem(schema: Any) -> str | None:
    """What the Gemini API says of a `responseJsonSchema` it refuses, or None."""
    if not isinstance(schema, Mapping):
        return "response_json_schema must be an object"
    for path, node in _nodes(schema, "response_json_schema"):
        for key in node:
            if key not in _GEMINI_KEYWORDS:
                return f"{path}: unsupported JSON Schema keyword {key!r}"
    return None


def answer(schema: Mapping[str, Any], prompt: str, *, batch: bool) -> str:
    """The reply text for `prompt`: JSON that conforms to `schema`, the same every time, unless a marker
    asks for one that does not."""
    value = _generate(schema, schema, prompt, "", 0)
    if SCHEMA_INVALID_MARKER in prompt or (batch and SCHEMA_INVALID_BATCH_MARKER in prompt):
        value = _break(schema, schema, value, 0)
    return json.dumps(value, ensure_ascii=False)


_MAX_ITEMS = 20
_MAX_STRING = 10_000


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _resolve(node: Mapping[str, Any], root: Mapping[str, Any]) -> Mapping[str, Any]:
    for _ in range(32):
        ref = node.get("$ref")
        if not isinstance(ref, str) or not ref.startswith("#"):
            return node
        target: Any = root
        for part in ref[1:].strip("/").split("/") if ref != "#" else ():
            target = target.get(part, {}) if isinstance(target, Mapping) else {}
        node = target if isinstance(target, Mapping) else {}
    return node


def _type(node: Mapping[str, Any]) -> str | None:
    kind = node.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), kind[0] if kind else None)
    if kind is None and "properties" in node:
        return "object"
    return kind if isinstance(kind, str) else None


def _pick(options: list[Any], prompt: str, where: str) -> Any:
    digest = hashlib.sha256(f"{prompt}\x00{where}".encode()).digest()
    return options[digest[0] % len(options)]


def _generate(node: Any, root: Mapping[str, Any], prompt: str, where: str, depth: int) -> Any:
    if not isinstance(node, Mapping) or depth > 16:
        return None
    node = _resolve(node, root)
    if "const" in node:
        return node["const"]
    if isinstance(node.get("enum"), list) and node["enum"]:
        return _pick(node["enum"], prompt, where)
    for key in ("anyOf", "oneOf"):
        if isinstance(node.get(key), list) and node[key]:
            return _generate(node[key][0], root, prompt, where, depth + 1)
    if isinstance(node.get("allOf"), list):
        merged: dict[str, Any] = {k: v for k, v in node.items() if k != "allOf"}
        for part in node["allOf"]:
            part = _resolve(part, root) if isinstance(part, Mapping) else {}
            merged.setdefault("properties", {}).update(part.get("properties") or {})
            merged["required"] = [*merged.get("required", []), *(part.get("required") or [])]
            merged.update({k: v for k, v in part.items() if k not in ("properties", "required")})
        return _generate(merged, root, prompt, where, depth + 1)
    kind = _type(node)
    if kind == "object":
        props = node.get("properties") or {}
        return {name: _generate(sub, root, prompt, f"{where}.{name}", depth + 1) for name, sub in props.items()}
    if kind == "array":
        prefix = node.get("prefixItems") or []
        # Capped: a schema may ask for more items than any answer would hold.
        count = min(max(len(prefix), _int(node.get("minItems")), 2), _MAX_ITEMS)
        if isinstance(node.get("maxItems"), int):
            count = max(0, min(count, node["maxItems"]))
        items = node.get("items")
        return [
            _generate(prefix[i] if i < len(prefix) else items, root, prompt, f"{where}[{i}]", depth + 1)
            for i in range(count)
        ]
    if kind == "string":
        if node.get("format") in _FORMATS:
            return _FORMATS[node["format"]]
        topic = " ".join(prompt.split())[:60]
        text = f"{where.lstrip('.') or 'answer'} for: {topic}"
        if isinstance(node.get("maxLength"), int):
            text = text[: max(0, node["maxLength"])]
        if _int(node.get("minLength")) > len(text):
            text = text.ljust(min(_int(node["minLength"]), _MAX_STRING), ".")
        return text
    if kind in ("integer", "number"):
        low = node.get("minimum", node.get("exclusiveMinimum"))
        high = node.get("maximum")
        number = 1
        try:
            if isinstance(low, int | float) and math.isfinite(low):
                number = math.floor(low) + (1 if "minimum" not in node else 0 if low == math.floor(low) else 1)
            if isinstance(high, int | float) and math.isfinite(high) and number > high:
                number = math.floor(high)
            return number if kind == "integer" else float(number)
        except (OverflowError, ValueError):  # bounds past what a float holds: any number will do
            return 1 if kind == "integer" else 1.0
    if kind == "boolean":
        return True
    return None


def _break(node: Any, root: Mapping[str, Any], value: Any, depth: int) -> Any:
    """`value` made not to conform, as deep in the schema as possible (so the error names a path)."""
    node = _resolve(node, root) if isinstance(node, Mapping) else {}
    if depth < 16 and isinstance(value, dict) and _type(node) == "object":
        props = node.get("properties") or {}
        for name in node.get("required") or list(props):
            if name in value and name in props:
                return {**value, name: _break(props[name], root, value[name], depth + 1)}
        return {**value, "unexpected_property": True}
    if depth < 16 and isinstance(value, list) and value and _type(node) == "array":
        return [_break(node.get("items") or {}, root, value[0], depth + 1), *value[1:]]
    if isinstance(node.get("enum"), list) or "const" in node:
        return "not-one-of-the-allowed-values"
    return 12345 if isinstance(value, str) else "not-the-right-type"
