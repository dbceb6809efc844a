"""Writing the action's own files without following links planted in the workspace."""

from __future__ import annotations

import os
from pathlib import Path
from typing import IO


def open_own(path: Path, mode: str = "w") -> IO[str]:
    """Open `path` for writing (`w`) or appending (`a`) as a regular file of ours.

    The output directory lies in a checked-out workspace: a committed symlink named like one of our
    files would otherwise send model text (or a truncation) anywhere the runner can write.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | (os.O_APPEND if mode == "a" else os.O_TRUNC)
    try:
        fd = os.open(path, flags, 0o644)
    except OSError:
        if not path.is_symlink():
            raise
        path.unlink()  # removes the link itself, never its target
        fd = os.open(path, flags, 0o644)
    return os.fdopen(fd, mode, encoding="utf-8")


def write_own(path: Path, text: str) -> None:
    with open_own(path) as fh:
        fh.write(text)
