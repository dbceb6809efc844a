"""Every example's own steps that can run here, run: the action step against the emulator with the
example's inputs (a secret becomes the test key), and any `run:` script with the outputs of the steps
before it. Steps of other actions (checkout, cache, artifacts, github-script) cannot run here; the cache
between the submit and the collect runs is the workspace they share. An example cannot drift from the
code unseen."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from batch_arbiter.emulator import Emulator
from support import PROVIDERS, Run, run_action, write_prompts

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples").glob("*.yml"))
ACTION = "your-org/batch-arbiter@v1"
EXPRESSION = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")


@dataclass
class Steps:
    """What running an example's job so far left: each action step's run, by its id."""

    runs: dict[str, Run] = field(default_factory=dict)
    scripts: list[str] = field(default_factory=list)


def steps_of(example: Path) -> list[dict[str, Any]]:
    workflow = yaml.safe_load(example.read_text())
    (job,) = workflow["jobs"].values()
    return list(job["steps"])


def resolve(text: str, done: Steps) -> str | None:
    """`${{ ... }}` in `text` with what is known here (a step's outputs, secrets); None if any is not."""
    unknown = False

    def value(match: re.Match[str]) -> str:
        nonlocal unknown
        expr = match.group(1)
        found = re.fullmatch(r"steps\.([\w-]+)\.outputs\.([\w-]+)", expr)
        if found and found.group(1) in done.runs:
            return done.runs[found.group(1)].outputs.get(found.group(2), "")
        unknown = True
        return ""

    resolved = EXPRESSION.sub(value, text)
    return None if unknown else resolved


def fake_inputs(ws: Path, inputs: dict[str, str]) -> None:
    """Prompt, system and schema files for the paths the example names, so its step has work to do."""
    for pattern in (inputs.get("prompt-files") or "").split():
        path = pattern.replace("**/", "").replace("*", "one")
        text = json.dumps({"prompt": "Propose a feature."}) if path.endswith((".json", ".jsonl")) else "Propose one."
        write_prompts(ws, {path: text})
    if inputs.get("system-prompt-file"):
        write_prompts(ws, {inputs["system-prompt-file"]: "You are a product analyst."})
    if inputs.get("response-schema"):
        write_prompts(ws, {inputs["response-schema"]: (ROOT / "examples" / "ideas.schema.json").read_text()})


def run_steps(example: Path, ws: Path, emulator: Emulator, done: Steps, **override: Any) -> Steps:
    for step in steps_of(example):
        if str(step.get("uses", "")).startswith("actions/checkout@"):
            # The checkout: a repository whose workflows are this project's own and the examples.
            flows = ws / ".github" / "workflows"
            flows.mkdir(parents=True, exist_ok=True)
            for source in [*(ROOT / ".github" / "workflows").glob("*.yml"), *EXAMPLES]:
                shutil.copyfile(source, flows / source.name)
        elif step.get("uses") == ACTION:
            inputs = {k: str(v) for k, v in (step.get("with") or {}).items()}
            fake_inputs(ws, inputs)
            kwargs: dict[str, Any] = {}
            for name, raw in inputs.items():
                if EXPRESSION.search(raw) and "secrets." in raw:
                    continue  # the key: the test's own
                text = resolve(raw, done)
                assert text is not None, f"{example.name}: {name}: cannot resolve {raw!r}"
                kwargs[name.replace("-", "_")] = text
            kwargs.update(override)
            done.runs[step["id"]] = run_action(ws, emulator, **kwargs)
        elif "run" in step:
            script = resolve(step["run"], done)
            env = {k: resolve(str(v), done) for k, v in (step.get("env") or {}).items()}
            if script is None or None in env.values() or re.search(r"\bgh\b", script):
                continue  # needs GitHub itself (an API token, the gh CLI)
            out = subprocess.run(
                ["bash", "-e", "-c", script],
                cwd=ws,
                env={**os.environ, **{k: v for k, v in env.items() if v is not None}},
                capture_output=True,
                text=True,
                check=False,
                timeout=60,
            )
            assert out.returncode == 0, f"{example.name}: {step.get('name')}: {out.stderr}"
            done.scripts.append(out.stdout)
    return done


@pytest.mark.parametrize("example", [e for e in EXAMPLES if e.name != "batch-collect.yml"], ids=lambda e: e.name)
def test_each_examples_steps_run(example: Path, tmp_path: Path, emulator: Emulator) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    done = run_steps(example, ws, emulator, Steps())
    assert done.runs, f"{example.name} runs no batch-arbiter step"
    for step_id, run in done.runs.items():
        assert run.code == 0, f"{example.name} step {step_id}: {run.log}"
        assert run.outputs.get("status") in ("succeeded", "pending", "planned") or run.outputs.get("mode") == "audit"


@pytest.mark.parametrize("provider", sorted(PROVIDERS))
def test_submit_then_collect_pending_pending_done_pays_once(tmp_path: Path, emulator: Emulator, provider: str) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    submit, collect = ROOT / "examples" / "batch-submit.yml", ROOT / "examples" / "batch-collect.yml"
    # A batch that takes a while: the first collects find it running.
    emulator.config.processing_seconds = 600
    over = {"provider": provider}
    sub = run_steps(submit, ws, emulator, Steps(), **over).runs["submit"]
    assert sub.code == 0, sub.log
    assert (sub.outputs["status"], sub.outputs["mode"]) == ("pending", "pending")
    state = json.loads((ws / "batch-results" / "state.json").read_text())
    assert state["status"] == "pending" and state["collect_by"]
    assert state["batch_ids"] == [sub.outputs["batch-id"]]
    sync = PROVIDERS[provider].sync
    create = PROVIDERS[provider].create
    for _ in range(2):
        got = run_steps(collect, ws, emulator, Steps(), **over)
        run = got.runs["collect"]
        assert run.code == 0, run.log
        assert run.outputs["status"] == "pending"
        assert "stays pending until then" in run.log
        assert emulator.calls(sync) == [] and len(emulator.calls(create)) == 1
        assert got.scripts == [f"status pending; net savings {run.outputs['net-savings-usd']} USD\n"]
    assert json.loads((ws / "batch-results" / "state.json").read_text())["collect_by"] == state["collect_by"]
    # The batch ends: the third collect gets everything, from the batch, nothing synchronously.
    emulator.config.processing_seconds = 0
    finish_batch(emulator, provider, sub.outputs["batch-id"])
    third = run_steps(collect, ws, emulator, Steps(), **over).runs["collect"]
    assert third.code == 0, third.log
    assert third.outputs["status"] == "succeeded"
    assert emulator.calls(sync) == [] and len(emulator.calls(create)) == 1
    ids = [r["custom_id"] for r in third.results]
    assert len(ids) == len(set(ids)) == 1 and third.results[0]["via"] == "batch"
    cost = float(third.outputs["cost-usd"])
    assert cost > 0 and cost == pytest.approx(third.results[0]["cost_usd"], abs=1e-6)
    # A fourth collect of the finished state: a notice, nothing read, nothing reported again.
    free = {"models", "count_tokens", "gemini_count_tokens"}
    calls = len([c for c in emulator.calls() if c.route not in free])
    fourth = run_steps(collect, ws, emulator, Steps(), **over).runs["collect"]
    assert fourth.code == 0, fourth.log
    assert "was already collected (done:succeeded); nothing to do" in fourth.log
    assert fourth.summary == "" and "cost-usd" not in fourth.outputs
    # Only the free model lookup of the input checks: no status, results or paid call.
    assert len([c for c in emulator.calls() if c.route not in free]) == calls
    assert [r["custom_id"] for r in fourth.results] == ids


def finish_batch(emulator: Emulator, provider: str, batch_id: str) -> None:
    """End the running batch now, as the provider would once it is done."""
    if provider == "anthropic":
        batch = emulator.anthropic.batch(batch_id)
        batch.processing_seconds = 0
        batch.end_mono = batch.created_mono
    else:
        job = emulator.gemini.job(batch_id)
        job.processing_seconds = 0
        job.end_mono = job.created_mono


@pytest.mark.parametrize("provider", sorted(PROVIDERS))
def test_after_collect_by_the_rest_falls_back(tmp_path: Path, emulator: Emulator, provider: str) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    emulator.config.processing_seconds = 600
    over = {"provider": provider}
    sub = run_steps(ROOT / "examples" / "batch-submit.yml", ws, emulator, Steps(), collect_by="0", **over)
    assert sub.runs["submit"].outputs["status"] == "pending"
    run = run_steps(ROOT / "examples" / "batch-collect.yml", ws, emulator, Steps(), **over).runs["collect"]
    # collect-by has passed: on-timeout fallback cancels the batch and answers the rest synchronously.
    assert run.code == 0, run.log
    assert run.outputs["status"] == "succeeded" and run.outputs["mode"] == "batch+fallback"
    assert len(emulator.calls(PROVIDERS[provider].cancel)) == 1
    assert len(emulator.calls(PROVIDERS[provider].sync)) == 1


def test_collect_without_a_state_is_bad_input(tmp_path: Path, emulator: Emulator) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    run = run_steps(ROOT / "examples" / "batch-collect.yml", ws, emulator, Steps()).runs["collect"]
    assert run.code == 2
    assert "names no batch to collect" in run.log and emulator.calls("create") == []
