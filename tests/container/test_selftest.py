"""`BATCH_ARBITER_EMULATOR=1`: the entrypoint answers itself with the bundled emulator, needs no key, and
never overrides a `base-url` the step gave; the post step leaves that emulator's batches alone."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from batch_arbiter.emulator import Emulator
from support import parse_outputs, write_prompts


def entrypoint(ws: Path, command: str = "run", **extra: str) -> tuple[subprocess.CompletedProcess[str], dict[str, str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("INPUT_", "GITHUB_", "ANTHROPIC_"))}
    out = ws.parent / "set_output"
    out.write_text("")
    env.update(
        {
            "BATCH_ARBITER_EMULATOR": "1",
            "GITHUB_OUTPUT": str(out),
            "GITHUB_WORKSPACE": str(ws),
            "INPUT_PROMPT-FILES": "p/*.md",
            "INPUT_MODE": "batch",
            "INPUT_POLL-INTERVAL": "0.2",
            **extra,
        }
    )
    proc = subprocess.run(
        [sys.executable, "-m", "batch_arbiter", command], cwd=ws, env=env, capture_output=True, text=True, timeout=60
    )
    return proc, parse_outputs(out.read_text())


def test_switch_runs_without_a_key(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    write_prompts(ws, {"p/a.md": "Idea A", "p/b.md": "Idea B [[emulator:errored]]"})
    proc, outputs = entrypoint(ws)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "::notice::BATCH_ARBITER_EMULATOR is set" in proc.stdout
    assert (outputs["mode"], outputs["status"], outputs["succeeded"]) == ("batch+fallback", "succeeded", "2")


def test_a_given_base_url_wins_over_the_switch(tmp_path: Path, emulator: Emulator) -> None:
    ws = tmp_path / "ws"
    write_prompts(ws, {"p/a.md": "Idea A"})
    proc, outputs = entrypoint(ws, **{"INPUT_BASE-URL": emulator.base_url, "INPUT_API-KEY": "sk-ant-given"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "BATCH_ARBITER_EMULATOR is set" not in proc.stdout
    assert len(emulator.calls("create")) == 1 and outputs["status"] == "succeeded"


def test_post_step_leaves_a_bundled_emulator_batch_alone(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    state = ws / "batch-results" / "state.json"
    state.parent.mkdir(parents=True)
    record = {"provider": "anthropic", "model": "claude-sonnet-5-5", "workload": "self-test", "deadline": ""}
    state.write_text(json.dumps({**record, "status": "submitted", "batch_id": "msgbatch_gone"}))
    proc, _ = entrypoint(ws, command="post")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout == ""
    assert json.loads(state.read_text())["status"] == "submitted"
