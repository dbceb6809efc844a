"""Batch rounds: wall time and peak memory of the action against a plain-SDK script, on the same emulator.

    python bench/bench_agents.py --conversations 1000

N conversations of three turns each (read a file, grep the workspace, answer): three batch rounds. The
emulator runs in its own process and ends every batch 0.5 s after it is created; both contenders poll at
0.2 s. The action also keeps conversations.json and each round's answers on disk, prices every turn,
and writes a results line, an answer and a transcript per conversation. Prints a Markdown table;
`--json` prints the raw figures.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

from bench_batch import measure, start_emulator

HERE = Path(__file__).resolve().parent
# The grep names its files, as an analyst would: a grep of the whole workspace would search the 1,000
# prompt files (and the results as they are written) on every call, in the action only.
SCRIPT = '[[emulator:agent read {"path": "notes.md"} || grep {"pattern": "TODO", "glob": "src/**/*.py"}]]'


def make_workspace(root: Path, n: int) -> None:
    prompts = root / "prompts"
    prompts.mkdir(parents=True)
    (root / "notes.md").write_text("Signals: users ask for faster nightly runs.\n")
    (root / "src").mkdir()
    (root / "src" / "app.py").write_text("def main():\n    pass  # TODO: batch the nightly job\n")
    for i in range(n):
        (prompts / f"agent-{i:05d}.md").write_text(f"Propose feature {i} from the repository. {SCRIPT}\n")


def run(n: int, base_url: str) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_workspace(root, n)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("INPUT_", "GITHUB_"))}
        plain = measure([sys.executable, str(HERE / "plain_agent_sdk.py"), str(root), base_url], root, env)
        action_cmd = [
            sys.executable,
            "-m",
            "batch_arbiter",
            "run",
            "--prompt-files",
            "prompts/*.md",
            "--tools",
            "read,grep",
            "--mode",
            "batch",
            "--poll-interval",
            "0.2",
            "--base-url",
            base_url,
            "--api-key",
            "bench",
        ]
        action = measure(action_cmd, root, {**env, "GITHUB_WORKSPACE": str(root)})
        if plain[2] != 0 or action[2] != 0:
            raise SystemExit(f"a contender failed: plain exit {plain[2]}, action exit {action[2]}")
        lines = (root / "batch-results" / "results.jsonl").read_text().splitlines()
        turns = sum(json.loads(line)["turns"] for line in lines)
        if turns != 3 * n:
            raise SystemExit(f"the action answered {turns} turns, not {3 * n}")
        return {
            "conversations": n,
            "turns": turns,
            "plain_s": round(plain[0], 2),
            "action_s": round(action[0], 2),
            "ratio": round(action[0] / plain[0], 2),
            "plain_mib": round(plain[1]),
            "action_mib": round(action[1]),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--conversations", type=int, default=1000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    emulator, base_url = start_emulator()
    try:
        row = run(args.conversations, base_url)
    finally:
        emulator.terminate()
        emulator.wait()
    if args.json:
        print(json.dumps(row))
        return
    print("| conversations | turns | plain SDK (s) | batch-arbiter (s) | ratio | plain peak RSS (MiB) | ", end="")
    print("batch-arbiter peak RSS (MiB) |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    r = row
    print(
        f"| {r['conversations']:,} | {r['turns']:,} | {r['plain_s']} | {r['action_s']} | {r['ratio']} | "
        f"{r['plain_mib']} | {r['action_mib']} |"
    )


if __name__ == "__main__":
    main()
