"""The entrypoint driven exactly as the runner drives a Docker action: a process with INPUT_* variables
(hyphens kept), GITHUB_OUTPUT and GITHUB_STEP_SUMMARY files, and the workspace as working directory."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from batch_arbiter.emulator import Emulator
from support import API_KEY, parse_outputs, write_prompts


def runner_env(ws: Path, files: Path, emulator: Emulator, **inputs: str) -> dict[str, str]:
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


def test_entrypoint_as_the_runner_runs_it(tmp_path: Path, emulator: Emulator) -> None:
    ws, files = tmp_path / "workspace", tmp_path / "file_commands"
    files.mkdir()
    write_prompts(ws, {"ideas/a.md": "Idea A", "ideas/b.md": "Idea B", "system.md": "Be brief."})
    env = runner_env(ws, files, emulator, prompt_files="ideas/*.md\n", system_prompt_file="system.md")
    proc = subprocess.run(
        [sys.executable, "-m", "batch_arbiter"], cwd=ws, env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    outputs = parse_outputs((files / "set_output").read_text())
    assert outputs["status"] == "succeeded" and outputs["mode"] == "batch"  # feature-ideation -> batch
    assert outputs["succeeded"] == "2"
    assert "## batch-arbiter: feature-ideation" in (files / "step_summary").read_text()
    assert f"::add-mask::{API_KEY}" in proc.stdout
    assert len(emulator.calls("create")) == 1
    assert (ws / "batch-results" / "ideas_a_md.md").exists()


def test_bad_input_from_the_runner_exits_2(tmp_path: Path, emulator: Emulator) -> None:
    ws, files = tmp_path / "workspace", tmp_path / "file_commands"
    files.mkdir()
    write_prompts(ws, {"ideas/a.md": "Idea A"})
    env = runner_env(ws, files, emulator, prompt_files="ideas/a.md", effort="ultra")
    proc = subprocess.run(
        [sys.executable, "-m", "batch_arbiter"], cwd=ws, env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 2
    assert proc.stdout.startswith("::error title=batch-arbiter%3A bad input::input `effort`")
    assert emulator.calls() == []
