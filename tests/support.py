"""Helpers shared by the end-to-end tests: run the action in-process as the runner sees it."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from batch_arbiter.action.entry import step as execute
from batch_arbiter.action.runner import Runner
from batch_arbiter.core.settings import load_settings
from batch_arbiter.emulator import Emulator
from batch_arbiter.errors import InputError

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
    except InputError as exc:
        runner.error(str(exc))
        code = 2
    else:
        code = execute(settings, runner)
    results_path = workspace / inputs.get("output_dir", "batch-results") / "results.jsonl"
    # JSON Lines end at "\n" only: str.splitlines() also splits inside answers at U+0085, U+2028 and the like.
    lines = results_path.read_text(encoding="utf-8").split("\n") if results_path.exists() else []
    results = [json.loads(line) for line in lines if line]
    return Run(
        code,
        parse_outputs((files / "output").read_text()),
        (files / "summary").read_text(),
        stream.getvalue(),
        results,
        workspace,
    )


# --- the provider contract: what differs between providers, as the emulator names it -------------


@dataclass(frozen=True)
class ProviderProfile:
    """One provider as the shared contract suite sees it: its emulator routes and how its wire spells things."""

    name: str
    # A model with effort levels and an effort it takes, for the happy path.
    model: str
    effort: str
    # Emulator route names of the calls the contract counts.
    create: str
    status: str
    cancel: str
    sync: str
    batch_id_prefix: str
    # How the API names a malformed request in its errors.
    invalid_request: str
    # A model of the other provider, which this provider must refuse.
    foreign_model: str
    # Another model of this provider, cheaper than `model`.
    cheaper_model: str

    def run(self, workspace: Path, emulator: Emulator | None, **inputs: Any) -> Run:
        inputs.setdefault("provider", self.name)
        return run_action(workspace, emulator, **inputs)

    def sync_prompts(self, emulator: Emulator) -> list[str]:
        """The last user text of every synchronous call, sorted."""
        texts = []
        for call in emulator.calls(self.sync):
            if not call.body:
                continue
            if self.name == "anthropic":
                texts.append(call.body["messages"][-1]["content"])
            else:
                texts.append(call.body["contents"][-1]["parts"][0]["text"])
        return sorted(texts)

    def batch_requests(self, emulator: Emulator) -> list[dict[str, Any]]:
        """The requests of the first batch created, as sent (Anthropic params, Gemini inline requests)."""
        body = emulator.calls(self.create)[0].body
        if self.name == "anthropic":
            return [r["params"] for r in body["requests"]]
        return [r["request"] for r in body["batch"]["inputConfig"]["requests"]["requests"]]


ANTHROPIC = ProviderProfile(
    name="anthropic",
    model="claude-opus-5-5",
    effort="max",
    create="create",
    status="retrieve",
    cancel="cancel",
    sync="messages",
    batch_id_prefix="msgbatch_",
    invalid_request="invalid_request_error",
    foreign_model="gemini-2.5-pro",
    cheaper_model="claude-haiku-4-5",
)
GEMINI = ProviderProfile(
    name="gemini",
    model="gemini-4-argon",
    effort="high",
    create="gemini_create",
    status="gemini_get",
    cancel="gemini_cancel",
    sync="gemini_generate",
    batch_id_prefix="batches/",
    invalid_request="INVALID_ARGUMENT",
    foreign_model="claude-opus-5-5",
    cheaper_model="gemini-3.5-flash",
)
PROVIDERS = {p.name: p for p in (ANTHROPIC, GEMINI)}


def runner_env(ws: Path, files: Path, emulator: Emulator, **inputs: str) -> dict[str, str]:
    """The environment the runner gives a Docker action's process, every declared input included."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("INPUT_", "GITHUB_", "ANTHROPIC_"))}
    (files / "set_output").write_text("")
    (files / "step_summary").write_text("")
    env.update(
        {
            "GITHUB_ACTIONS": "true",
            "CI": "true",
            "GITHUB_WORKSPACE": str(ws),
            "GITHUB_OUTPUT": str(files / "set_output"),
            "GITHUB_STEP_SUMMARY": str(files / "step_summary"),
            "GITHUB_WORKFLOW": "feature-ideation",
            "GITHUB_EVENT_NAME": "schedule",
            "GITHUB_RUN_ID": "4242",
        }
    )
    # Every declared input arrives, the unset ones as empty strings.
    for name in (
        "system-prompt-file",
        "model",
        "effort",
        "workload",
        "policy-file",
        "upgrade",
        "batch-id",
        "metrics-file",
        "pricing-file",
        "budget-usd",
    ):
        env[f"INPUT_{name.upper()}"] = ""
    env.update(
        {
            "INPUT_API-KEY": API_KEY,
            "INPUT_BASE-URL": emulator.base_url,
            "INPUT_POLL-INTERVAL": "0.05",
            "INPUT_MODE": "auto",
            "INPUT_OUTPUT-DIR": "batch-results",
            "INPUT_TIMEOUT-MINUTES": "300",
        }
    )
    env.update({f"INPUT_{k.upper().replace('_', '-')}": v for k, v in inputs.items()})
    return env


def start_entrypoint(ws: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    """The action's process as the runner starts it, left running so a test can signal or kill it."""
    return subprocess.Popen(
        [sys.executable, "-m", "batch_arbiter"],
        cwd=ws,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
