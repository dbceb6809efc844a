"""How long `batch-arbiter audit` takes on a tree of many workflow files (200 by default).

    python bench/audit_200.py [--files 200] [--records 20000] [--repeat 5] [--json]

Generates a repository in a temporary directory: workflow files of every kind the audit recognises
(cron and push triggers, claude-code-action, `claude -p` in scripts, the gemini CLI, API scripts,
this action, local reusable workflows, files with no LLM call), the scripts they run, and a metrics
log. Reports the in-process audit time (best and median of --repeat) and the wall time of the
`batch-arbiter audit` command in a fresh process (interpreter start-up included).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from batch_arbiter.core.metrics import append
from batch_arbiter.observatory.audit import run_audit, to_json, to_markdown

CRONS = ["17 3 * * *", "0 8 * * 1", "*/30 * * * *", "0 9-17 * * 1-5", "0 0 1,15 * 5", "5 4 */2 * *", "0 6 * * 0,6"]
NAMES = ["feature-ideation", "pr-review-health", "fleet-monitor", "weekly-report", "release-notes", "triage", "docs"]


def _workflow(i: int) -> str:
    name = f"{NAMES[i % len(NAMES)]}-{i:03d}"
    trigger = (
        f"  schedule:\n    - cron: '{CRONS[i % len(CRONS)]}'\n  workflow_dispatch:\n"
        if i % 5
        else "  push:\n    branches: [main]\n  pull_request:\n"
    )
    kind = i % 6
    if kind == 0:
        step = (
            "      - uses: anthropics/claude-code-action@v1\n        with:\n"
            "          claude_args: --model claude-opus-4-6\n"
        )
    elif kind == 1:
        step = (
            f"      - run: bash scripts/job_{i:03d}.sh\n        env:\n"
            "          CLAUDE_CODE_OAUTH_TOKEN: ${{ secrets.CLAUDE_CODE_OAUTH_TOKEN }}\n"
        )
    elif kind == 2:
        step = "      - run: gemini --model gemini-2.5-flash --prompt 'triage' < in.json\n"
    elif kind == 3:
        step = f"      - run: python scripts/job_{i:03d}.py\n"
    elif kind == 4:
        step = (
            "      - uses: acme/batch-arbiter@v1\n        with:\n          prompt-files: prompts/*.md\n"
            f"          workload: {name}\n"
        )
    else:
        step = "      - run: make test\n"
    filler = "".join(f"      - name: housekeeping {k}\n        run: echo step {k} && ls -la\n" for k in range(12))
    return (
        f"name: {name}\non:\n{trigger}permissions:\n  contents: read\njobs:\n  main:\n"
        f"    runs-on: ubuntu-latest\n    timeout-minutes: 30\n    steps:\n"
        f"      - uses: actions/checkout@v5\n{filler}{step}"
    )


def build(root: Path, files: int, records: int) -> tuple[Path, Path]:
    workflows = root / ".github" / "workflows"
    workflows.mkdir(parents=True)
    (root / "scripts").mkdir()
    for i in range(files):
        (workflows / f"wf-{i:03d}.yml").write_text(_workflow(i))
        (root / "scripts" / f"job_{i:03d}.sh").write_text(
            "#!/usr/bin/env bash\nset -euo pipefail\n" + "gh api repos/x/y\n" * 30 + "claude -p --model x < p.md\n"
        )
        (root / "scripts" / f"job_{i:03d}.py").write_text("import anthropic\n" + "x = 1\n" * 200)
    metrics = root / "token-usage.jsonl"
    start = datetime(2026, 10, 1, tzinfo=UTC)
    lines = []
    for n in range(records):
        i = n % files
        lines.append(
            json.dumps(
                {
                    "ts": (start + timedelta(minutes=7 * n)).strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "workflow": f"{NAMES[i % len(NAMES)]}-{i:03d}",
                    "tier": "single",
                    "engine": "claude",
                    "model": "claude-sonnet-4-6",
                    "input_tokens": 10_000 + n % 997,
                    "cache_read_tokens": 0,
                    "cache_creation_tokens": 0,
                    "output_tokens": 1_000,
                    "et": 0,
                    "run_id": str(n // 2),
                    "context": "",
                }
            )
        )
    metrics.write_text("".join(line + "\n" for line in lines[:-1]))
    if lines:
        append(metrics, json.loads(lines[-1]))
    return workflows, metrics


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=200)
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        workflows, metrics = build(Path(tmp), args.files, args.records)
        times = []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            audit = run_audit(workflows, [metrics])
            to_markdown(audit)
            to_json(audit)
            times.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-m", "batch_arbiter", "audit", "--workflows", str(workflows), "--metrics", str(metrics)],
            capture_output=True,
            text=True,
            check=False,
            env={"PATH": "/usr/bin:/bin"},
        )
        cli = time.perf_counter() - t0
        if proc.returncode != 0:
            print(proc.stderr, file=sys.stderr)
            return 1
    result = {
        "files": args.files,
        "records": args.records,
        "workloads": len(audit.workloads),
        "candidates": len(audit.candidates),
        "problems": len(audit.problems),
        "in_process_best_s": round(min(times), 4),
        "in_process_median_s": round(statistics.median(times), 4),
        "cli_wall_s": round(cli, 3),
    }
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:>20}: {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
