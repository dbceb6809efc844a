"""Wall time and peak memory of the action against a minimal plain-SDK script, on the same emulator.

    python bench/bench_batch.py --sizes 1000 10000

Each size gets a fresh workspace of N prompt files. The emulator runs in its own process (so it does not
share the measured process's CPU time or memory); both contenders poll at 0.2 s and the emulator ends
every batch 0.5 s after it is created. Prints a Markdown table; `--json` prints the raw figures.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
PLAIN_LIMIT = 100_000


def start_emulator() -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "batch_arbiter.emulator", "--port", "0", "--processing-seconds", "0.5"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    return proc, proc.stdout.readline().strip()


def make_workspace(root: Path, n: int) -> None:
    prompts = root / "prompts"
    prompts.mkdir(parents=True)
    for i in range(n):
        (prompts / f"idea-{i:06d}.md").write_text(f"Propose feature number {i} for the command line tool.\n")


def measure(cmd: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float, int]:
    """Wall seconds, peak RSS in MiB (from wait4's rusage of that child alone), exit code."""
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    code = os.waitstatus_to_exitcode(status)
    if code != 0 and proc.stderr is not None:
        sys.stderr.write(proc.stderr.read().decode()[-2000:])
    return wall, usage.ru_maxrss / 1024, code


def run_size(n: int, base_url: str) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_workspace(root, n)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("INPUT_", "GITHUB_"))}
        # One plain-SDK batch holds at most 100,000 requests; above that only the action runs (it splits).
        plain = (
            measure([sys.executable, str(HERE / "plain_sdk.py"), str(root), base_url], root, env)
            if n <= PLAIN_LIMIT
            else (float("nan"), float("nan"), 0)
        )
        action = measure(
            [
                sys.executable,
                "-m",
                "batch_arbiter",
                "run",
                "--prompt-files",
                "prompts/*.md",
                "--mode",
                "batch",
                "--max-tokens",
                "1024",
                "--poll-interval",
                "0.2",
                "--api-key",
                "bench",
                "--base-url",
                base_url,
            ],
            root,
            env,
        )
        lines = sum(1 for _ in (root / "batch-results" / "results.jsonl").open()) if action[2] == 0 else 0
        batches = len(json.loads((root / "batch-results" / "state.json").read_text())["batch_ids"])
    if plain[2] or action[2] or lines != n:
        raise SystemExit(f"size {n}: plain exit {plain[2]}, action exit {action[2]}, {lines} result lines")
    return {
        "requests": n,
        "batches": batches,
        "plain_s": plain[0],
        "action_s": action[0],
        "ratio": action[0] / plain[0],
        "plain_mib": plain[1],
        "action_mib": action[1],
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
        "| requests | batches | plain SDK (s) | batch-arbiter (s) | ratio | plain peak RSS (MiB) "
        "| batch-arbiter peak RSS (MiB) |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['requests']:,} | {r['batches']} | {r['plain_s']:.2f} | {r['action_s']:.2f} | {r['ratio']:.2f} | "
            f"{r['plain_mib']:.0f} | {r['action_mib']:.0f} |".replace("nan", "n/a")
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
