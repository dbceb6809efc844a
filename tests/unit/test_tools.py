from __future__ import annotations

from typing import Any

import pytest

from batch_arbiter.core.tools import (
    CLIENT_TOOLS,
    SERVER_TOOLS,
    TOOLS,
    argument_error,
    cli_tool_names,
    client_tools,
    from_cli_tools,
    parse_tools,
    server_tools,
    tools_from_request,
)
from batch_arbiter.errors import InputError


def test_catalogue_is_the_public_contract() -> None:
    # The names and fields workflow authors rely on (issue: batched agents); changing one breaks them.
    assert tuple(TOOLS) == ("read", "glob", "grep", "web-search", "web-fetch", "code-execution")
    assert {n: t.kind for n, t in TOOLS.items()} == {
        "read": "client",
        "glob": "client",
        "grep": "client",
        "web-search": "server",
        "web-fetch": "server",
        "code-execution": "server",
    }
    fields = {
        n: (dict(t.input_schema["properties"]), list(t.input_schema["required"]))
        for n, t in CLIENT_TOOLS.items()
        if t.input_schema is not None
    }
    assert {n: (sorted(p), r) for n, (p, r) in fields.items()} == {
        "read": (["limit", "offset", "path"], ["path"]),
        "glob": (["pattern"], ["pattern"]),
        "grep": (["glob", "pattern"], ["pattern"]),
    }
    assert fields["read"][0]["offset"]["type"] == fields["read"][0]["limit"]["type"] == "integer"
    for spec in CLIENT_TOOLS.values():
        assert spec.input_schema is not None and spec.input_schema["additionalProperties"] is False
        assert spec.description and "100 KB" in spec.description
    assert all(t.input_schema is None for t in SERVER_TOOLS.values())


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("", ()),
        (None, ()),
        ("  \n \n", ()),
        ("read", ("read",)),
        ("read, grep,web-search", ("read", "grep", "web-search")),
        ("read\nglob\n\n  grep  \n", ("read", "glob", "grep")),
        ("read,\nweb-fetch, read", ("read", "web-fetch")),
    ],
)
def test_parse_tools(text: str | None, names: tuple[str, ...]) -> None:
    assert parse_tools(text) == names


@pytest.mark.parametrize("text", ["read, bash", "Read", "web_search", "edit\nwrite"])
def test_unknown_tools_are_bad_input_listing_the_known_ones(text: str) -> None:
    with pytest.raises(InputError) as info:
        parse_tools(text)
    message = str(info.value)
    assert "input `tools`" in message and info.value.input == "tools"
    assert "read, glob, grep, web-search, web-fetch, code-execution" in message


def test_request_tools_take_a_list_or_a_string() -> None:
    assert tools_from_request(["grep", "read"], "a.jsonl line 2") == ("grep", "read")
    assert tools_from_request("glob, web-search", "a.json") == ("glob", "web-search")
    assert tools_from_request([], "a.json") == ()
    for bad in (["read", 3], {"read": True}, 7, None):
        with pytest.raises(InputError, match=r"a\.json: `tools` must be a list"):
            tools_from_request(bad, "a.json")
    with pytest.raises(InputError, match=r"a\.jsonl line 2: unknown tool 'shell'; known tools: read"):
        tools_from_request(["read", "shell"], "a.jsonl line 2")


def test_client_and_server_split_keeps_catalogue_order() -> None:
    names = ("web-search", "grep", "read")
    assert [t.name for t in client_tools(names)] == ["read", "grep"]
    assert [t.name for t in server_tools(names)] == ["web-search"]


@pytest.mark.parametrize(
    ("tool", "args", "fragment"),
    [
        ("read", {}, "needs `path`"),
        ("read", {"path": 3}, "`path` must be a string"),
        ("read", {"path": "a", "offset": "2"}, "`offset` must be an integer"),
        ("read", {"path": "a", "offset": True}, "`offset` must be an integer"),
        ("read", {"path": "a", "offset": 1.5}, "`offset` must be an integer"),
        ("read", {"path": "a", "limit": 0}, "`limit` must be at least 1"),
        ("read", {"path": "a", "offset": -4}, "`offset` must be at least 1"),
        ("read", {"path": "a", "lines": 4}, "takes no `lines`"),
        ("read", ["a"], "JSON object"),
        ("read", "a", "JSON object"),
        ("glob", {"pattern": None}, "`pattern` must be a string"),
        ("grep", {"glob": "*.py"}, "needs `pattern`"),
        ("grep", {"pattern": "x", "glob": ["*.py"]}, "`glob` must be a string"),
        ("web-search", {}, "run by the provider"),
    ],
)
def test_argument_errors(tool: str, args: Any, fragment: str) -> None:
    problem = argument_error(TOOLS[tool], args)
    assert problem is not None and fragment in problem


@pytest.mark.parametrize(
    ("tool", "args"),
    [
        ("read", {"path": "a"}),
        ("read", {"path": "a", "offset": 1, "limit": 10}),
        ("glob", {"pattern": "**/*.py"}),
        ("grep", {"pattern": "x"}),
        ("grep", {"pattern": "x", "glob": "*.md"}),
    ],
)
def test_arguments_that_fit(tool: str, args: dict[str, Any]) -> None:
    assert argument_error(TOOLS[tool], args) is None


def test_arguments_are_checked_with_the_schema_the_model_is_sent() -> None:
    # jsonschema's reading: 2.0 is an integer, True is not; the workspace takes 2.0 as line 2.
    assert argument_error(TOOLS["read"], {"path": "a", "offset": 2.0}) is None
    assert argument_error(TOOLS["read"], {"path": "a", "limit": True}) == "`read`: `limit` must be an integer"


@pytest.mark.parametrize(
    ("allowed", "tools", "blockers"),
    [
        ("Read,Grep,WebSearch", ("read", "grep", "web-search"), ()),
        ("Read Glob LS WebFetch TodoWrite", ("read", "glob", "web-fetch"), ()),
        ('"Bash(git diff:*)" Read Edit', ("read",), (("Bash", "runs shell commands"), ("Edit", "edits files"))),
        ("read_file,search_file_content,google_web_search", ("read", "grep", "web-search"), ()),
        (
            "Write,mcp__github__get_issue",
            (),
            (("Write", "writes files"), ("mcp__github__get_issue", "calls an MCP server")),
        ),
        ("Frobnicate", (), (("Frobnicate", "is not a tool a batched agent has"),)),
    ],
)
def test_agent_cli_tools_map_to_the_catalogue(
    allowed: str, tools: tuple[str, ...], blockers: tuple[tuple[str, str], ...]
) -> None:
    found = from_cli_tools(cli_tool_names(allowed))
    assert (found.tools, found.blockers) == (tools, blockers)
