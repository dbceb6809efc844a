"""examples/structured-ideas.yml end to end: its action step runs against the emulator with the example's
inputs and schema, then its actions/github-script step's own script runs under node on the results.json
that step produced, against a recording stand-in for the GitHub GraphQL API."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from batch_arbiter.emulator import Emulator
from support import ProviderProfile, write_prompts

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "structured-ideas.yml"

# What actions/github-script gives a script: an async function body with these names bound.
HARNESS = """
const fs = require('fs');
const calls = [];
const log = [];
const github = {
  graphql: async (query, vars) => {
    calls.push({ query, vars });
    if (query.includes('createDiscussion')) {
      return { createDiscussion: { discussion: { url: 'https://x/d/' + calls.length } } };
    }
    return { repository: { id: 'R_1', discussionCategories: { nodes: [
      { id: 'C_general', name: 'General' }, { id: 'C_ideas', name: 'Ideas' } ] } } };
  },
};
const context = { repo: { owner: 'acme', repo: 'widgets' } };
const core = {
  setFailed: (m) => log.push(['failed', m]),
  warning: (m) => log.push(['warning', m]),
  notice: (m) => log.push(['notice', m]),
};
(async () => {
  await (async function (github, context, core, require) {
SCRIPT
  })(github, context, core, require);
  fs.writeFileSync(process.env.RECORD, JSON.stringify({ calls, log }));
})().catch((e) => { console.error(e); process.exit(1); });
"""


def steps() -> list[dict[str, Any]]:
    workflow = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    found: list[dict[str, Any]] = workflow["jobs"]["ideate"]["steps"]
    return found


def test_example_ideas_become_discussions(tmp_path: Path, emulator: Emulator, provider: ProviderProfile) -> None:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed: the github-script step cannot run")
    action = next(s for s in steps() if s.get("id") == "ideas")
    script_step = next(s for s in steps() if s.get("uses", "").startswith("actions/github-script@"))
    given = action["with"]
    ws = tmp_path / "ws"
    write_prompts(
        ws,
        {
            "prompts/system.md": "You are a product analyst. Answer with ideas.",
            "prompts/ideation/cli.md": "Three ideas for the CLI.",
            "prompts/ideation/docs.md": "Ideas for the docs. [[emulator:schema-invalid-batch]]",
            "prompts/ideation/pricing.md": "Ideas for pricing. [[emulator:schema-invalid]]",
        },
    )
    shutil.copy(ROOT / "examples" / "ideas.schema.json", ws / given["response-schema"])
    inputs = {k.replace("-", "_"): v for k, v in given.items() if k != "api-key"}
    if provider.name != "anthropic":
        inputs["provider"] = provider.name
    run = provider.run(ws, emulator, **inputs, timeout_minutes=10)
    # One answer never matched the schema: the step fails, and the next step (`if: always()`) still runs.
    assert run.code == 1, run.log
    assert run.outputs["results-json"] == "ideas/results.json"

    # The script's env, with the expressions the runner would substitute.
    env_spec = script_step["env"]
    assert env_spec["RESULTS_JSON"] == "${{ steps.ideas.outputs.results-json }}"
    script = script_step["with"]["script"]
    harness = tmp_path / "harness.js"
    harness.write_text(HARNESS.replace("SCRIPT", script), encoding="utf-8")
    record = tmp_path / "record.json"
    env = {"PATH": "/usr/bin:/bin", "RESULTS_JSON": run.outputs["results-json"], "RECORD": str(record)}
    env["CATEGORY"] = env_spec["CATEGORY"]
    done = subprocess.run([node, str(harness)], cwd=ws, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    recorded = json.loads(record.read_text(encoding="utf-8"))

    rows = json.loads((ws / "ideas" / "results.json").read_text(encoding="utf-8"))
    valid = [row for row in rows if row["json"] is not None]
    assert {row["custom_id"] for row in valid} == {"prompts_ideation_cli_md", "prompts_ideation_docs_md"}
    ideas = [idea for row in valid for idea in row["json"]["ideas"]]
    assert ideas
    mutations = [c["vars"] for c in recorded["calls"] if "createDiscussion" in c["query"]]
    assert [m["title"] for m in mutations] == [idea["title"][:120] for idea in ideas]
    for m, idea in zip(mutations, ideas, strict=True):
        assert (m["repo"], m["cat"]) == ("R_1", "C_ideas")
        assert (
            idea["problem"] in m["body"]
            and idea["proposal"] in m["body"]
            and f"**Effort:** {idea['effort']}" in m["body"]
        )
    warnings = [m for kind, m in recorded["log"] if kind == "warning"]
    assert warnings == ["prompts_ideation_pricing_md: errored, no valid answer (see results.jsonl)"]
    assert ["notice", f"opened {len(ideas)} discussions"] in recorded["log"]
    # The step's condition reads the output this action declares.
    assert re.search(r"steps\.ideas\.outputs\.results-json", script_step["if"])
