"""Helpers shared by the end-to-end tests: run the action in-process as the runner sees it."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from batch_arbiter.cli import execute
from batch_arbiter.emulator import Emulator
from batch_arbiter.runner import Runner
from batch_arbiter.settings import BadInput, load_settings

API_KEY = "sk-ant-test-0123456789abcdef"


@dataclass
class Run:
    code: int
    outputs: dict[str, str]
    summary: str
    log: str
    results: list[dict[str, Any]]
    workspace: Path

    def by_id(self) -> dict[str, dict[str, Any]]:
        return {r["custom_id"]: r for r in self.results}


def parse_outputs(text: str) -> dict[str, str]:
    values: dict[str, str] = {}
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        if "<<" in lines[i]:
            name, delim = lines[i].split("<<", 1)
            end = lines.index(delim, i + 1)
            values[name] = "\n".join(lines[i + 1 : end])
            i = end + 1
        else:
            i += 1
    return values


def write_prompts(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def run_action(workspace: Path, emulator: Emulator | None, **inputs: Any) -> Run:
    """Run the action in-process as the runner would see it: outputs and summary files, a log stream."""
    files = workspace.parent / f"{workspace.name}-files"
    files.mkdir(exist_ok=True)
    (files / "output").write_text("")
    (files / "summary").write_text("")
    stream = io.StringIO()
    runner = Runner(
        output_path=files / "output",
        summary_path=files / "summary",
        workspace=workspace,
        workflow="nightly",
        event_name="schedule",
        stream=stream,
    )
    inputs.setdefault("api_key", API_KEY)
    if emulator is not None:
        inputs.setdefault("base_url", emulator.base_url)
    inputs.setdefault("poll_interval", 0.02)
    try:
        settings = load_settings(**inputs)
    except BadInput as exc:
        runner.error(str(exc))
        code = 2
    else:
        code = execute(settings, runner)
    results_path = workspace / inputs.get("output_dir", "batch-results") / "results.jsonl"
    results = [json.loads(line) for line in results_path.read_text().splitlines()] if results_path.exists() else []
    return Run(
        code,
        parse_outputs((files / "output").read_text()),
        (files / "summary").read_text(),
        stream.getvalue(),
        results,
        workspace,
    )
