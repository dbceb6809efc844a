"""What each provider's structured output takes of a JSON Schema, checked before any call (no SDK imported).

Anthropic (`output_config.format`, type `json_schema`): the subset the SDK's `transform_schema` (anthropic
2.12.0, `lib/_parse/_transform.py`) keeps and the structured-outputs docs list: every object closed with
`additionalProperties: false`, `minItems` only 0 or 1, string formats from a fixed list, enums of
primitives, local `$ref` only and no recursion; numeric, length and size constraints are not supported.

Gemini (`response_json_schema`): the keywords the SDK documents for `GenerateContentConfig.
response_json_schema` (google-genai 3.4.0, `types.py`), and a `$ref` beside nothing but `$`-keywords.

A schema outside its provider's subset is refused as bad input rather than sent: the API would refuse the
whole batch, or (Anthropic validates batch items late) every request in it, after the run had started.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

__all__ = ["anthropic_schema_problem", "gemini_schema_problem", "wire_schema"]

# Sub-schema keywords by the shape they hold.
_SCHEMA_MAPS = ("properties", "$defs", "definitions", "patternProperties", "dependentSchemas")
_SCHEMA_LISTS = ("anyOf", "allOf", "oneOf", "prefixItems")
_SCHEMA_ONE = ("items", "additionalProperties", "not", "if", "then", "else", "contains", "propertyNames")
# Annotations every provider ignores harmlessly.
_ANNOTATIONS = frozenset({"title", "description", "$comment", "examples"})

ANTHROPIC_KEYWORDS = frozenset(
    {
        "type",
        "properties",
        "required",
        "additionalProperties",
        "items",
        "minItems",
        "enum",
        "const",
        "anyOf",
        "allOf",
        "$ref",
        "$defs",
        "definitions",
        "format",
        "pattern",
        "default",
        "$schema",
        "$id",
    }
    | _ANNOTATIONS
)
ANTHROPIC_FORMATS = frozenset(
    {"date-time", "time", "date", "duration", "email", "hostname", "uri", "ipv4", "ipv6", "uuid"}
)
GEMINI_KEYWORDS = frozenset(
    {
        "$id",
        "$defs",
        "$ref",
        "$anchor",
        "$schema",
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


def wire_schema(schema: Mapping[str, Any]) -> dict[str, Any]:
    """The schema as sent: its `$schema` names the dialect we validate with, not something to generate."""
    return {k: v for k, v in schema.items() if k != "$schema"}


def anthropic_schema_problem(schema: Mapping[str, Any]) -> str | None:
    """Why Anthropic's structured outputs cannot take `schema`, or None."""
    for path, node in _walk(schema, "$"):
        for key in node:
            if key not in ANTHROPIC_KEYWORDS:
                return _refused("anthropic", path, f"keyword {key!r} is not supported")
        if _is_object(node) and node.get("additionalProperties", None) is not False:
            return _refused("anthropic", path, "an object must set additionalProperties to false")
        if "minItems" in node and node["minItems"] not in (0, 1):
            return _refused("anthropic", path, "minItems may only be 0 or 1")
        if "format" in node and node["format"] not in ANTHROPIC_FORMATS:
            return _refused("anthropic", path, f"string format {node['format']!r} is not supported")
        if "enum" in node and not all(v is None or isinstance(v, str | int | float | bool) for v in node["enum"]):
            return _refused("anthropic", path, "enum values must be strings, numbers, booleans or null")
        ref = node.get("$ref")
        if isinstance(ref, str) and not ref.startswith("#"):
            return _refused("anthropic", path, f"only local references are supported, not {ref!r}")
    cycle = _recursive_ref(schema)
    if cycle is not None:
        return _refused("anthropic", cycle, "recursive schemas are not supported")
    return None


def gemini_schema_problem(schema: Mapping[str, Any]) -> str | None:
    """Why Gemini's `response_json_schema` cannot take `schema`, or None."""
    for path, node in _walk(schema, "$"):
        for key in node:
            if key not in GEMINI_KEYWORDS:
                return _refused("gemini", path, f"keyword {key!r} is not supported")
        if "$ref" in node and any(not k.startswith("$") for k in node):
            return _refused("gemini", path, "a $ref may stand only beside keywords that start with $")
    return None


def _refused(provider: str, path: str, why: str) -> str:
    return f"response schema at {path}: {why} by {provider}'s structured output"


def _is_object(node: Mapping[str, Any]) -> bool:
    kind = node.get("type")
    return kind == "object" or (isinstance(kind, list) and "object" in kind) or "properties" in node


def _walk(node: Any, path: str) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """Every sub-schema object with its JSON path (`true`/`false` schemas have nothing to check)."""
    if not isinstance(node, Mapping):
        return
    yield path, node
    for key in _SCHEMA_MAPS:
        children = node.get(key)
        if isinstance(children, Mapping):
            for name, child in children.items():
                yield from _walk(child, f"{path}.{key}.{name}")
    for key in _SCHEMA_LISTS:
        children = node.get(key)
        if isinstance(children, list):
            for i, child in enumerate(children):
                yield from _walk(child, f"{path}.{key}[{i}]")
    for key in _SCHEMA_ONE:
        if key in node:
            yield from _walk(node[key], f"{path}.{key}")


def _recursive_ref(schema: Mapping[str, Any]) -> str | None:
    """The path of a local `$ref` that leads back to itself, if any."""
    defs: dict[str, Any] = {}
    for key in ("$defs", "definitions"):
        for name, child in (schema.get(key) or {}).items():
            defs[f"#/{key}/{name}"] = child

    def refs(node: Any) -> Iterator[str]:
        for _, sub in _walk(node, "$"):
            ref = sub.get("$ref")
            if isinstance(ref, str):
                yield ref

    def visit(ref: str, seen: tuple[str, ...]) -> str | None:
        if ref == "#" or ref in seen:
            return ref
        target = defs.get(ref)
        if target is None:
            return None
        return next((found for inner in refs(target) if (found := visit(inner, (*seen, ref)))), None)

    return next((found for ref in refs(schema) if (found := visit(ref, ()))), None)
