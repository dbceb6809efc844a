"""The tools a batched agent may use: names, input schemas, descriptions, and the `tools` input's parser.

The names and input fields are a public contract: a workflow author writes them in `tools`, and the
model sees them exactly as given here. Client tools run on the runner between batch rounds
(`batch_arbiter.agents`); server tools run inside a turn at the provider, which the adapters map to
their own tool types. Pure data and parsing: nothing here touches a file.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Literal

from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match

from batch_arbiter.errors import InputError

__all__ = [
    "AGENT_CLI_TOOLS",
    "BLOCKING_CLI_TOOLS",
    "CLIENT_TOOLS",
    "MAX_FILE_BYTES",
    "OUTPUT_CAP_BYTES",
    "SERVER_TOOLS",
    "TOOLS",
    "CliTools",
    "ToolResult",
    "ToolSpec",
    "argument_error",
    "cli_tool_names",
    "client_tools",
    "from_cli_tools",
    "parse_tools",
    "server_tools",
    "tools_from_request",
]

ToolKind = Literal["client", "server"]

# What one client-tool call may hand back to the model; more is cut with a note saying so.
OUTPUT_CAP_BYTES = 100_000
# Files above this are not read (nor searched): a tool call must not pull gigabytes into memory.
MAX_FILE_BYTES = 10_000_000


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """One tool: its public name, where it runs, and (client tools) what the model is told and may send."""

    name: str
    kind: ToolKind
    description: str = ""
    # A JSON Schema (draft 2020-12 subset: object of string/integer properties); None for server tools.
    input_schema: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class ToolResult:
    """What a client-tool call gives the model: the text, and whether it is an error (`is_error: true`)."""

    text: str
    is_error: bool = False


def _schema(properties: dict[str, dict[str, Any]], required: list[str]) -> Mapping[str, Any]:
    return MappingProxyType(
        {"type": "object", "properties": properties, "required": required, "additionalProperties": False}
    )


_PATH_RULES = (
    "Paths are relative to the workspace root and use `/`; absolute paths, `..`, anything under `.git/`, "
    "links that lead outside the workspace and files that are not text are refused."
)
_CAP = f"Output is capped at {OUTPUT_CAP_BYTES // 1000} KB a call, with a note when it was cut."

READ = ToolSpec(
    name="read",
    kind="client",
    description=(
        "Read a text file in the workspace. Returns the file's text; with `offset` and `limit`, only lines "
        "`offset` to `offset + limit - 1` (lines count from 1). " + _PATH_RULES + " " + _CAP
    ),
    input_schema=_schema(
        {
            "path": {"type": "string", "description": "Workspace-relative path of the file, e.g. `src/app.py`."},
            "offset": {"type": "integer", "minimum": 1, "description": "First line to return (1-based; default 1)."},
            "limit": {"type": "integer", "minimum": 1, "description": "How many lines to return (default: all)."},
        },
        ["path"],
    ),
)
GLOB = ToolSpec(
    name="glob",
    kind="client",
    description=(
        "List the workspace files whose workspace-relative path matches a glob pattern, one a line, sorted. "
        "`*` and `?` match within one path segment, `**` matches any number of segments: `*.md` matches "
        "top-level Markdown files only, `**/*.md` every one. `.git/` is never listed. " + _CAP
    ),
    input_schema=_schema(
        {"pattern": {"type": "string", "description": "Glob pattern relative to the workspace, e.g. `src/**/*.py`."}},
        ["pattern"],
    ),
)
GREP = ToolSpec(
    name="grep",
    kind="client",
    description=(
        "Search the workspace's text files for lines matching a regular expression (Python `re` syntax). "
        "Returns `path:line:text` for each matching line, files in sorted order. `glob` limits the search to "
        "the files it matches (as in the glob tool; default every file). " + _CAP
    ),
    input_schema=_schema(
        {
            "pattern": {"type": "string", "description": "Regular expression to search for, e.g. `def \\w+_test`."},
            "glob": {"type": "string", "description": "Only search files matching this glob, e.g. `**/*.py`."},
        },
        ["pattern"],
    ),
)

CLIENT_TOOLS: Mapping[str, ToolSpec] = MappingProxyType({t.name: t for t in (READ, GLOB, GREP)})
SERVER_TOOLS: Mapping[str, ToolSpec] = MappingProxyType(
    {n: ToolSpec(name=n, kind="server") for n in ("web-search", "web-fetch", "code-execution")}
)
# Every tool, in the order they are listed to users and sent to the model.
TOOLS: Mapping[str, ToolSpec] = MappingProxyType({**CLIENT_TOOLS, **SERVER_TOOLS})

_SEPARATORS = re.compile(r"[,\n]")


def _known() -> str:
    return ", ".join(TOOLS)


def _check_names(names: list[str], where: str, input: str | None) -> tuple[str, ...]:
    unknown = [n for n in names if n not in TOOLS]
    if unknown:
        raise InputError(
            f"{where + ': ' if where else ''}unknown tool{'s' if len(unknown) > 1 else ''} "
            f"{', '.join(repr(n) for n in unknown)}; known tools: {_known()}",
            input=input,
        )
    # Duplicates collapse, first mention wins, so the tools sent are the same whatever the spelling.
    return tuple(dict.fromkeys(names))


def parse_tools(text: str | None, where: str = "input `tools`") -> tuple[str, ...]:
    """The tool names of a `tools` value: one a line or comma-separated, blank entries ignored, empty = none.

    Names are matched exactly (lower case, as `TOOLS` spells them); an unknown one is an `InputError`
    that lists the known ones, its message starting with `where` (nothing when empty).
    """
    if not text:
        return ()
    names = [part.strip() for part in _SEPARATORS.split(text)]
    return _check_names([n for n in names if n], where, "tools")


def tools_from_request(value: object, where: str) -> tuple[str, ...]:
    """The `tools` of a request object: a list of names or one string as the input takes it.

    `where` names the request in the error (file and line). Anything else, or an unknown name, is an
    `InputError`.
    """
    if isinstance(value, str):
        names = [part.strip() for part in _SEPARATORS.split(value)]
        return _check_names([n for n in names if n], where, None)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return _check_names([v.strip() for v in value if v.strip()], where, None)
    raise InputError(f"{where}: `tools` must be a list of tool names (known tools: {_known()})")


def client_tools(names: tuple[str, ...]) -> tuple[ToolSpec, ...]:
    """The client tools among `names`, in the catalogue's order: what the model gets declared as functions."""
    return tuple(spec for name, spec in CLIENT_TOOLS.items() if name in names)


def server_tools(names: tuple[str, ...]) -> tuple[ToolSpec, ...]:
    """The server tools among `names`, in the catalogue's order: what the adapters map to provider types."""
    return tuple(spec for name, spec in SERVER_TOOLS.items() if name in names)


@functools.cache
def _validator(name: str) -> Draft202012Validator:
    schema = TOOLS[name].input_schema
    assert schema is not None
    return Draft202012Validator(json.loads(json.dumps(dict(schema), default=dict)))


def argument_error(spec: ToolSpec, args: object) -> str | None:
    """Why `args` does not fit `spec.input_schema`, or None when it does.

    Validated with `jsonschema` against the very schema the model is sent, so the check cannot drift
    from it; the first error is worded for the model (which field, and what it must be).
    """
    schema = spec.input_schema
    if schema is None:
        return f"`{spec.name}` is run by the provider, not by the action"
    error = best_match(_validator(spec.name).iter_errors(args))
    if error is None:
        return None
    field = ".".join(str(p) for p in error.absolute_path)
    properties: Mapping[str, Any] = schema["properties"]
    if not field and error.validator == "type":
        return f"`{spec.name}` takes a JSON object of arguments, got {type(args).__name__}"
    if error.validator == "required":
        missing = [n for n in schema["required"] if isinstance(args, Mapping) and n not in args]
        return f"`{spec.name}` needs {', '.join(f'`{m}`' for m in missing)}"
    if error.validator == "additionalProperties" and isinstance(args, Mapping):
        extra = sorted(str(k) for k in args if k not in properties)
        return (
            f"`{spec.name}` takes no {', '.join(f'`{e}`' for e in extra)} "
            f"(its fields: {', '.join(f'`{p}`' for p in properties)})"
        )
    if error.validator == "type":
        wanted = error.validator_value
        return f"`{spec.name}`: `{field}` must be a{'n' if wanted == 'integer' else ''} {wanted}"
    if error.validator == "minimum":
        return f"`{spec.name}`: `{field}` must be at least {error.validator_value}"
    return f"`{spec.name}`: {f'`{field}`: ' if field else ''}{error.message}"


# -- what agent CLIs call their tools ------------------------------------------------------------------

# Read-only tools of Claude Code and the Gemini CLI, and the catalogue tool that does their job in a
# batched agent: what the audit reads off `--allowed-tools`. Keys are lower case.
AGENT_CLI_TOOLS: Mapping[str, str] = MappingProxyType(
    {
        # Claude Code
        "read": "read",
        "notebookread": "read",
        "glob": "glob",
        "ls": "glob",
        "grep": "grep",
        "websearch": "web-search",
        "webfetch": "web-fetch",
        # Gemini CLI
        "read_file": "read",
        "read_many_files": "read",
        "list_directory": "glob",
        "search_file_content": "grep",
        "google_web_search": "web-search",
        "web_fetch": "web-fetch",
    }
)
# Tools that change the workspace or run programs on the runner: no batched agent gets them.
BLOCKING_CLI_TOOLS: Mapping[str, str] = MappingProxyType(
    {
        "bash": "runs shell commands",
        "bashoutput": "runs shell commands",
        "killshell": "runs shell commands",
        "run_shell_command": "runs shell commands",
        "edit": "edits files",
        "multiedit": "edits files",
        "notebookedit": "edits files",
        "replace": "edits files",
        "write": "writes files",
        "write_file": "writes files",
        "task": "starts sub-agents",
        "save_memory": "writes memory files",
    }
)
# Bookkeeping inside an agent session that touches nothing: not needed, not a reason to reshape.
_HARMLESS_CLI_TOOLS = frozenset({"todowrite", "todoread", "exitplanmode"})
_CLI_TOOL = re.compile(r"[A-Za-z_][\w.-]*(?:\([^)]*\)?)?")


@dataclass(frozen=True, slots=True)
class CliTools:
    """An agent step's allowed tools read against the catalogue: the catalogue tools they become, and the
    ones no batched agent can have, each with why (`Bash` -> "runs shell commands")."""

    tools: tuple[str, ...]
    blockers: tuple[tuple[str, str], ...]


def cli_tool_names(text: str) -> list[str]:
    """The tool names of an `--allowed-tools` value (`Read,Grep`, `"Bash(git diff:*)" Edit`): names only,
    without their `(...)` patterns."""
    return [m.group(0).split("(", 1)[0] for m in _CLI_TOOL.finditer(text)]


def from_cli_tools(names: Iterable[str]) -> CliTools:
    """What a batched agent can do of an agent CLI's allowed tools (Claude Code or Gemini CLI names)."""
    found: dict[str, None] = {}
    blockers: dict[str, str] = {}
    for name in names:
        key = name.strip().lower()
        if not key or key in _HARMLESS_CLI_TOOLS:
            continue
        if key in AGENT_CLI_TOOLS:
            found[AGENT_CLI_TOOLS[key]] = None
        elif key in BLOCKING_CLI_TOOLS:
            blockers.setdefault(name, BLOCKING_CLI_TOOLS[key])
        elif key.startswith("mcp__"):
            blockers.setdefault(name, "calls an MCP server")
        else:
            blockers.setdefault(name, "is not a tool a batched agent has")
    return CliTools(tuple(t for t in TOOLS if t in found), tuple(blockers.items()))
