"""Structured results: a response schema read and checked before any call, and every answer validated against it."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from batch_arbiter.errors import InputError

# jsonschema is imported where a schema is used (~150 ms): a run without one does not pay for it at start-up.

# A schema file is a few KB; anything near this is a mistake (a results file given by accident).
MAX_SCHEMA_BYTES = 1024 * 1024
# A validation message quotes the offending value; past this it is cut (the answer is on the line anyway).
MAX_MESSAGE_CHARS = 300

# What a provider says of a schema it cannot take: None, or the reason (with the place in the schema).
SchemaRules = Callable[[Mapping[str, Any]], str | None]


class SchemaError(InputError):
    """A response schema that cannot be used: unreadable, not JSON Schema, or one the provider refuses."""


@dataclass(frozen=True, slots=True)
class Checked:
    """An answer held to its schema: `value` when it parsed and validated, else `error` (path and reason)."""

    value: Any = None
    error: str | None = None

    @property
    def valid(self) -> bool:
        """Whether the answer parsed and conformed."""
        return self.error is None


def read_schema(value: str | Mapping[str, Any], workspace: Path, where: str) -> dict[str, Any]:
    """A schema given inline (an object) or as a workspace-relative path to a JSON file; `where` names the
    input or request it came from, for the error message. It is not yet checked: see `check_schema`."""
    if isinstance(value, Mapping):
        return dict(value)
    root = workspace.resolve()
    path = (root / value).resolve()
    if not path.is_relative_to(root):
        raise SchemaError(f"{where}: response schema {value!r} is outside the workspace")
    if not path.is_file():
        raise SchemaError(f"{where}: response schema file not found: {value}")
    if path.stat().st_size > MAX_SCHEMA_BYTES:
        raise SchemaError(f"{where}: response schema {value} is over {MAX_SCHEMA_BYTES:,} bytes")
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except (OSError, UnicodeDecodeError) as exc:
        raise SchemaError(f"{where}: cannot read response schema {value}: {exc}") from None
    except json.JSONDecodeError as exc:
        raise SchemaError(
            f"{where}: response schema {value} is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
        ) from None
    except RecursionError:
        raise SchemaError(f"{where}: response schema {value} is nested too deeply") from None
    if not isinstance(data, dict):
        raise SchemaError(f"{where}: response schema {value} must be a JSON object")
    return data


def check_schema(schema: Mapping[str, Any], where: str, rules: SchemaRules | None = None) -> None:
    """Refuse a schema that is not valid JSON Schema (for the draft its `$schema` names, 2020-12 when it
    names none), or that the run's provider cannot take (`rules`)."""
    import jsonschema
    import jsonschema.exceptions
    import jsonschema.validators

    dialect = schema.get("$schema")
    known = isinstance(dialect, str) and jsonschema.validators.validator_for(schema, default=None) is not None
    if dialect is not None and not known:
        raise SchemaError(f"{where}: names an unknown $schema {dialect!r}")
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    try:
        cls.check_schema(schema)
    except jsonschema.exceptions.SchemaError as exc:
        raise SchemaError(f"{where}: not valid JSON Schema: {_describe(exc)}") from None
    except RecursionError:
        raise SchemaError(f"{where}: nested too deeply") from None
    try:
        dangling = _dangling_ref(schema, schema)
        impossible = _impossible_required(schema, "$")
    except RecursionError:
        raise SchemaError(f"{where}: nested too deeply") from None
    if impossible is not None:
        raise SchemaError(f"{where}: {impossible}")
    if dangling is not None:
        raise SchemaError(f"{where}: $ref {dangling!r} points to nothing in the schema")
    if rules is not None:
        try:
            problem = rules(schema)
        except RecursionError:
            raise SchemaError(f"{where}: nested too deeply") from None
        if problem is not None:
            raise SchemaError(f"{where}: {problem}")


class Validators:
    """Compiled validators, one per schema object: 100,000 answers to one schema compile it once."""

    def __init__(self) -> None:
        self._compiled: dict[int, tuple[Mapping[str, Any], Any]] = {}

    def check(self, text: str | None, schema: Mapping[str, Any]) -> Checked:
        """Parse `text` as JSON and validate it; the error names where and why, as a next step would need."""
        import jsonschema.exceptions
        from referencing.exceptions import Unresolvable

        if text is None or not text.strip():
            return Checked(error="the answer is empty, not JSON")
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            return Checked(error=f"the answer is not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}")
        except RecursionError:
            return Checked(error="the answer is nested too deeply to read")
        try:
            error = jsonschema.exceptions.best_match(self._validator(schema).iter_errors(value))
        except (RecursionError, Unresolvable) as exc:
            return Checked(error=f"the answer could not be validated: {type(exc).__name__}")
        if error is not None:
            return Checked(error=f"the answer does not match the schema: {_describe(error)}")
        return Checked(value=value)

    def _validator(self, schema: Mapping[str, Any]) -> Any:
        import jsonschema.validators

        # Keyed by identity and holding the schema, so the id cannot be reused by another object meanwhile.
        found = self._compiled.get(id(schema))
        if found is None:
            cls = jsonschema.validators.validator_for(schema, default=jsonschema.validators.Draft202012Validator)
            found = self._compiled[id(schema)] = (schema, cls(schema, format_checker=cls.FORMAT_CHECKER))
        return found[1]


# Keywords whose values are data, not schemas: a "$ref" key inside them is not a reference.
_DATA_KEYWORDS = frozenset({"enum", "const", "default", "examples"})


def _dangling_ref(node: Any, root: Mapping[str, Any]) -> str | None:
    """The first `$ref` that does not resolve inside the schema: no answer could be validated against it."""
    if isinstance(node, list):
        return next((found for item in node if (found := _dangling_ref(item, root)) is not None), None)
    if not isinstance(node, Mapping):
        return None
    ref = node.get("$ref")
    if isinstance(ref, str) and not _resolves(ref, root):
        return ref
    children = (v for k, v in node.items() if k not in _DATA_KEYWORDS)
    return next((found for child in children if (found := _dangling_ref(child, root)) is not None), None)


def _impossible_required(node: Any, path: str) -> str | None:
    """An object that requires a property it does not allow: no answer could ever match (a typo, usually)."""
    if isinstance(node, list):
        return next((f for i, item in enumerate(node) if (f := _impossible_required(item, f"{path}[{i}]"))), None)
    if not isinstance(node, Mapping):
        return None
    props = node.get("properties")
    required = node.get("required")
    closed = node.get("additionalProperties") is False and "patternProperties" not in node
    if closed and isinstance(required, list):
        known = props if isinstance(props, Mapping) else {}
        missing = [name for name in required if isinstance(name, str) and name not in known]
        if missing:
            return (
                f"at {path}: required property {missing[0]!r} is not among its properties and additionalProperties "
                "is false, so no answer can match"
            )
    children = ((k, v) for k, v in node.items() if k not in _DATA_KEYWORDS)
    return next((f for k, v in children if (f := _impossible_required(v, f"{path}.{k}"))), None)


def _resolves(ref: str, root: Mapping[str, Any]) -> bool:
    if ref == "#":
        return True
    if ref.startswith("#/"):
        target: Any = root
        for part in ref[2:].split("/"):
            part = part.replace("~1", "/").replace("~0", "~")
            if isinstance(target, Mapping) and part in target:
                target = target[part]
            elif isinstance(target, list) and part.isdigit() and int(part) < len(target):
                target = target[int(part)]
            else:
                return False
        return True
    if ref.startswith("#"):
        return ref[1:] in _anchors(root)
    return False


def _anchors(node: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(node, Mapping):
        if isinstance(node.get("$anchor"), str):
            found.add(node["$anchor"])
        for key, child in node.items():
            if key not in _DATA_KEYWORDS:
                found |= _anchors(child)
    elif isinstance(node, list):
        for child in node:
            found |= _anchors(child)
    return found


def _describe(error: Any) -> str:
    """`at $.ideas[0].effort: 'huge' is not one of ['S', 'M', 'L']`: the place, then the reason (cut short:
    jsonschema quotes the offending value, which may be the whole answer)."""
    message = error.message if len(error.message) <= MAX_MESSAGE_CHARS else error.message[:MAX_MESSAGE_CHARS] + "…"
    return f"at {error.json_path}: {message}"
