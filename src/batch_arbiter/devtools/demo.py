"""`batch-arbiter demo`: a whole run against the bundled emulator, no API key, no network."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

SYSTEM_PROMPT = """You are the product analyst of a small open-source organisation. From the signals
given (issues, discussions, release notes), propose one feature with its user, its value and a first step.
"""

IDEAS = {
    "prompts/ideation/cli-ux.md": "Signals: users ask for shell completion and a --json flag on every command.",
    "prompts/ideation/docs.md": "Signals: three issues this week ask how to run the action locally with act.",
    "prompts/ideation/pricing.md": "Signals: a discussion asks for a monthly savings report per workflow.",
    "prompts/ideation/flaky.md": "Signals: the nightly job failed twice on a 529 overloaded error. "
    "[[emulator:errored]]",
}
JSONL = (
    '{"custom_id": "ideas-security", "prompt": "Signals: a dependency advisory landed for a transitive package."}\n'
    '{"custom_id": "ideas-onboarding", "prompt": "Signals: new contributors stall on the dev setup. '
    '[[emulator:expired]]", "max_tokens": 2048}\n'
)


DEMO_MODELS = {"anthropic": "claude-opus-5-5", "gemini": "gemini-4-argon"}
# `--structured`: every answer follows this schema; one prompt's batch answer does not, and its rerun fixes it.
SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "properties": {
        "ideas": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "title": {"type": "string"},
                    "problem": {"type": "string"},
                    "proposal": {"type": "string"},
                    "effort": {"type": "string", "enum": ["S", "M", "L"]},
                },
                "required": ["title", "problem", "proposal", "effort"],
                "additionalProperties": False,
            },
        }
    },
    "required": ["ideas"],
    "additionalProperties": False,
}
SCHEMA_FILE = "prompts/ideas.schema.json"


def write_workspace(root: Path, structured: bool = False) -> None:
    for rel, text in IDEAS.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if structured and rel.endswith("docs.md"):
            text += " [[emulator:schema-invalid-batch]]"
        path.write_text(text + "\n", encoding="utf-8")
    if structured:
        (root / SCHEMA_FILE).write_text(json.dumps(SCHEMA, indent=2) + "\n", encoding="utf-8")
    (root / "prompts/ideation/more.jsonl").write_text(JSONL, encoding="utf-8")
    (root / "prompts/system.md").write_text(SYSTEM_PROMPT, encoding="utf-8")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """`batch-arbiter demo`'s flags."""
    parser.add_argument("--dir", default="demo-workspace", help="workspace to create (default: %(default)s)")
    parser.add_argument("--provider", choices=sorted(DEMO_MODELS), default="anthropic")
    parser.add_argument("--model", default=None, help="default: claude-opus-5-5 or gemini-4-argon")
    parser.add_argument(
        "--structured", action="store_true", help=f"answers follow {SCHEMA_FILE}; results.json for a next step"
    )


def demo(args: argparse.Namespace) -> int:
    """Write the demo workspace and run it against an emulator that lives as long as the run."""
    from batch_arbiter.action.runner import Runner
    from batch_arbiter.core.settings import load_settings
    from batch_arbiter.emulator import Emulator, EmulatorConfig
    from batch_arbiter.run.flow import execute

    root = Path(args.dir).resolve()
    structured = bool(getattr(args, "structured", False))
    write_workspace(root, structured)
    print(
        f"Demo workspace: {root}\n"
        "Two prompts carry emulator markers: one errors and one expires in the batch, so the run\n"
        "shows the sync fallback rerunning exactly those two."
        + (
            "\nOn Gemini the deadline leaves room for the Flex tier, so the fallback runs at half price too.\n"
            if args.provider == "gemini"
            else "\n"
        )
        + (
            f"Every answer follows {SCHEMA_FILE}; the docs prompt's batch answer does not, so it reruns\n"
            "synchronously and is fixed. results.json holds the validated answers for a next step.\n"
            if structured
            else ""
        )
    )
    with Emulator(EmulatorConfig(processing_seconds=0.5)) as emulator:
        runner = Runner(workspace=root, workflow="feature-ideation", event_name="workflow_dispatch", stream=sys.stdout)
        settings = load_settings(
            prompt_files="prompts/ideation/*.md\nprompts/ideation/*.jsonl",
            system_prompt_file="prompts/system.md",
            provider=args.provider,
            model=args.model or DEMO_MODELS[args.provider],
            effort="high",
            workload="feature-ideation",
            mode="batch",
            poll_interval=0.25,
            # The batch ends in half a second either way; Gemini's Flex fallback wants a deadline far off.
            timeout_minutes=30 if args.provider == "gemini" else 1,
            output_dir="batch-results",
            api_key="demo-key-not-secret",
            base_url=emulator.base_url,
            response_schema=SCHEMA_FILE if structured else None,
        )
        code = execute(settings, runner)
    print(f"\nResults: {root / 'batch-results' / 'results.jsonl'} (exit code {code})")
    if structured:
        print(f"Structured results: {root / 'batch-results' / 'results.json'}")
    return code
