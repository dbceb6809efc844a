"""The audit reads an agent step's allowed tools: all of them in the batched agent's catalogue makes it
"batchable as an agent"; a tool that edits files or runs commands keeps it "needs reshaping", named."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from batch_arbiter.observatory.audit import CANDIDATE, run_audit
from observatory import build_tree

ON = date(2026, 11, 24)
SCHEDULED = (
    "name: {name}\non:\n  schedule:\n    - cron: '0 3 * * 1'\njobs:\n  run:\n    runs-on: ubuntu-latest\n    steps:\n"
)


def _audit(tmp_path: Path, steps: str, name: str = "Weekly Research") -> list[str]:
    workflows = tmp_path / ".github" / "workflows"
    workflows.mkdir(parents=True)
    (workflows / "research.yml").write_text(SCHEDULED.format(name=name) + steps)
    (w,) = run_audit(workflows, on=ON).workloads
    assert w.verdict == CANDIDATE
    return w.notes


@pytest.mark.parametrize(
    ("steps", "note"),
    [
        (
            '      - run: claude -p --allowed-tools Read,Grep,WebSearch "$(cat prompt.md)"\n',
            "batchable as an agent: tools read, grep, web-search",
        ),
        (
            '      - run: |\n          npx -y @anthropic-ai/claude-code -p "research" \\\n'
            '            --allowedTools "Read" "Glob" "WebFetch" --model claude-opus-4-8\n',
            "batchable as an agent: tools read, glob, web-fetch",
        ),
        (
            "      - run: claude --print --allowedTools=Grep,LS,TodoWrite < prompt.md\n",
            "batchable as an agent: tools glob, grep",
        ),
        (
            "      - uses: anthropics/claude-code-action@v1\n        with:\n"
            "          claude_args: --model claude-opus-4-8 --allowed-tools Read,WebSearch\n",
            "batchable as an agent: tools read, web-search",
        ),
        (
            '      - uses: anthropics/claude-code-action@beta\n        with:\n          allowed_tools: "Glob,Grep"\n',
            "batchable as an agent: tools glob, grep",
        ),
        (
            '      - run: gemini -p "look" --allowed-tools read_file,google_web_search\n',
            "batchable as an agent: tools read, web-search",
        ),
    ],
)
def test_an_agent_with_supported_tools_is_batchable_as_an_agent(tmp_path: Path, steps: str, note: str) -> None:
    notes = _audit(tmp_path, steps)
    assert note in notes, notes
    assert not [n for n in notes if "needs reshaping" in n]


@pytest.mark.parametrize(
    ("steps", "blocked"),
    [
        (
            '      - run: claude -p --allowed-tools Read,Bash,Edit "go"\n',
            ["`Bash` runs shell commands", "`Edit` edits files"],
        ),
        (
            '      - run: claude -p --allowedTools "Bash(git diff:*)" Read "go"\n',
            ["`Bash` runs shell commands"],
        ),
        (
            "      - uses: anthropics/claude-code-action@v1\n        with:\n"
            "          claude_args: --allowedTools Write,mcp__github__create_issue\n",
            ["`Write` writes files", "`mcp__github__create_issue` calls an MCP server"],
        ),
        (
            '      - run: gemini -p "fix" --allowed-tools run_shell_command,read_file\n',
            ["`run_shell_command` runs shell"],
        ),
    ],
)
def test_an_agent_that_edits_or_runs_commands_needs_reshaping(tmp_path: Path, steps: str, blocked: list[str]) -> None:
    notes = _audit(tmp_path, steps)
    (reshape,) = [n for n in notes if n.startswith("needs reshaping")]
    for fragment in blocked:
        assert fragment in reshape, reshape
    assert "read, glob, grep (read-only, inside the workspace) and web-search, web-fetch, code-execution" in reshape
    assert not [n for n in notes if n.startswith("batchable as an agent")]


def test_an_agent_without_listed_tools_needs_reshaping(tmp_path: Path) -> None:
    notes = _audit(tmp_path, '      - run: claude -p "summarise the week" --model claude-sonnet-5-5\n')
    (reshape,) = [n for n in notes if n.startswith("needs reshaping")]
    assert "does not say which tools" in reshape and "--allowed-tools" in reshape


def test_one_blocking_step_outweighs_a_batchable_one(tmp_path: Path) -> None:
    steps = (
        '      - run: claude -p --allowed-tools Read "first"\n'
        '      - run: claude -p --allowed-tools Read,Write "second"\n'
    )
    notes = _audit(tmp_path, steps)
    assert [n for n in notes if n.startswith("needs reshaping")] and "`Write` writes files" in " ".join(notes)


def test_the_sample_repository_s_analyst(tmp_path: Path) -> None:
    # tests/observatory.py: the feature-ideation analyst is allowed Bash, so it stays to be reshaped.
    (ideation,) = [w for w in run_audit(build_tree(tmp_path), on=ON).workloads if w.name == "Feature Ideation"]
    assert any(n.startswith("needs reshaping: `Bash` runs shell commands") for n in ideation.notes), ideation.notes
