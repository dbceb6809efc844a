"""Sync fallback throughput against a rate-limited API: N requests, bounded concurrency, nothing lost.

    python bench/sync_fallback.py --requests 1000 --limit 100 --concurrency 8

The emulator allows `--limit` generation calls per second and answers the rest with 429 + retry-after;
the action runs every request synchronously (`mode: sync`). Reports wall time, achieved throughput
against the limit, how many 429s it met, and that every request ended with a result.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import tempfile
import time
from pathlib import Path

from batch_arbiter.action.entry import step as execute
from batch_arbiter.action.runner import Runner
from batch_arbiter.core.settings import load_settings
from batch_arbiter.emulator import Emulator, EmulatorConfig


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--limit", type=float, default=100.0, help="emulator calls per second")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp, Emulator(EmulatorConfig(sync_rate_limit=args.limit)) as emu:
        root = Path(tmp)
        for i in range(args.requests):
            (root / "prompts").mkdir(exist_ok=True)
            (root / "prompts" / f"q{i:05d}.md").write_text(f"Question {i}\n")
        runner = Runner(workspace=root, stream=io.StringIO())
        settings = load_settings(
            prompt_files="prompts/*.md",
            mode="sync",
            api_key="bench",
            base_url=emu.base_url,
            max_concurrency=args.concurrency,
        )
        started = time.perf_counter()
        code = execute(settings, runner)
        wall = time.perf_counter() - started
        lines = [json.loads(x) for x in (root / "batch-results" / "results.jsonl").read_text().splitlines()]
        statuses = [c.status for c in emu.calls("messages")]
    result = {
        "requests": args.requests,
        "exit_code": code,
        "succeeded": sum(1 for r in lines if r["status"] == "succeeded"),
        "result_lines": len(lines),
        "wall_s": wall,
        "throughput_per_s": args.requests / wall,
        "limit_per_s": args.limit,
        "rate_limited_calls": statuses.count(429),
    }
    if args.json:
        print(json.dumps(result))
        return 0
    print("| requests | limit (/s) | concurrency | wall (s) | throughput (/s) | of limit | 429s met | succeeded |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    print(
        f"| {args.requests:,} | {args.limit:g} | {args.concurrency} | {wall:.1f} | "
        f"{result['throughput_per_s']:.1f} | {result['throughput_per_s'] / args.limit:.0%} | "
        f"{result['rate_limited_calls']} | {result['succeeded']:,} |"
    )
    return 0 if result["succeeded"] == args.requests else 1


if __name__ == "__main__":
    sys.exit(main())
