"""Prompt files to provider-neutral requests, each with a stable, API-valid `custom_id`."""

from __future__ import annotations

import glob
import hashlib
import json
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, model_validator
from pydantic_core import PydanticCustomError

from batch_arbiter.core.records import PromptRequest
from batch_arbiter.core.structured import SchemaError, SchemaRules, check_schema, read_schema
from batch_arbiter.core.tools import tools_from_request
from batch_arbiter.errors import InputError

CUSTOM_ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
# One request may carry at most this much text: far above any context window, well below the API's
# 32 MB request cap, so a runaway file fails here instead of as a rejected batch.
MAX_REQUEST_BYTES = 8 * 1024 * 1024
# A JSONL file holds a whole batch: Anthropic takes at most 256 MB per batch.
MAX_JSONL_BYTES = 256 * 1024 * 1024
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")


class PromptError(InputError):
    """A prompt file cannot become a request; the message names the file (and line)."""


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: Literal["user", "assistant"]
    content: str | list[Any]


class _RequestObject(BaseModel):
    """What a `.json` file (or a `.jsonl` line) may carry."""

    model_config = ConfigDict(extra="forbid")
    custom_id: str | None = Field(default=None, pattern=CUSTOM_ID_PATTERN.pattern)
    prompt: str | None = None
    messages: list[_Message] | None = None
    system: str | None = None
    max_tokens: int | None = Field(default=None, gt=0)
    # A workspace-relative path to a JSON Schema file, or the schema itself.
    response_schema: str | dict[str, Any] | None = None
    # Agent tool names (a list, or one string as the `tools` input takes them); checked in _from_object.
    tools: list[str] | str | None = None

    @model_validator(mode="after")
    def _one_of_prompt_or_messages(self) -> _RequestObject:
        if (self.prompt is None) == (self.messages is None):
            raise ValueError("give exactly one of `prompt` or `messages`")
        if self.prompt is not None and not self.prompt.strip():
            raise ValueError("`prompt` is empty")
        if self.messages is not None and (not self.messages or self.messages[-1].role != "user"):
            raise ValueError("`messages` must be non-empty and end with a user message")
        return self

    @model_validator(mode="after")
    def _content_blocks(self, info: ValidationInfo) -> _RequestObject:
        """Blocks the provider can take: one it cannot is bad input, not a rejected batch paid for in sync."""
        context = info.context if isinstance(info.context, dict) else {}
        for i, message in enumerate(self.messages or ()):
            problem = _block_problem(message.content, context.get("rules"))
            if problem is not None:
                loc, msg = problem
                raise PydanticCustomError(
                    "content_block", "{where}: {msg}", {"where": f"messages.{i}.content{loc}", "msg": msg}
                )
        return self


@dataclass(frozen=True, slots=True)
class ContentRules:
    """What the run's provider accepts in a message's content: `block_types` it takes (None: any typed
    block, its API checks the rest), and why its structured output would refuse a response schema."""

    provider: str
    block_types: frozenset[str] | None = None
    schema_rules: SchemaRules | None = None


class _Schemas:
    """Response schemas of a run: the `response-schema` input for every request, a request's own path or
    object instead. A file named by many requests is read and checked once, and shared."""

    def __init__(self, workspace: Path, default: Mapping[str, Any] | None, rules: ContentRules | None) -> None:
        self.workspace = workspace
        self.default = default
        self.rules = rules.schema_rules if rules is not None else None
        self._files: dict[str, Mapping[str, Any]] = {}

    def resolve(self, given: str | dict[str, Any] | None, where: str) -> Mapping[str, Any] | None:
        if given is None:
            return self.default
        try:
            if isinstance(given, str):
                if given not in self._files:
                    schema = read_schema(given, self.workspace, f"{where}: response_schema")
                    check_schema(schema, f"{where}: response_schema {given}", self.rules)
                    self._files[given] = schema
                return self._files[given]
            check_schema(given, f"{where}: response_schema", self.rules)
            return given
        except SchemaError as exc:
            raise PromptError(str(exc)) from None


def _block_problem(content: str | list[Any], rules: ContentRules | None) -> tuple[str, str] | None:
    """What is wrong with a message's content blocks, as (location below `content`, message), if anything."""
    if isinstance(content, str):
        return None
    if not content:
        return "", "a list of content blocks must not be empty"
    for j, block in enumerate(content):
        if not isinstance(block, dict) or not isinstance(block.get("type"), str):
            return f".{j}", "a content block must be an object with a string `type`"
        if block["type"] == "text" and not isinstance(block.get("text"), str):
            return f".{j}.text", "a text block's `text` must be a string"
        if rules is not None and rules.block_types is not None and block["type"] not in rules.block_types:
            kinds = ", ".join(sorted(rules.block_types))
            return f".{j}", f"{rules.provider} takes only {kinds} blocks, not {block['type']!r}"
    return None


def expand(patterns: Iterable[str], workspace: Path) -> list[Path]:
    """Paths or globs (relative to the workspace) to files inside it, sorted, each once."""
    root = workspace.resolve()
    found: dict[Path, None] = {}
    # Resolving every one of 250,000 paths is seconds of lstat calls; a directory is resolved once, and
    # a file itself only when it is a symlink.
    dirs: dict[str, Path] = {}
    for pattern in patterns:
        if Path(pattern).is_absolute() or ".." in Path(pattern).parts:
            raise PromptError(f"prompt-files entry {pattern!r} must be relative to the workspace, without `..`")
        if glob.has_magic(pattern):
            matches = sorted(glob.glob(pattern, root_dir=root, recursive=True))
            files = [m for m in matches if os.path.isfile(os.path.join(root, m))]
            if not files:
                raise PromptError(f"prompt-files pattern {pattern!r} matches no file in {root}")
        else:
            if not (root / pattern).is_file():
                raise PromptError(f"prompt file not found: {pattern}")
            files = [pattern]
        for name in files:
            parent, base = os.path.split(name)
            if parent not in dirs:
                dirs[parent] = (root / parent).resolve()
            resolved = dirs[parent] / base
            if os.path.islink(resolved):
                resolved = resolved.resolve()
            if not resolved.is_relative_to(root):
                raise PromptError(f"prompt file {name} points outside the workspace")
            found.setdefault(resolved, None)
    return list(found)


def load_requests(
    files: Iterable[Path],
    workspace: Path,
    system: str | None = None,
    rules: ContentRules | None = None,
    response_schema: Mapping[str, Any] | None = None,
    tools: tuple[str, ...] = (),
) -> list[PromptRequest]:
    """Every request of `files`, in order, with `system`, `response_schema` (already checked) and `tools`
    where a request names none; `rules` refuse content blocks and schemas the provider cannot take (None
    checks only their shape).

    Raises PromptError when two requests share a `custom_id` (results are keyed by it), or when a
    request names a tool the catalogue does not know.
    """
    schemas = _Schemas(workspace.resolve(), response_schema, rules)
    requests = list(_read_all(files, workspace.resolve(), system, rules, schemas, tools))
    seen: set[str] = set()
    for request in requests:
        if request.custom_id in seen:
            raise PromptError(f"{request.source}: custom_id {request.custom_id!r} is used twice")
        seen.add(request.custom_id)
    return requests


def derive_custom_id(source: str) -> str:
    """A stable id from the file's path (and line): readable, and hashed only when too long."""
    slug = _UNSAFE.sub("_", source).strip("_") or "prompt"
    if len(slug) <= 64:
        return slug
    digest = hashlib.sha256(source.encode("utf-8")).hexdigest()[:10]
    return f"{slug[: 64 - len(digest) - 1]}-{digest}"


def _read_all(
    files: Iterable[Path],
    root: Path,
    system: str | None,
    rules: ContentRules | None,
    schemas: _Schemas,
    tools: tuple[str, ...] = (),
) -> Iterator[PromptRequest]:
    derived: set[str] = set()
    for path in files:
        rel = path.relative_to(root).as_posix()
        # `.JSON` is a JSON file too: the suffix decides how a file is read, whatever its case.
        suffix = path.suffix.lower()
        limit = MAX_JSONL_BYTES if suffix == ".jsonl" else MAX_REQUEST_BYTES
        size = path.stat().st_size
        if size > limit:
            raise PromptError(f"prompt file {rel} is {size:,} bytes; the limit is {limit:,}")
        try:
            text = path.read_text(encoding="utf-8-sig")  # a byte-order mark is not prompt text
        except (OSError, UnicodeDecodeError) as exc:
            raise PromptError(f"cannot read prompt file {rel}: {exc}") from exc
        if suffix == ".json":
            yield _from_object(_parse_json(text, rel), rel, system, derived, rules, schemas, tools)
        elif suffix == ".jsonl":
            # Records end at \n only: U+2028 and the like may stand raw inside a JSON string.
            for lineno, line in enumerate(text.split("\n"), 1):
                if len(line) > MAX_REQUEST_BYTES:
                    raise PromptError(f"{rel}:{lineno}: the request is over {MAX_REQUEST_BYTES:,} bytes")
                if line.strip():
                    where = f"{rel}:{lineno}"
                    yield _from_object(_parse_json(line, where), where, system, derived, rules, schemas, tools)
        else:
            if not text.strip():
                raise PromptError(f"prompt file {rel} is empty")
            custom_id = _unique(derive_custom_id(rel), rel, derived)
            yield PromptRequest(custom_id, rel, text, system, response_schema=schemas.default, tools=tools)


def _parse_json(text: str, where: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise PromptError(f"{where}: not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
    except RecursionError:
        raise PromptError(f"{where}: nested too deeply to be a request") from None


def _from_object(
    data: Any,
    source: str,
    system: str | None,
    derived: set[str],
    rules: ContentRules | None = None,
    schemas: _Schemas | None = None,
    tools: tuple[str, ...] = (),
) -> PromptRequest:
    try:
        obj = _RequestObject.model_validate(data, context={"rules": rules})
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"])
        raise PromptError(f"{source}: {loc + ': ' if loc else ''}{err['msg']}") from None
    content: str | tuple[dict[str, Any], ...]
    if obj.messages is not None:
        content = tuple(m.model_dump() for m in obj.messages)
    else:
        assert obj.prompt is not None  # the validator admits exactly one of the two
        content = obj.prompt
    if obj.tools is not None:
        try:
            tools = tools_from_request(obj.tools, f"{source}: tools")
        except InputError as exc:
            raise PromptError(str(exc)) from None
    custom_id = obj.custom_id or _unique(derive_custom_id(source), source, derived)
    schema = schemas.resolve(obj.response_schema, source) if schemas is not None else None
    return PromptRequest(custom_id, source, content, obj.system or system, obj.max_tokens, schema, tools)


def _unique(candidate: str, source: str, derived: set[str]) -> str:
    # Different paths can slug alike (`a.b`, `a_b`); a hash of the source keeps both stable.
    if candidate in derived:
        digest = hashlib.sha256(source.encode("utf-8")).hexdigest()[:10]
        candidate = f"{candidate[: 64 - len(digest) - 1]}-{digest}"
    derived.add(candidate)
    return candidate
