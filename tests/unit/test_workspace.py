from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from batch_arbiter.agents import ToolResult, Workspace
from batch_arbiter.agents.workspace import glob_regex
from batch_arbiter.core.tools import OUTPUT_CAP_BYTES

SECRET = "TOP-SECRET"

# Every file the process opens and every directory it lists while a test records: the proof that a
# tool call never read outside, whatever it answered. Audit hooks cannot be removed, so the hook
# stays installed and records only inside `touched()`.
_RECORDS: list[list[str]] = []


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if _RECORDS and event in ("open", "os.scandir", "os.listdir") and args and isinstance(args[0], str | Path):
        _RECORDS[-1].append(os.fspath(args[0]))


sys.addaudithook(_audit)


class touched:
    def __enter__(self) -> list[str]:
        _RECORDS.append([])
        return _RECORDS[-1]

    def __exit__(self, *exc: object) -> None:
        _RECORDS.pop()


def _tree(base: Path) -> Path:
    outside = base / "outside"
    (outside / "dir").mkdir(parents=True)
    (outside / "secret.txt").write_text(f"{SECRET} file\n")
    (outside / "dir" / "inner.txt").write_text(f"{SECRET} inner\n")
    ws = base / "ws"
    (ws / "src" / "sub").mkdir(parents=True)
    (ws / "docs").mkdir()
    (ws / ".git").mkdir()
    (ws / "README.md").write_text("# Project\n\nIt reads files.\n")
    (ws / "src" / "app.py").write_text("".join(f"line {n}\n" for n in range(1, 11)))
    (ws / "src" / "sub" / "deep.py").write_text("def deep():\n    return 'reads'\n")
    (ws / "docs" / "guide.md").write_text("Guide\r\nreads on CRLF\r\n")
    (ws / ".git" / "config").write_text(f"[core]\n{SECRET} git\n")
    (ws / "bin.dat").write_bytes(b"reads\x00\x01\x02")
    (ws / "latin.txt").write_bytes(b"reads caf\xe9\n")
    (ws / "link_out").symlink_to("../outside/secret.txt")
    (ws / "abs_link").symlink_to(outside / "secret.txt")
    (ws / "dir_out").symlink_to("../outside/dir")
    (ws / "link_in").symlink_to("src/app.py")
    (ws / "dir_in").symlink_to("src")
    (ws / "link_git").symlink_to(".git/config")
    (ws / "loop").symlink_to(".")
    (ws / "dangling").symlink_to("nowhere")
    os.mkfifo(ws / "fifo")
    return ws


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _tree(tmp_path_factory.mktemp("tools"))


def _outside(ws: Path, paths: list[str]) -> list[str]:
    root = ws.resolve()
    return [p for p in paths if not Path(p).resolve().is_relative_to(root) or ".git" in Path(p).parts]


def _check(ws: Path, name: str, args: Any) -> ToolResult:
    with touched() as paths:
        result = Workspace(ws).call(name, args)
    assert isinstance(result, ToolResult) and isinstance(result.text, str)
    assert SECRET not in result.text
    assert _outside(ws, paths) == [], f"{name}({args!r}) touched {paths}"
    return result


# --- read ------------------------------------------------------------------------------------------


def test_read_whole_file_and_a_window(ws: Path) -> None:
    assert _check(ws, "read", {"path": "README.md"}) == ToolResult("# Project\n\nIt reads files.\n")
    window = _check(ws, "read", {"path": "src/app.py", "offset": 3, "limit": 2})
    assert window == ToolResult("line 3\nline 4\n")
    assert _check(ws, "read", {"path": "src/app.py", "offset": 9, "limit": 50}).text == "line 9\nline 10\n"
    assert _check(ws, "read", {"path": "./src//sub/deep.py"}).text.startswith("def deep():")
    assert _check(ws, "read", {"path": "docs/guide.md"}).text == "Guide\nreads on CRLF\n"


def test_read_through_links_that_stay_inside(ws: Path) -> None:
    assert _check(ws, "read", {"path": "link_in", "limit": 1}).text == "line 1\n"
    assert _check(ws, "read", {"path": "dir_in/app.py", "offset": 10}).text == "line 10\n"
    assert _check(ws, "read", {"path": "loop/loop/README.md"}).text.startswith("# Project")


@pytest.mark.parametrize(
    ("path", "fragment"),
    [
        ("../../etc/passwd", "leaves the workspace"),
        ("../outside/secret.txt", "leaves the workspace"),
        ("src/../../outside/secret.txt", "leaves the workspace"),
        ("/etc/hostname", "is absolute"),
        ("/etc/passwd", "is absolute"),
        ("link_out", "leads outside the workspace"),
        ("abs_link", "leads outside the workspace"),
        ("dir_out/inner.txt", "leads outside the workspace"),
        (".git/config", "`.git/` is not readable"),
        ("src/../.git/config", "leaves the workspace"),
        ("link_git", "leads outside the workspace (or into `.git/`)"),
        ("bin.dat", "not a text file (it has NUL bytes)"),
        ("latin.txt", "not a text file (not UTF-8)"),
        ("fifo", "not a regular file"),
        ("missing.md", "does not exist"),
        ("dangling", "does not exist"),
        ("src", "is a directory"),
        ("", "the path is empty"),
        ("a\0b", "NUL"),
    ],
)
def test_read_refusals_are_error_results(ws: Path, path: str, fragment: str) -> None:
    result = _check(ws, "read", {"path": path})
    assert result.is_error and fragment in result.text
    assert str(ws.parent) not in result.text  # no absolute path, no link target, in what the model reads


def test_read_offset_past_the_end(ws: Path) -> None:
    result = _check(ws, "read", {"path": "src/app.py", "offset": 11})
    assert result.is_error and "has 10 lines" in result.text


def test_read_output_is_capped_with_a_note(tmp_path: Path) -> None:
    line = "x" * 99 + "\n"  # 100 bytes a line
    (tmp_path / "big.txt").write_text(line * 3_000)
    (tmp_path / "one.txt").write_text("y" * (OUTPUT_CAP_BYTES * 2))
    result = Workspace(tmp_path).call("read", {"path": "big.txt"})
    assert not result.is_error
    body, note = result.text.rsplit("\n", 1)
    assert len(body.encode()) <= OUTPUT_CAP_BYTES
    assert note == "[output cut at 100 KB after line 1000 of 3000; read on with offset=1001]"
    rest = Workspace(tmp_path).call("read", {"path": "big.txt", "offset": 1001, "limit": 5})
    assert rest.text == line * 5
    single = Workspace(tmp_path).call("read", {"path": "one.txt"})
    assert single.text.endswith("[output cut at 100 KB inside line 1 of 1]")
    assert len(single.text.encode()) < OUTPUT_CAP_BYTES + 100


# --- glob ------------------------------------------------------------------------------------------


def test_glob_sorted_relative_matches(ws: Path) -> None:
    assert _check(ws, "glob", {"pattern": "*.md"}).text == "README.md\n"
    assert _check(ws, "glob", {"pattern": "src/**/*.py"}).text == "src/app.py\nsrc/sub/deep.py\n"
    everywhere = _check(ws, "glob", {"pattern": "**/*.py"}).text.splitlines()
    # Links inside the workspace are followed once; the loop ends; nothing of `.git/` or outside.
    assert everywhere == sorted(everywhere)
    assert {"src/app.py", "src/sub/deep.py"} <= set(everywhere)
    assert _check(ws, "glob", {"pattern": "dir_in/*.py"}).text == "dir_in/app.py\n"
    assert _check(ws, "glob", {"pattern": "src/ap?.[pq]y"}).text == "src/app.py\n"
    assert _check(ws, "glob", {"pattern": "src/[!a]*"}).text == "(no file matches `src/[!a]*`)"


def test_glob_never_lists_outside_or_git(ws: Path) -> None:
    listing = _check(ws, "glob", {"pattern": "**"}).text.splitlines()
    assert "README.md" in listing and "link_in" in listing
    for name in ("link_out", "abs_link", "link_git", "dangling", "fifo"):
        assert name not in listing
    assert not [p for p in listing if p.startswith(("dir_out", ".git")) or "/.git" in p]
    assert _check(ws, "glob", {"pattern": "dir_out/*"}).text == "(no file matches `dir_out/*`)"


@pytest.mark.parametrize(
    ("pattern", "fragment"),
    [
        ("../*", "leaves the workspace"),
        ("src/../../*", "leaves the workspace"),
        ("/etc/*", "is absolute"),
        (".git/*", "`.git/` is not readable"),
        ("**/.git/config", "`.git/` is not readable"),
        ("", "empty"),
        ("[z-a]", "not a valid glob"),
    ],
)
def test_glob_refusals(ws: Path, pattern: str, fragment: str) -> None:
    result = _check(ws, "glob", {"pattern": pattern})
    assert result.is_error and fragment in result.text


def test_glob_regex_semantics() -> None:
    rx = glob_regex("a/**/b/*.py")
    assert rx.fullmatch("a/b/x.py") and rx.fullmatch("a/1/2/b/x.py")
    assert not rx.fullmatch("a/b/c/x.py") and not rx.fullmatch("ab/b/x.py")
    assert glob_regex("*").fullmatch(".hidden") and not glob_regex("*").fullmatch("a/b")
    assert glob_regex("[[]x").fullmatch("[x") and glob_regex("a[").fullmatch("a[")


# --- grep ------------------------------------------------------------------------------------------


def test_grep_lines_in_text_files_only(ws: Path) -> None:
    result = _check(ws, "grep", {"pattern": "reads"})
    lines = result.text.splitlines()
    assert "README.md:3:It reads files." in lines
    assert "docs/guide.md:2:reads on CRLF" in lines
    assert "src/sub/deep.py:2:    return 'reads'" in lines
    # bin.dat and latin.txt contain "reads" but are not text; .git and the links out are never read.
    assert not [line for line in lines if line.startswith(("bin.dat", "latin.txt", "link_out", "dir_out"))]
    paths = [line.split(":", 1)[0] for line in lines]
    assert paths == sorted(paths)


def test_grep_with_a_glob_filter(ws: Path) -> None:
    assert _check(ws, "grep", {"pattern": r"^line 1\d?$", "glob": "src/*.py"}).text == (
        "src/app.py:1:line 1\nsrc/app.py:10:line 10\n"
    )
    assert _check(ws, "grep", {"pattern": "nothing-like-this"}).text == "(no line matches)"
    assert _check(ws, "grep", {"pattern": SECRET, "glob": "**"}).text == "(no line matches)"


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        ({"pattern": "("}, "not a valid regular expression"),
        ({"pattern": "x", "glob": "../**"}, "leaves the workspace"),
        ({"pattern": "x", "glob": "/etc/*"}, "is absolute"),
        ({"pattern": "x" * 1001}, "longer than 1000"),
    ],
)
def test_grep_refusals(ws: Path, args: dict[str, str], fragment: str) -> None:
    result = _check(ws, "grep", args)
    assert result.is_error and fragment in result.text


def test_grep_output_is_capped(tmp_path: Path) -> None:
    (tmp_path / "many.txt").write_text("match\n" * 50_000)
    result = Workspace(tmp_path).call("grep", {"pattern": "match"})
    body, note = result.text.rsplit("\n", 1)
    assert len(body.encode()) <= OUTPUT_CAP_BYTES and body.startswith("many.txt:1:match\n")
    assert note.startswith("[output cut at 100 KB after ") and "narrow the pattern" in note


# --- calls that do not fit -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "args", "fragment"),
    [
        ("read", {}, "needs `path`"),
        ("read", {"path": 1}, "must be a string"),
        ("read", {"path": "README.md", "offset": 0}, "at least 1"),
        ("read", None, "JSON object"),
        ("glob", {"pattern": "*", "x": 1}, "takes no `x`"),
        ("bash", {"command": "cat /etc/passwd"}, "no tool `bash`"),
        ("web-search", {"query": "x"}, "no tool `web-search`"),
    ],
)
def test_bad_calls_are_error_results(ws: Path, name: str, args: Any, fragment: str) -> None:
    result = _check(ws, name, args)
    assert result.is_error and fragment in result.text


def test_only_the_declared_tools_run(ws: Path) -> None:
    result = Workspace(ws, tools=("read", "web-search")).call("grep", {"pattern": "x"})
    assert result.is_error and "the tools are: read" in result.text
    assert not Workspace(ws, tools=("read",)).call("read", {"path": "README.md"}).is_error


# --- properties: whatever the model sends, nothing outside is read ---------------------------------

_SEGMENTS = st.sampled_from(
    [
        "..",
        ".",
        "",
        "src",
        "sub",
        "app.py",
        "link_out",
        "abs_link",
        "dir_out",
        "dir_in",
        "link_git",
        "loop",
        ".git",
        "config",
        "outside",
        "secret.txt",
        "inner.txt",
        "etc",
        "passwd",
        "ws",
        "~",
        "*",
        "**",
        "?",
        "[a-z]*",
        "README.md",
        "fifo",
    ]
)
_PATHS = st.one_of(
    st.builds(
        lambda lead, parts: lead + "/".join(parts),
        st.sampled_from(["", "/", "./", "../", "//"]),
        st.lists(_SEGMENTS, min_size=1, max_size=6),
    ),
    st.text(max_size=30),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(path=_PATHS, offset=st.integers(min_value=1, max_value=20))
def test_no_read_path_reads_outside(ws: Path, path: str, offset: int) -> None:
    result = _check(ws, "read", {"path": path, "offset": offset})
    if not result.is_error:
        # What was read is a workspace file's text, reached without leaving the root.
        assert (ws / path).resolve().is_relative_to(ws.resolve())


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(pattern=_PATHS, regex=st.sampled_from(["", SECRET, "reads", "line", "."]), filtered=st.booleans())
def test_no_glob_or_grep_reads_outside(ws: Path, pattern: str, regex: str, filtered: bool) -> None:
    listing = _check(ws, "glob", {"pattern": pattern})
    if not listing.is_error and not listing.text.startswith("(no file"):
        for rel in listing.text.splitlines():
            if not rel.startswith("[output cut"):
                assert (ws / rel).resolve().is_relative_to(ws.resolve())
                assert ".git" not in Path(rel).parts
    args = {"pattern": regex, "glob": pattern} if filtered else {"pattern": regex}
    _check(ws, "grep", args)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    args=st.one_of(
        st.none(),
        st.integers(),
        st.text(),
        st.dictionaries(
            st.text(max_size=8), st.none() | st.integers() | st.text(max_size=8) | st.booleans(), max_size=4
        ),
    ),
    name=st.sampled_from(["read", "glob", "grep", "nope"]),
)
def test_any_arguments_give_a_result_never_an_exception(ws: Path, name: str, args: Any) -> None:
    _check(ws, name, args)


def test_the_audit_hook_sees_reads(ws: Path) -> None:
    # The properties above are only as good as the hook: it must see an outside read when one happens.
    with touched() as paths:
        (ws.parent / "outside" / "secret.txt").read_text()
    assert _outside(ws, paths) != []


def test_whole_numbers_sent_as_floats_are_line_numbers(ws: Path) -> None:
    assert _check(ws, "read", {"path": "src/app.py", "offset": 2.0, "limit": 1.0}) == ToolResult("line 2\n")


def test_a_pattern_that_backtracks_forever_is_stopped(tmp_path: Path) -> None:
    # Both take exponential (or high polynomial) time in `re`; each call ends within its budget instead.
    (tmp_path / "a.txt").write_text("a" * 60 + "b\n")
    (tmp_path / ("a" * 60 + "c")).write_text("x\n")
    started = time.monotonic()
    result = Workspace(tmp_path, search_seconds=0.5).call("grep", {"pattern": "(a|aa)+$"})
    assert time.monotonic() - started < 5
    assert result.is_error and "the search ran out of time (at a.txt:1)" in result.text
    # `re` never returns from this glob; `regex` answers at once, and would be stopped like grep if not.
    started = time.monotonic()
    result = Workspace(tmp_path, search_seconds=0.5).call("glob", {"pattern": "*a" * 15 + "*b"})
    assert time.monotonic() - started < 5
    assert result.text.startswith(("(no file matches", "the search ran out of time"))


def test_regex_syntax_is_re_s(ws: Path) -> None:
    assert _check(ws, "grep", {"pattern": r"(?i)^LINE 1\d$", "glob": "src/*.py"}).text == "src/app.py:10:line 10\n"
