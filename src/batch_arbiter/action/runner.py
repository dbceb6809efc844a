"""The GitHub runner's side of the contract: outputs, step summary, masks, annotations, groups.

Built on actions-toolkit's command formatting. Wrapped where it falls short: it has no step-summary
helper, it falls back to the deprecated `::set-output` when `GITHUB_OUTPUT` is unset, and it always
emits every annotation property (empty ones included).
"""

from __future__ import annotations

import os
import re
import secrets
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from actions_toolkit.command import Command
from actions_toolkit.file_command import prepare_key_value_message

# Terminal escape sequences (CSI and OSC), then any other control character but tab and newline.
_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[@-_]")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\x9b]")
# GitHub aborts a step summary upload above 1 MiB.
SUMMARY_LIMIT_BYTES = 1024 * 1024 - 4096


@dataclass
class Runner:
    """Talks to the runner (or to a terminal, when run locally). Build one with `from_env`."""

    output_path: Path | None = None
    summary_path: Path | None = None
    workspace: Path = field(default_factory=Path.cwd)
    workflow: str | None = None
    event_name: str | None = None
    run_id: str | None = None
    run_attempt: str | None = None
    stream: TextIO = field(default_factory=lambda: sys.stdout)
    _secrets: list[str] = field(default_factory=list)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, stream: TextIO | None = None) -> Runner:
        env = os.environ if env is None else env

        def path(name: str) -> Path | None:
            value = env.get(name)
            return Path(value) if value else None

        return cls(
            output_path=path("GITHUB_OUTPUT"),
            summary_path=path("GITHUB_STEP_SUMMARY"),
            workspace=path("GITHUB_WORKSPACE") or Path.cwd(),
            workflow=env.get("GITHUB_WORKFLOW") or None,
            event_name=env.get("GITHUB_EVENT_NAME") or None,
            run_id=env.get("GITHUB_RUN_ID") or None,
            run_attempt=env.get("GITHUB_RUN_ATTEMPT") or None,
            stream=stream or sys.stdout,
        )

    @property
    def run_key(self) -> str | None:
        """This workflow run and attempt, e.g. `4242.1`; None outside Actions."""
        return f"{self.run_id}.{self.run_attempt or 1}" if self.run_id else None

    @property
    def on_actions(self) -> bool:
        return self.output_path is not None

    # -- log lines -------------------------------------------------------------------------------

    def redact(self, text: str) -> str:
        """`text` with every masked secret replaced."""
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def _shown(self, text: str) -> str:
        """Redacted, and without the terminal escapes and control characters remote error text may
        carry: the log, annotations and the summary show text, never an escape sequence."""
        return _CONTROL.sub("", _ANSI.sub("", self.redact(text)))

    def log(self, message: str) -> None:
        self.stream.write(self._neutralise(self._shown(message)) + "\n")
        self.stream.flush()

    def mask(self, secret: str) -> None:
        if secret and secret not in self._secrets:
            self._secrets.append(secret)
            self._command("add-mask", {}, secret)

    def error(self, message: str, title: str | None = None) -> None:
        self._annotate("error", message, title)

    def warning(self, message: str, title: str | None = None) -> None:
        self._annotate("warning", message, title)

    def notice(self, message: str, title: str | None = None) -> None:
        self._annotate("notice", message, title)

    @contextmanager
    def group(self, name: str) -> Iterator[None]:
        self._command("group", {}, self.redact(name))
        try:
            yield
        finally:
            self._command("endgroup", {}, "")

    @contextmanager
    def untrusted(self) -> Iterator[None]:
        """Lines printed inside cannot run workflow commands (model output, remote error text)."""
        token = secrets.token_hex(16)
        self._command("stop-commands", {}, token)
        try:
            yield
        finally:
            self._command(token, {}, "")

    # -- files -----------------------------------------------------------------------------------

    def set_outputs(self, outputs: Mapping[str, str]) -> None:
        """Each value in a heredoc with a fresh random delimiter; locally, printed instead."""
        if self.output_path is None:
            with self.group("Outputs"):
                for name, value in outputs.items():
                    self.log(f"{name}={value}")
            return
        with self.output_path.open("a", encoding="utf-8", newline="") as fh:
            for name, value in outputs.items():
                if "\n" in name or "<<" in name:
                    raise ValueError(f"invalid output name {name!r}")
                fh.write(prepare_key_value_message(name, self.redact(value)) + "\n")

    def write_summary(self, markdown: str) -> None:
        """Append to the step summary (trimmed below GitHub's 1 MiB cap); locally, print it."""
        markdown = self._shown(markdown)
        if self.summary_path is None:
            self.stream.write(self._neutralise(markdown) + "\n")
            self.stream.flush()
            return
        data = markdown.encode("utf-8")
        if len(data) > SUMMARY_LIMIT_BYTES:
            note = "\n\n_Summary trimmed to GitHub's 1 MiB limit; see results.jsonl for everything._\n"
            data = data[: SUMMARY_LIMIT_BYTES - len(note)].decode("utf-8", "ignore").encode("utf-8")
            data += note.encode("utf-8")
        with self.summary_path.open("ab") as fh:
            fh.write(data + b"\n")

    def publish(self, markdown: str) -> None:
        """A report command's output: printed, and on Actions also the step summary."""
        self.stream.write(self._neutralise(self._shown(markdown)))
        self.stream.flush()
        if self.summary_path is not None:
            self.write_summary(markdown)

    # -- helpers ---------------------------------------------------------------------------------

    def _annotate(self, level: str, message: str, title: str | None) -> None:
        properties = {"title": self._shown(title)} if title else {}
        self._command(level, properties, self._shown(message))

    def _command(self, name: str, properties: dict[str, str], message: str) -> None:
        self.stream.write(str(Command(name, properties, message)) + "\n")
        self.stream.flush()

    @staticmethod
    def _neutralise(text: str) -> str:
        # Our own log text may quote remote strings; no line may carry a workflow command. The runner
        # ignores leading spaces and also reads the legacy `##[command]` form anywhere in a line, so both
        # markers are broken with an invisible zero-width space.
        return text.replace("::", ":\u200b:").replace("##[", "#\u200b#[")
