"""The baseline for batch rounds: a minimal plain-SDK script running the same tool-using conversations.

Reads the prompt files, then round after round creates one Message Batch of every conversation still
going, polls, reads the results, runs each `read`/`grep` call against the workspace (plainly: no path
checks, no output caps) and resubmits with the tool results, until every conversation ended. Writes each
final answer as one line. No state on disk, no pricing, no transcripts: the floor the action's rounds
are measured against.
"""

from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path
from typing import Any

import anthropic

TOOLS = [
    {"name": "read", "description": "Read a file", "input_schema": {"type": "object", "properties": {"path": {}}}},
    {
        "name": "grep",
        "description": "Search files",
        "input_schema": {"type": "object", "properties": {"pattern": {}, "glob": {}}},
    },
]


def run_tool(root: Path, name: str, args: dict[str, Any]) -> str:
    if name == "read":
        return (root / str(args["path"])).read_text()
    pattern = re.compile(str(args["pattern"]))
    hits = []
    for path in sorted(root.glob(str(args.get("glob") or "**/*"))):
        if not path.is_file():
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if pattern.search(line):
                hits.append(f"{path.relative_to(root)}:{number}:{line}")
    return "\n".join(hits)


def main(workspace: str, base_url: str, model: str = "claude-sonnet-5-5") -> None:
    root = Path(workspace)
    client = anthropic.Anthropic(api_key="bench", base_url=base_url)
    conversations: dict[str, list[dict[str, Any]]] = {
        f.stem: [{"role": "user", "content": f.read_text()}] for f in sorted((root / "prompts").glob("*.md"))
    }
    answers: dict[str, str] = {}
    while conversations:
        requests = [
            {"custom_id": cid, "params": {"model": model, "max_tokens": 1024, "tools": TOOLS, "messages": messages}}
            for cid, messages in conversations.items()
        ]
        batch = client.messages.batches.create(requests=requests)  # type: ignore[arg-type]
        while client.messages.batches.retrieve(batch.id).processing_status != "ended":
            time.sleep(0.2)
        for item in client.messages.batches.results(batch.id):
            message = item.result.message  # type: ignore[union-attr]
            content: list[dict[str, Any]] = [block.to_dict() for block in message.content]
            if message.stop_reason != "tool_use":
                answers[item.custom_id] = "".join(str(b.get("text", "")) for b in content)
                del conversations[item.custom_id]
                continue
            results = [
                {"type": "tool_result", "tool_use_id": b["id"], "content": run_tool(root, b["name"], b["input"])}
                for b in content
                if b["type"] == "tool_use"
            ]
            conversations[item.custom_id] += [
                {"role": "assistant", "content": content},
                {"role": "user", "content": results},
            ]
    with (root / "plain-answers.jsonl").open("w") as fh:
        for cid, text in answers.items():
            fh.write(json.dumps({"custom_id": cid, "text": text}) + "\n")


if __name__ == "__main__":
    main(*sys.argv[1:])
