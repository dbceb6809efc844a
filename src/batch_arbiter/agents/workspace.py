"""The client tools (`read`, `glob`, `grep`) run for a model, read-only and confined to the workspace.

A model's tool call is untrusted input. Every path is taken relative to the workspace root and checked
after symlinks are resolved: nothing outside the root, nothing under `.git/`, no file that is not
regular text is ever opened, and no directory outside the root is ever listed. Every failure,
refusal included, is a `ToolResult` with `is_error` set for the model to read, never an exception.
"""

from __future__ import annotations

import functools
import os
import re
import stat
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path, PurePosixPath

import regex

from batch_arbiter.core.tools import (
    CLIENT_TOOLS,
    MAX_FILE_BYTES,
    OUTPUT_CAP_BYTES,
    ToolResult,
    argument_error,
)

__all__ = ["SEARCH_SECONDS", "Workspace", "glob_regex"]

# A grep line longer than this is cut: one minified line must not fill the whole answer.
_GREP_LINE_CHARS = 2_000
# Regular expressions and globs a model sends are bounded too.
_PATTERN_CHARS = 1_000
# A glob or grep call's time, matching included: a pattern that backtracks without end (`(a|aa)+$`, or
# a glob like `*a*a*a*a*a*a*b`) must not hold the run, so matching uses `regex`, whose matches take a
# timeout, where `re` cannot be stopped.
SEARCH_SECONDS = 10.0
_MAGIC = re.compile(r"[*?\[]")


class _Refused(Exception):
    """A call the workspace will not serve; its message is what the model reads."""


def _error(message: str) -> ToolResult:
    return ToolResult(message, is_error=True)


def _segment_regex(segment: str) -> str:
    """One path segment of a glob as a regex: `*` and `?` never cross a `/`."""
    out: list[str] = []
    i = 0
    while i < len(segment):
        c = segment[i]
        if c == "*":
            while i + 1 < len(segment) and segment[i + 1] == "*":
                i += 1
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            j = i + 1
            if j < len(segment) and segment[j] == "!":
                j += 1
            if j < len(segment) and segment[j] == "]":
                j += 1
            close = segment.find("]", j)
            if close < 0:
                out.append(regex.escape(c))
            else:
                body = segment[i + 1 : close]
                negate = body.startswith("!")
                if negate:
                    body = body[1:]
                # Escape everything but range dashes, so `[[]` or `[a&&b]` mean their characters and
                # never a nested set.
                inner = "".join(ch if ch == "-" else regex.escape(ch) for ch in body)
                out.append(f"(?!/)[{'^' if negate else ''}{inner}]")
                i = close
        else:
            out.append(regex.escape(c))
        i += 1
    return "".join(out)


def _glob_parts(pattern: str) -> list[str]:
    if not pattern.strip():
        raise _Refused("the pattern is empty")
    if len(pattern) > _PATTERN_CHARS:
        raise _Refused(f"the pattern is longer than {_PATTERN_CHARS} characters")
    if "\0" in pattern:
        raise _Refused("the pattern contains a NUL character")
    if pattern.startswith("/"):
        raise _Refused(f"`{pattern}` is absolute; patterns are relative to the workspace root")
    parts = [p for p in pattern.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise _Refused(f"`{pattern}` leaves the workspace (`..`)")
    if ".git" in parts:
        raise _Refused("`.git/` is not readable")
    if not parts:
        raise _Refused(f"`{pattern}` matches no file")
    return parts


def glob_regex(pattern: str) -> regex.Pattern[str]:
    """A workspace-relative glob as a regex over `/`-separated relative paths (pathlib semantics).

    `*`, `?` and `[...]` match within one segment; a `**` segment matches any number of segments, none
    included. Raises ValueError, with a message for the model, on a pattern that is refused or invalid.
    """
    try:
        parts = _glob_parts(pattern)
    except _Refused as refused:
        raise ValueError(str(refused)) from None
    rx = ""
    for index, part in enumerate(parts):
        last = index == len(parts) - 1
        if part == "**":
            rx += ".+" if last else "(?:[^/]+/)*"
        else:
            rx += _segment_regex(part) + ("" if last else "/")
    try:
        return regex.compile(rx, regex.DOTALL)
    except regex.error as exc:
        raise ValueError(f"`{pattern}` is not a valid glob ({exc})") from None


def _lines(text: str) -> list[str]:
    # Split at newlines only: a form feed or U+2028 inside a line must not shift the line numbers
    # that `read` and `grep` give.
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line.removesuffix("\r") for line in lines]


def _within(deadline: float, match: Callable[..., object], where: str) -> bool:
    """Whether `match(timeout=seconds left)` matched, refused once the call's time is spent (at `where`)."""
    left = deadline - time.monotonic()
    try:
        if left <= 0:
            raise TimeoutError
        return match(timeout=left) is not None
    except TimeoutError:
        raise _Refused(f"the search ran out of time (at {where}): simplify the pattern or narrow the glob") from None


def _cut(text: str, limit: int) -> str:
    return text.encode("utf-8")[:limit].decode("utf-8", errors="ignore")


class Workspace:
    """The client tools over one directory tree: `call(name, args)` runs a tool call from a model.

    `root` is the workspace (the runner's checkout). `tools` limits which client tools may be called
    (the ones the conversation declared); None allows all of them. `search_seconds` bounds one glob or grep call.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        tools: tuple[str, ...] | None = None,
        search_seconds: float = SEARCH_SECONDS,
    ) -> None:
        self.root = Path(root).resolve(strict=True)
        self.search_seconds = search_seconds
        if not self.root.is_dir():
            raise NotADirectoryError(f"workspace root {root} is not a directory")
        self.tools = tuple(CLIENT_TOOLS) if tools is None else tuple(t for t in tools if t in CLIENT_TOOLS)

    def call(self, name: str, args: object) -> ToolResult:
        """Run one tool call: the tool's text, or an error result the model sees. Never raises."""
        spec = CLIENT_TOOLS.get(name)
        if spec is None or name not in self.tools:
            return _error(f"no tool `{name}` here; the tools are: {', '.join(self.tools) or 'none'}")
        problem = argument_error(spec, args)
        if problem is not None:
            return _error(problem)
        assert isinstance(args, Mapping)
        try:
            if name == "read":
                # JSON Schema counts 2.0 as an integer; slicing does not.
                limit = args.get("limit")
                return self._read(args["path"], int(args.get("offset", 1)), None if limit is None else int(limit))
            if name == "glob":
                return self._glob(args["pattern"])
            return self._grep(args["pattern"], args.get("glob"))
        except _Refused as refused:
            return _error(str(refused))
        except Exception as exc:  # a tool call must never end the run
            # The type and errno text only: an OSError's message carries absolute paths.
            detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
            return _error(f"`{name}` failed: {detail}")

    # --- paths -------------------------------------------------------------------------------------

    def _inside(self, real: Path) -> str | None:
        """`real`'s workspace-relative path when it is inside the root and not under `.git/`, else None."""
        try:
            rel = real.relative_to(self.root)
        except ValueError:
            return None
        if ".git" in rel.parts:
            return None
        return rel.as_posix()

    def _resolve(self, path: str) -> Path:
        """The real path of a workspace-relative `path`, refused unless it stays inside the workspace."""
        if not path.strip():
            raise _Refused("the path is empty")
        if "\0" in path:
            raise _Refused("the path contains a NUL character")
        pure = PurePosixPath(path)
        if pure.is_absolute():
            raise _Refused(f"`{path}` is absolute; paths are relative to the workspace root")
        if ".." in pure.parts:
            raise _Refused(f"`{path}` leaves the workspace (`..`)")
        if ".git" in pure.parts:
            raise _Refused("`.git/` is not readable")
        try:
            real = (self.root / pure).resolve(strict=True)
        except FileNotFoundError:
            raise _Refused(f"`{path}` does not exist") from None
        except (OSError, RuntimeError):  # a symlink loop, a name too long
            raise _Refused(f"`{path}` cannot be resolved") from None
        rel = self._inside(real)
        if rel is None:
            # Never say where the link leads: the target is outside and none of the model's business.
            raise _Refused(f"`{path}` leads outside the workspace (or into `.git/`)")
        return real

    def _text(self, real: Path, shown: str) -> str:
        """A regular file's text; refused when it is big, not UTF-8 or has NUL bytes (not a text file)."""
        # O_NOFOLLOW: the path was resolved, so a link here now means the tree changed under us.
        # O_NONBLOCK: a FIFO must not hang the run (it is refused just below).
        fd = os.open(real, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        with os.fdopen(fd, "rb") as handle:
            info = os.fstat(handle.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise _Refused(f"`{shown}` is not a regular file")
            if info.st_size > MAX_FILE_BYTES:
                raise _Refused(f"`{shown}` is too large to read ({info.st_size} bytes; at most {MAX_FILE_BYTES})")
            data = handle.read(MAX_FILE_BYTES + 1)
        if b"\0" in data:
            raise _Refused(f"`{shown}` is not a text file (it has NUL bytes)")
        try:
            return data.decode("utf-8").removeprefix("\ufeff")
        except UnicodeDecodeError:
            raise _Refused(f"`{shown}` is not a text file (not UTF-8)") from None

    def _walk(self, start: Path, shown_start: str) -> Iterator[tuple[str, Path]]:
        """Every regular file at or below the real directory `start` (shown as `shown_start`, "" for the
        root) as (workspace-relative path, real path), sorted.

        A symlink, to a file or a directory, is followed only when its real path is inside the
        workspace and not under `.git/`; each real directory is entered once, so a link loop ends.
        """
        if self._inside(start) is None:
            return
        found: list[tuple[str, Path]] = []
        seen: set[Path] = set()
        stack: list[tuple[str, Path]] = [(shown_start, start)]
        while stack:
            shown, real = stack.pop()
            if real in seen:
                continue
            seen.add(real)
            try:
                with os.scandir(real) as listing:
                    entries = sorted(listing, key=lambda e: e.name)
            except OSError:
                continue
            for entry in entries:
                if entry.name == ".git":
                    continue
                rel = f"{shown}/{entry.name}" if shown else entry.name
                target = Path(entry.path)
                if entry.is_symlink():
                    try:
                        target = target.resolve(strict=True)
                    except (OSError, RuntimeError):
                        continue
                    if self._inside(target) is None:
                        continue
                try:
                    mode = target.stat().st_mode
                except OSError:
                    continue
                if stat.S_ISDIR(mode):
                    stack.append((rel, target))
                elif stat.S_ISREG(mode):
                    found.append((rel, target))
        found.sort()
        yield from found

    def _matching(self, pattern: str, deadline: float) -> Iterator[tuple[str, Path]]:
        """The files whose workspace-relative path matches the glob `pattern`, sorted; refused once the
        call's time (`deadline`, time.monotonic()) is spent."""
        try:
            rx = glob_regex(pattern)
        except ValueError as exc:
            raise _Refused(str(exc)) from None
        # Walk from the pattern's literal prefix (`src/` of `src/**/*.py`), not the whole workspace.
        parts = _glob_parts(pattern)
        prefix: list[str] = []
        for part in parts[:-1]:
            if _MAGIC.search(part):
                break
            prefix.append(part)
        start = self.root
        if prefix:
            try:
                start = self._resolve("/".join(prefix))
            except _Refused:
                return
            if not start.is_dir():
                return
        for rel, real in self._walk(start, "/".join(prefix)):
            if _within(deadline, functools.partial(rx.fullmatch, rel), f"`{pattern}` at {rel}"):
                yield rel, real

    # --- the tools ---------------------------------------------------------------------------------

    def _read(self, path: str, offset: int, limit: int | None) -> ToolResult:
        real = self._resolve(path)
        if real.is_dir():
            return _error(f"`{path}` is a directory; list it with glob, e.g. `{path.rstrip('/')}/*`")
        lines = _lines(self._text(real, path))
        if offset > max(len(lines), 1):
            return _error(f"`{path}` has {len(lines)} lines; offset {offset} is past the end")
        chosen = lines[offset - 1 : None if limit is None else offset - 1 + limit]
        out: list[str] = []
        size = 0
        for number, line in enumerate(chosen, start=offset):
            cost = len(line.encode("utf-8")) + 1
            if size + cost > OUTPUT_CAP_BYTES:
                if not out:  # one line alone over the cap: give what fits of it
                    out.append(_cut(line, OUTPUT_CAP_BYTES))
                    return ToolResult(
                        "\n".join(out)
                        + f"\n[output cut at {OUTPUT_CAP_BYTES // 1000} KB inside line {number} of {len(lines)}]"
                    )
                return ToolResult(
                    "\n".join(out) + f"\n[output cut at {OUTPUT_CAP_BYTES // 1000} KB after line {number - 1} "
                    f"of {len(lines)}; read on with offset={number}]"
                )
            out.append(line)
            size += cost
        return ToolResult("\n".join(out) + ("\n" if out else ""))

    def _listing(self, rows: Iterator[str], what: str, empty: str) -> ToolResult:
        out: list[str] = []
        size = 0
        for row in rows:
            cost = len(row.encode("utf-8")) + 1
            if size + cost > OUTPUT_CAP_BYTES:
                return ToolResult(
                    "\n".join(out) + f"\n[output cut at {OUTPUT_CAP_BYTES // 1000} KB after {len(out)} {what}; "
                    "narrow the pattern to see the rest]"
                )
            out.append(row)
            size += cost
        return ToolResult("\n".join(out) + "\n" if out else empty)

    def _glob(self, pattern: str) -> ToolResult:
        rows = (rel for rel, _ in self._matching(pattern, time.monotonic() + self.search_seconds))
        return self._listing(rows, "paths", f"(no file matches `{pattern}`)")

    def _grep(self, pattern: str, glob: str | None) -> ToolResult:
        if len(pattern) > _PATTERN_CHARS:
            return _error(f"the pattern is longer than {_PATTERN_CHARS} characters")
        try:
            rx = regex.compile(pattern)
        except (regex.error, OverflowError, RecursionError, ValueError) as exc:
            return _error(f"`{pattern}` is not a valid regular expression ({getattr(exc, 'msg', exc)})")
        deadline = time.monotonic() + self.search_seconds
        files = self._matching(glob if glob is not None else "**", deadline)

        def rows() -> Iterator[str]:
            for rel, real in files:
                try:
                    text = self._text(real, rel)
                except (_Refused, OSError):
                    continue  # binary, too big or unreadable: not a text file to search
                for number, line in enumerate(_lines(text), start=1):
                    if _within(deadline, functools.partial(rx.search, line), f"{rel}:{number}"):
                        if len(line) > _GREP_LINE_CHARS:
                            line = line[:_GREP_LINE_CHARS] + " [line cut]"
                        yield f"{rel}:{number}:{line}"

        return self._listing(rows(), "lines", "(no line matches)")
