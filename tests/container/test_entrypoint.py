"""The entrypoint driven exactly as the runner drives a Docker action: a process with INPUT_* variables
(hyphens kept), GITHUB_OUTPUT and GITHUB_STEP_SUMMARY files, and the workspace as working directory."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from batch_arbiter.emulator import Emulator
from support import API_KEY, parse_outputs, runner_env, write_prompts


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
