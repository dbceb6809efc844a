"""The baseline: a minimal plain-SDK script doing the same submit and collect as the action.

Reads the prompt files, creates one Message Batch, polls, and writes every result line to a file.
No validation, no pricing, no summary: the floor the action's overhead is measured against.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import anthropic


def main(workspace: str, base_url: str, model: str = "claude-sonnet-5-5") -> None:
    root = Path(workspace)
    files = sorted((root / "prompts").glob("*.md"))
    client = anthropic.Anthropic(api_key="bench", base_url=base_url)
    requests = [
        {
            "custom_id": f.stem,
            "params": {"model": model, "max_tokens": 1024, "messages": [{"role": "user", "content": f.read_text()}]},
        }
        for f in files
    ]
    batch = client.messages.batches.create(requests=requests)  # type: ignore[arg-type]
    while client.messages.batches.retrieve(batch.id).processing_status != "ended":
        time.sleep(0.2)
    out = root / "plain-results.jsonl"
    with out.open("w") as fh:
        for item in client.messages.batches.results(batch.id):
            fh.write(json.dumps(item.to_dict()) + "\n")


if __name__ == "__main__":
    main(*sys.argv[1:])
