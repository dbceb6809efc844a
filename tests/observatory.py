"""A repository like the origin's, built by the tests: workflows, the scripts they run, and a metrics
log of four weeks (2026-10-26 to 2026-11-22) with the token counts below."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from batch_arbiter.core.metrics import append
from batch_arbiter.core.pricing import PriceTable
from batch_arbiter.core.records import Usage
from batch_arbiter.providers.registry import price_table

START = date(2026, 10, 26)  # a Monday
DAYS = 28

WORKFLOWS: dict[str, str] = {
    "feature-ideation.yml": """\
name: Feature Ideation
on:
  schedule:
    - cron: '17 3 * * *'   # nightly, 03:17 UTC
  workflow_dispatch:
    inputs:
      focus_area:
        description: Optional focus area
        required: false
permissions:
  contents: read
jobs:
  gather-signals:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v5
      - name: Collect issues, PRs and discussions
        run: ./scripts/gather-signals.sh > signals.json
      - uses: actions/upload-artifact@v4
        with:
          name: signals
          path: signals.json
  analyze:
    needs: gather-signals
    runs-on: ubuntu-latest
    timeout-minutes: 60
    permissions:
      discussions: write
      id-token: write
    steps:
      - uses: actions/checkout@v5
      - uses: actions/download-artifact@v4
        with:
          name: signals
      - name: Analyst
        uses: anthropics/claude-code-action@v1
        with:
          claude_code_oauth_token: ${{ secrets.CLAUDE_CODE_OAUTH_TOKEN }}
          claude_args: --model claude-opus-4-6 --allowed-tools Bash,Read,Glob,WebSearch
          prompt: |
            Read signals.json and propose three scoped features as Ideas discussions.
""",
    "daily-pr-review-health.yml": """\
name: Daily PR Review Health Check
on:
  schedule:
    - cron: '13 6 * * *'
  workflow_dispatch:
permissions:
  contents: read
  issues: write
jobs:
  health-check:
    runs-on: ubuntu-latest
    timeout-minutes: 20
    env:
      CLAUDE_CODE_OAUTH_TOKEN: ${{ secrets.CLAUDE_CODE_OAUTH_TOKEN }}
    steps:
      - uses: actions/checkout@v5
      - name: Install Claude Code CLI
        run: |
          if ! command -v claude >/dev/null 2>&1; then
            npm install -g @anthropic-ai/claude-code
          fi
          claude --version
      - name: Run health check
        env:
          GH_TOKEN: ${{ secrets.BOT_PAT }}
        run: bash scripts/pr_review_health.sh
      - name: Scan for runaway PRs (no LLM)
        run: bash scripts/pr_runaway_scan.sh
""",
    "actions-fleet-monitor.yml": """\
name: Actions Fleet Monitor
on:
  schedule:
    - cron: '27 6 * * *'
  workflow_dispatch:
jobs:
  monitor:
    runs-on: ubuntu-latest
    timeout-minutes: 30
    steps:
      - uses: actions/checkout@v5
      - name: Collect org runs
        env:
          GH_TOKEN: ${{ secrets.BOT_PAT }}
        run: gh run list --limit 200 --json name,conclusion > runs.json
      - name: Summarise failures
        env:
          ANTHROPIC_API_KEY: ${{ secrets.ANTHROPIC_API_KEY }}
        run: |
          timeout 600 claude --print --model claude-haiku-4-5 \\
            "Summarise the failing workflows in runs.json" >> "$GITHUB_STEP_SUMMARY"
""",
    "dependency-audit.yml": """\
name: Dependency Audit
on:
  push:
    branches: [main]
  pull_request:
jobs:
  audit:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v5
      - run: npm audit --json > audit.json || true
      - name: Triage advisories
        env:
          GEMINI_API_KEY: ${{ secrets.GEMINI_API_KEY }}
        run: gemini --model gemini-2.5-flash --prompt "Triage these advisories" < audit.json
""",
    "weekly-report.yml": """\
name: Weekly Report
on:
  schedule:
    - cron: '0 8 * * 1'   # Mondays
jobs:
  report:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v5
      - uses: actions/setup-python@v6
        with:
          python-version: '3.12'
      - run: pip install anthropic
      - name: Write the report
        env:
          ANTHROPIC_API_KEY: ${{ secrets.ANTHROPIC_API_KEY }}
        run: python scripts/weekly_report.py --out report.md
""",
    "docs-digest.yml": """\
name: Docs Digest
on:
  schedule:
    - cron: '30 2 * * 1-5'   # weekdays
jobs:
  digest:
    runs-on: ubuntu-latest
    timeout-minutes: 360
    steps:
      - uses: actions/checkout@v5
      - uses: actions/cache@v4
        with:
          path: metrics/token-usage.jsonl
          key: token-usage-${{ github.run_id }}
          restore-keys: token-usage-
      - id: digest
        uses: acme/batch-arbiter@v1
        with:
          prompt-files: prompts/digest/*.md
          model: claude-sonnet-5-5
          workload: docs-digest
          metrics-file: metrics/token-usage.jsonl
          api-key: ${{ secrets.ANTHROPIC_API_KEY }}
""",
    "ci.yml": """\
name: CI
on: [push, pull_request]
jobs:
  test:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v5
      - run: pip install -e . && pytest
""",
}

SCRIPTS: dict[str, str] = {
    "scripts/gather-signals.sh": """\
#!/usr/bin/env bash
set -euo pipefail
gh api graphql -f query='{ viewer { login } }'
gh issue list --json number,title --limit 100
""",
    "scripts/pr_review_health.sh": """\
#!/usr/bin/env bash
set -euo pipefail
gh run list --workflow pr-review.yml --json conclusion > runs.json
report=$(claude -p --model claude-sonnet-4-6 --output-format json < prompts/health.md)
echo "$report" > pr_review_health_report.md
""",
    "scripts/pr_runaway_scan.sh": """\
#!/usr/bin/env bash
gh pr list --json number,commits | jq '.[] | select(.commits | length > 40)'
""",
    "scripts/weekly_report.py": """\
import anthropic

client = anthropic.Anthropic()
message = client.messages.create(model="claude-sonnet-4-6", max_tokens=4000, messages=[])
""",
}

# Token counts per LLM call. Feature ideation makes three calls a run (origin-style: one record per call).
IDEATION_CALL = Usage(input_tokens=12_000, cache_read_tokens=30_000, cache_creation_tokens=8_000, output_tokens=3_000)
HEALTH_CALL = Usage(input_tokens=9_000, output_tokens=1_500)
FLEET_CALL = Usage(input_tokens=40_000, output_tokens=800)
DEPENDENCY_CALL = Usage(input_tokens=25_000, output_tokens=2_000)
WEEKLY_CALL = Usage(input_tokens=20_000, output_tokens=4_000)
DIGEST_RUN = Usage(input_tokens=60_000, cache_read_tokens=90_000, cache_creation_tokens=10_000, output_tokens=12_000)


def build_tree(root: Path) -> Path:
    """The repository; returns its `.github/workflows` directory."""
    workflows = root / ".github" / "workflows"
    workflows.mkdir(parents=True, exist_ok=True)
    for name, text in WORKFLOWS.items():
        (workflows / name).write_text(text, encoding="utf-8")
    for rel, text in SCRIPTS.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return workflows


def _origin(ts: datetime, workflow: str, model: str, engine: str, usage: Usage, run_id: str) -> dict[str, Any]:
    return {
        "ts": ts.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "workflow": workflow,
        "tier": "single",
        "engine": engine,
        "model": model,
        "input_tokens": usage.input_tokens,
        "cache_read_tokens": usage.cache_read_tokens,
        "cache_creation_tokens": usage.cache_creation_tokens,
        "output_tokens": usage.output_tokens,
        "et": 0,
        "run_id": run_id,
        "context": "",
    }


def build_metrics(path: Path, prices: PriceTable | None = None) -> Path:
    """Four weeks of records, written with the action's own appender."""
    prices = prices or price_table()
    run = 9_000_000
    for day in range(DAYS):
        d = START + timedelta(days=day)
        at = datetime(d.year, d.month, d.day, tzinfo=UTC)
        run += 10
        for call in range(3):
            ts = at + timedelta(hours=3, minutes=17 + 4 * call)
            append(path, _origin(ts, "feature-ideation", "claude-opus-4-6", "claude", IDEATION_CALL, str(run)))
        ts = at + timedelta(hours=6, minutes=14)
        append(path, _origin(ts, "daily-pr-review-health", "claude-sonnet-4-6", "claude", HEALTH_CALL, str(run + 1)))
        ts = at + timedelta(hours=6, minutes=28)
        append(path, _origin(ts, "actions-fleet-monitor", "claude-haiku-4-5", "claude", FLEET_CALL, str(run + 2)))
        if day % 2 == 0:  # pushes to main, every other day
            ts = at + timedelta(hours=14)
            append(path, _origin(ts, "dependency-audit", "gemini-2.5-flash", "gemini", DEPENDENCY_CALL, str(run + 3)))
        if d.weekday() == 0:
            ts = at + timedelta(hours=8, minutes=1)
            append(path, _origin(ts, "Weekly Report", "claude-sonnet-4-6", "claude", WEEKLY_CALL, str(run + 4)))
        if d.weekday() < 5:
            ts = at + timedelta(hours=3, minutes=5)
            append(path, _digest(ts, str(run + 5), prices, fallback=day == 9))
    return path


def _digest(ts: datetime, run_id: str, prices: PriceTable, fallback: bool) -> dict[str, Any]:
    """A batch-arbiter record; on one day one of its six requests ran in the sync fallback."""
    model = "claude-sonnet-5-5"
    on = ts.date()
    sync = prices.cost(model, DIGEST_RUN, on, batch=False)
    cost = prices.cost(model, DIGEST_RUN, on, batch=True)
    if fallback:
        cost += (sync - cost) / 6
    return {
        "ts": ts.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "workflow": "Docs Digest",
        "tier": "batch",
        "engine": "claude",
        "model": model,
        "input_tokens": DIGEST_RUN.input_tokens,
        "cache_read_tokens": DIGEST_RUN.cache_read_tokens,
        "cache_creation_tokens": DIGEST_RUN.cache_creation_tokens,
        "output_tokens": DIGEST_RUN.output_tokens,
        "et": 0,
        "run_id": run_id,
        "context": f"https://github.com/acme/app/actions/runs/{run_id}",
        "workload": "docs-digest",
        "provider": "anthropic",
        "mode": "batch+fallback" if fallback else "batch",
        "requests": 6,
        "cost_usd": round(cost, 8),
        "sync_cost_usd": round(sync, 8),
        "savings_usd": round(sync - cost, 8),
        "cache_creation_1h_tokens": 0,
    }
