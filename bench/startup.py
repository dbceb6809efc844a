"""Process start to the first HTTP request the provider sees, and where import time goes.

    python bench/startup.py --runs 5

Starts `batch-arbiter run` against an in-process emulator and watches for its first call; then prints
the slowest imports from `python -X importtime` of the same command.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from batch_arbiter.emulator import Emulator, EmulatorConfig


def command(base_url: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "batch_arbiter",
        "run",
        "--prompt-files",
        "p.md",
        "--mode",
        "batch",
        "--poll-interval",
        "0.05",
        "--api-key",
        "bench",
        "--base-url",
        base_url,
    ]


def first_request_seconds(emu: Emulator, cwd: Path, env: dict[str, str]) -> float:
    emu.clear_calls()
    started = time.perf_counter()
    proc = subprocess.Popen(command(emu.base_url), cwd=cwd, env=env, stdout=subprocess.DEVNULL)
    while not emu.calls():
        time.sleep(0.001)
    seen = time.perf_counter() - started
    proc.wait(timeout=60)
    return seen


def top_imports(base_url: str, cwd: Path, env: dict[str, str], n: int = 8) -> list[tuple[str, float]]:
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", *command(base_url)[1:]],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    rows = []
    for line in proc.stderr.splitlines():
        if line.startswith("import time:") and "|" in line and "cumulative" not in line:
            _, cumulative, name = line.removeprefix("import time:").split("|")
            if not name.startswith("  "):  # top-level imports only (indentation = depth)
                rows.append((name.strip(), int(cumulative) / 1e6))
    return sorted(rows, key=lambda r: -r[1])[:n]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("INPUT_", "GITHUB_"))}
    with tempfile.TemporaryDirectory() as tmp, Emulator(EmulatorConfig(processing_seconds=0.0)) as emu:
        cwd = Path(tmp)
        (cwd / "p.md").write_text("Start-up probe.\n")
        times = [first_request_seconds(emu, cwd, env) for _ in range(args.runs)]
        imports = top_imports(emu.base_url, cwd, env)
    result = {"median_s": statistics.median(times), "min_s": min(times), "max_s": max(times), "imports": imports}
    if args.json:
        print(json.dumps(result))
        return 0
    print(
        f"process start to first request: median {result['median_s']:.2f} s "
        f"(min {result['min_s']:.2f}, max {result['max_s']:.2f}, {args.runs} runs)\n"
    )
    print("| top-level import | cumulative (s) |")
    print("|---|---:|")
    for name, seconds in imports:
        print(f"| `{name}` | {seconds:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
