"""What a response schema costs a run: the same batch with and without `--response-schema`.

    python bench/structured.py --sizes 1000 10000

Each size gets a fresh workspace of N prompt files and runs the action twice on the same emulator
(its own process, batches ending 0.5 s after creation, polls every 0.2 s): plain, then with a schema of
idea items, where every answer is parsed, validated, written as `<custom_id>.json` too, and gathered into
results.json. Prints a Markdown table; `--json` prints the raw figures.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from batch_arbiter.devtools import demo
from bench_batch import make_workspace, measure, start_emulator

SCHEMA = demo.SCHEMA


def run_action(root: Path, base_url: str, out: str, schema: bool) -> tuple[float, float, int]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("INPUT_", "GITHUB_"))}
    cmd = [sys.executable, "-m", "batch_arbiter", "run", "--prompt-files", "prompts/*.md", "--mode", "batch"]
    cmd += ["--max-tokens", "1024", "--poll-interval", "0.2", "--api-key", "bench", "--base-url", base_url]
    cmd += ["--output-dir", out] + (["--response-schema", "schema.json"] if schema else [])
    return measure(cmd, root, env)


def run_size(n: int, base_url: str) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_workspace(root, n)
        (root / "schema.json").write_text(json.dumps(SCHEMA), encoding="utf-8")
        plain = run_action(root, base_url, "plain", schema=False)
        structured = run_action(root, base_url, "structured", schema=True)
        rows = json.loads((root / "structured" / "results.json").read_text(encoding="utf-8"))
        valid = sum(1 for r in rows if r["json"] is not None)
    if plain[2] or structured[2] or valid != n:
        raise SystemExit(f"size {n}: plain exit {plain[2]}, structured exit {structured[2]}, {valid} valid")
    return {
        "requests": n,
        "plain_s": plain[0],
        "structured_s": structured[0],
        "overhead_s": structured[0] - plain[0],
        "plain_mib": plain[1],
        "structured_mib": structured[1],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    emulator, base_url = start_emulator()
    try:
        rows = [run_size(n, base_url) for n in args.sizes]
    finally:
        emulator.terminate()
        emulator.wait()
    if args.json:
        print(json.dumps(rows))
        return 0
    print(
        "| requests | plain (s) | with schema (s) | overhead (s) | plain peak RSS (MiB) | with schema peak RSS (MiB) |"
    )
    print("|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['requests']:,} | {r['plain_s']:.2f} | {r['structured_s']:.2f} | {r['overhead_s']:.2f} | "
            f"{r['plain_mib']:.0f} | {r['structured_mib']:.0f} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
