"""examples/agent-feature-ideation.yml end to end: its signal-gathering step's own script runs (with a
stand-in `gh` that prints issues), then its action step runs against the emulator with the example's
inputs, the analyst reading the signals and the repository and searching the web over batch rounds."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from batch_arbiter.emulator import Emulator
from support import ANTHROPIC, write_prompts

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "agent-feature-ideation.yml"
ISSUES = [
    {"number": 7, "title": "Nightly runs are slow", "labels": [], "reactionGroups": [], "updatedAt": "2026-11-30"},
    {
        "number": 9,
        "title": "Export ideas to Discussions",
        "labels": [],
        "reactionGroups": [],
        "updatedAt": "2026-11-29",
    },
]
ANALYST = (
    'Propose one feature from this week\'s signals. [[emulator:agent read {"path": "signals/signals.json"} '
    '&& glob {"pattern": "src/**/*.py"} || grep {"pattern": "TODO"} && web-search {"query": "nightly batch"}]]'
)


def steps() -> list[dict[str, Any]]:
    workflow = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    found: list[dict[str, Any]] = workflow["jobs"]["ideate"]["steps"]
    return found


def test_example_gathers_signals_then_the_analyst_works_over_rounds(tmp_path: Path, emulator: Emulator) -> None:
    if shutil.which("jq") is None or shutil.which("bash") is None:
        pytest.skip("jq or bash is not installed: the gathering step cannot run")
    ws = tmp_path / "ws"
    write_prompts(
        ws,
        {
            "prompts/analyst.md": "You are a product analyst. Ground every idea in a signal and in the code.",
            "prompts/agent-ideation/weekly.md": ANALYST,
            "src/app.py": "def nightly():\n    pass  # TODO: batch it\n",
        },
    )
    # The gathering step as the runner runs it, `gh` answered by a stand-in that prints the issues.
    gather = next(s for s in steps() if s.get("name") == "Gather signals")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    stub = bin_dir / "gh"
    stub.write_text(f"#!/bin/sh\ncat <<'EOF'\n{json.dumps(ISSUES)}\nEOF\n")
    stub.chmod(0o755)
    env = {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "GH_TOKEN": "unused"}
    done = subprocess.run(["bash", "-e", "-c", gather["run"]], cwd=ws, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    signals = json.loads((ws / "signals" / "signals.json").read_text())
    assert [i["number"] for i in signals["issues"]] == [7, 9]

    action = next(s for s in steps() if s.get("id") == "ideas")
    inputs = {k.replace("-", "_"): v for k, v in action["with"].items() if k != "api-key"}
    run = ANTHROPIC.run(ws, emulator, **inputs)
    assert run.code == 0, run.log
    # Upgraded at no higher per-token price, at the highest effort it takes.
    assert run.outputs["model"] != "claude-sonnet-5-5"
    assert (run.outputs["status"], run.outputs["mode"]) == ("succeeded", "batch")
    (line,) = run.results
    assert line["turns"] == 3
    assert line["tool_calls"] == {"glob": 1, "grep": 1, "read": 1}
    assert line["server_tool_use"] == {"web-search": 1}
    results = [json.loads(x) for x in (ws / "ideas" / f"{line['custom_id']}.transcript.jsonl").read_text().splitlines()]
    read = next(t for t in results if t["type"] == "tool_results")["results"][0]
    assert "Nightly runs are slow" in read["content"]
    assert "### Rounds" in run.summary
