"""The workflow audit: cron frequency, LLM step detection, classification, the savings estimate."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest
from croniter import croniter_range

from batch_arbiter.cli import main
from batch_arbiter.core.policy import Policy, Rule, decide
from batch_arbiter.observatory.audit import (
    BATCHED,
    CANDIDATE,
    NO_LLM,
    SYNC,
    Assumption,
    Audit,
    run_audit,
    to_json,
    to_markdown,
)
from batch_arbiter.observatory.cron import CronError, parse
from observatory import build_metrics, build_tree
from support import run_action

ON = date(2026, 11, 24)
DAYS_PER_MONTH = 365.2425 / 12  # the Gregorian calendar's average month
WEEKDAY_PER_MONTH = 20871 / 4800  # 400 years hold exactly 20871 of each weekday


@pytest.mark.parametrize(
    ("expr", "per_month"),
    [
        ("0 6 * * *", DAYS_PER_MONTH),
        ("7 7 * * 5", WEEKDAY_PER_MONTH),
        ("*/15 * * * *", 96 * DAYS_PER_MONTH),
        ("0,30 8 * * *", 2 * DAYS_PER_MONTH),  # list
        ("0 9-17 * * 1-5", 9 * 5 * WEEKDAY_PER_MONTH),  # ranges
        ("15 */6 * * SAT,SUN", 4 * 2 * WEEKDAY_PER_MONTH),  # step, names
        ("0 0 * * 0,7", WEEKDAY_PER_MONTH),  # 0 and 7 are both Sunday
        ("0 0 1 * *", 1.0),
        ("0 0 */10 * *", 3 + 7 / 12),  # days 1, 11, 21 every month; 31 in seven months
        ("0 0 29 2 *", 97 / 4800),  # leap days: 97 in 400 years
        ("0 12 31 4 *", 0.0),  # April has no 31st
        ("5 4 1-7 * 1-5/2", None),  # both day fields restricted: checked against croniter below
    ],
)
def test_runs_per_month(expr: str, per_month: float | None) -> None:
    cron = parse(expr)
    if per_month is not None:
        assert cron.runs_per_month == pytest.approx(per_month, rel=1e-12, abs=1e-12)
    else:
        assert cron.runs_per_month > 0


# Day-of-month and day-of-week together fire on either (cron's OR rule), unless one of them is `*`.
TRICKY = [
    "0 12 1,15 * 5",
    "5 4 1-7 * 1-5/2",
    "0 0 */2 * 1",
    "30 2 13 * FRI",
    "0 0 * JAN-MAR MON",
    "*/20 1-3 * 2 *",
    "0 0 29 2 0",
    "0 9-17/4 10-20 6,12 *",
]
MONTHS = [(2026, m) for m in range(1, 13)] + [(2028, 2), (2100, 2)]


@pytest.mark.parametrize("expr", TRICKY)
def test_month_counts_agree_with_croniter(expr: str) -> None:
    cron = parse(expr)
    for year, month in MONTHS:
        start = datetime(year, month, 1)
        end = (start + timedelta(days=32)).replace(day=1) - timedelta(minutes=1)
        expected = sum(1 for _ in croniter_range(start, end, expr))
        assert cron.runs_in_month(year, month) == expected, (expr, year, month)


def test_or_rule_for_both_day_fields_by_hand() -> None:
    # March 2026: the 1st and 15th are Sundays; its Fridays are the 6th, 13th, 20th and 27th.
    assert parse("0 12 1,15 * 5").runs_in_month(2026, 3) == 6
    # With day-of-week `*`, only the days of the month count (and vice versa).
    assert parse("0 12 1,15 * *").runs_in_month(2026, 3) == 2
    assert parse("0 12 * * 5").runs_in_month(2026, 3) == 4


@pytest.mark.parametrize(
    "expr",
    [
        "0 0 * *",
        "0 0 * * * *",
        "61 * * * *",
        "0 24 * * *",
        "0 0 L * *",
        "0 0 * * 5#2",
        "@daily",
        "0 0 ? * *",
        "0 0 * * FOO",
        "0 0 1W * *",
        "H 0 * * *",
    ],
)
def test_expressions_github_rejects(expr: str) -> None:
    with pytest.raises(CronError, match="cron"):
        parse(expr)


# -- the fixture repository ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("repo")
    build_tree(root)
    build_metrics(root / "metrics" / "token-usage.jsonl")
    return root


@pytest.fixture(scope="module")
def audit(repo: Path) -> Audit:
    return run_audit(repo / ".github" / "workflows", [repo / "metrics" / "token-usage.jsonl"], on=ON)


def _by_file(audit: Audit) -> dict[str, object]:
    return {w.workflow.stem: w for w in audit.workloads}


def test_llm_steps_are_found_where_the_origin_puts_them(audit: Audit) -> None:
    found = {w.workflow.stem: [(s.kind, s.engine, s.model, s.job) for s in w.steps] for w in audit.workloads}
    assert found == {
        "feature-ideation": [("claude-code-action", "claude", "claude-opus-4-6", "analyze")],
        "daily-pr-review-health": [("claude CLI", "claude", "claude-sonnet-4-6", "health-check")],
        "actions-fleet-monitor": [("claude CLI", "claude", "claude-haiku-4-5", "monitor")],
        "dependency-audit": [("gemini CLI", "gemini", "gemini-2.5-flash", "audit")],
        "weekly-report": [("API call", "claude", "claude-sonnet-4-6", "report")],
        "docs-digest": [("batch-arbiter", "claude", "claude-sonnet-5-5", "digest")],
        "ci": [],
    }
    health = next(w for w in audit.workloads if w.workflow.stem == "daily-pr-review-health")
    assert health.steps[0].evidence == "scripts/pr_review_health.sh: `claude -p`"
    assert health.steps[0].step == "Run health check"


def test_classification_follows_the_routing_policy(audit: Audit) -> None:
    verdicts = {w.workflow.stem: w.verdict for w in audit.workloads}
    assert verdicts == {
        "feature-ideation": CANDIDATE,
        "weekly-report": CANDIDATE,
        "docs-digest": BATCHED,
        "actions-fleet-monitor": SYNC,
        "daily-pr-review-health": SYNC,
        "dependency-audit": SYNC,
        "ci": NO_LLM,
    }
    events = {"dependency-audit": "push"}
    for w in audit.workloads:
        if w.verdict == NO_LLM:
            assert w.decision is None
            continue
        assert w.decision == decide(w.name, "auto", events.get(w.workflow.stem, "schedule"))
    reasons = {w.workflow.stem: w.decision.reason for w in audit.workloads if w.decision}
    assert reasons["daily-pr-review-health"] == "PR review needs a real-time answer"
    assert reasons["actions-fleet-monitor"] == "fleet monitoring stays synchronous"
    assert reasons["dependency-audit"] == "dependency audits stay synchronous"
    assert [w.workflow.stem for w in audit.candidates] == ["feature-ideation", "weekly-report"]


def test_a_policy_file_changes_the_verdict(repo: Path) -> None:
    policy = Policy(rules=[Rule(match="weekly-report", mode="sync", reason="the team reads it at 08:05")])
    result = run_audit(repo / ".github" / "workflows", policy=policy, on=ON)
    weekly = next(w for w in result.workloads if w.workflow.stem == "weekly-report")
    assert weekly.verdict == SYNC
    assert weekly.decision is not None and weekly.decision.reason == "the team reads it at 08:05"


def test_savings_estimate_by_hand(audit: Audit) -> None:
    """Prices (USD per million tokens): opus-4-6 5 / 0.5 / 6.25 / 25, sonnet-4-6 3 / 15, haiku-4-5 1 / 5,
    gemini-2.5-flash 0.30 / 2.50, sonnet-5-5 (after 2026-10-07) 2 / 0.10 / 2.50 / 10; batch halves them."""
    ideation_run = (36_000 * 5 + 90_000 * 0.5 + 24_000 * 6.25 + 9_000 * 25) / 1e6  # three calls a run: $0.60
    weekly_run = (20_000 * 3 + 4_000 * 15) / 1e6  # $0.12
    health_run = (9_000 * 3 + 1_500 * 15) / 1e6
    fleet_run = (40_000 * 1 + 800 * 5) / 1e6
    dependency_run = (25_000 * 0.30 + 2_000 * 2.50) / 1e6
    digest_run = (60_000 * 2 + 90_000 * 0.10 + 10_000 * 2.50 + 12_000 * 10) / 1e6
    # Docs digest: 20 runs recorded at half price, one of them with 1 of its 6 requests at full price.
    digest_ratio = (20 * 0.5 + 0.5 / 6) / 20
    dependency_runs = 13 / 26 * DAYS_PER_MONTH  # 14 pushes, every other day: 13 intervals in 26 days

    expected = {
        "feature-ideation": (ideation_run * DAYS_PER_MONTH, ideation_run * DAYS_PER_MONTH / 2),
        "weekly-report": (weekly_run * WEEKDAY_PER_MONTH, weekly_run * WEEKDAY_PER_MONTH / 2),
        "docs-digest": (digest_run * 5 * WEEKDAY_PER_MONTH * digest_ratio,) * 2,
        "daily-pr-review-health": (health_run * DAYS_PER_MONTH,) * 2,
        "actions-fleet-monitor": (fleet_run * DAYS_PER_MONTH,) * 2,
        "dependency-audit": (dependency_run * dependency_runs,) * 2,
    }
    got = {}
    for w in audit.workloads:
        m = w.monthly()
        if m is not None:
            got[w.workflow.stem] = (m[2], m[3])
    # Recorded costs are rounded to 8 decimals in the log, hence the tolerance.
    assert got == {k: pytest.approx(v, rel=1e-7) for k, v in expected.items()}
    assert ideation_run == pytest.approx(0.60) and weekly_run == pytest.approx(0.12)
    totals = audit.totals()
    assert totals["now_usd"] == pytest.approx(sum(v[0] for v in expected.values()), rel=1e-9)
    assert totals["savings_usd"] == pytest.approx(
        ideation_run * DAYS_PER_MONTH / 2 + weekly_run * WEEKDAY_PER_MONTH / 2, rel=1e-9
    )
    bases = {w.workflow.stem: (w.estimate.basis if w.estimate else None, w.runs_basis) for w in audit.workloads}
    assert bases["dependency-audit"] == ("measured", "metrics")
    assert bases["feature-ideation"] == ("measured", "schedule")


def test_markdown_and_json_report(audit: Audit) -> None:
    md = to_markdown(audit)
    assert md.startswith("## batch-arbiter audit: 2 batch candidates in 7 workflow files")
    assert "saving **$9.39 a month**" in md
    assert "```mermaid\n" in md and "xychart-beta" in md
    assert '"Feature Ideation", "Weekly Report", "docs-digest"' in md
    assert "| Feature Ideation | batch candidate | `claude-opus-4-6` | 36,000 / 90,000 / 24,000 / 9,000 | 30.44 |" in md
    assert "measured: 28 runs, 2026-10-26 to 2026-11-22" in md
    assert "(assumed from the schedule)" in md and "No LLM call found in: `.github/workflows/ci.yml`" in md
    data = to_json(audit)
    json.dumps(data)
    assert data["batch_candidates"] == ["Feature Ideation", "Weekly Report"]
    assert data["monthly_usd"]["savings_usd"] == pytest.approx(audit.totals()["savings_usd"], abs=1e-4)
    ideation = next(w for w in data["workloads"] if w["file"].endswith("feature-ideation.yml"))
    assert ideation["schedules"] == [{"cron": "17 3 * * *", "runs_per_month": pytest.approx(DAYS_PER_MONTH)}]
    assert ideation["upgrade"] is True and any("upgrades it to" in n for n in ideation["notes"])


def test_unmeasured_workloads_use_the_assumption_and_say_so(repo: Path, tmp_path: Path) -> None:
    result = run_audit(repo / ".github" / "workflows", on=ON, assume=Assumption(10_000, 1_000))
    weekly = next(w for w in result.workloads if w.workflow.stem == "weekly-report")
    assert weekly.estimate is not None and weekly.estimate.basis == "assumed"
    # The model the script names, claude-sonnet-4-6 ($3 / $15): $0.045 a run, synchronously.
    assert weekly.estimate.models == ["claude-sonnet-4-6"]
    assert weekly.monthly() == pytest.approx(
        (0.045 * WEEKDAY_PER_MONTH, 0.0225 * WEEKDAY_PER_MONTH, 0.045 * WEEKDAY_PER_MONTH, 0.0225 * WEEKDAY_PER_MONTH)
    )
    assert "assumed tokens per run" in to_markdown(result)
    bare = run_audit(repo / ".github" / "workflows", on=ON)
    assert bare.estimated == [] and "no metrics for this workload" in to_markdown(bare)
    # A step that names no model: the provider's default, claude-sonnet-5-5 ($2 / $10).
    workflows = _tree(
        tmp_path,
        {
            ".github/workflows/n.yml": "on:\n  schedule:\n    - cron: '0 1 * * *'\njobs:\n  x:\n    steps:\n"
            "      - run: claude -p 'go'\n"
        },
    )
    (nightly,) = run_audit(workflows, on=ON, assume=Assumption(10_000, 1_000)).workloads
    assert nightly.estimate is not None and nightly.estimate.models == ["claude-sonnet-5-5"]
    assert nightly.estimate.sync_per_run == pytest.approx(0.03)


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path / ".github" / "workflows"


def test_malformed_files_are_reported_by_name_and_the_rest_is_audited(tmp_path: Path) -> None:
    workflows = _tree(
        tmp_path,
        {
            ".github/workflows/broken.yml": "name: Broken\non:\n  schedule:\n    - cron: '0 1 * * *'\n   jobs: [\n",
            ".github/workflows/list.yaml": "- just\n- a list\n",
            ".github/workflows/bad-cron.yml": (
                "name: Bad Cron\non:\n  schedule:\n    - cron: '0 0 L * *'\njobs:\n  x:\n    runs-on: ubuntu-latest\n"
                "    steps:\n      - run: claude -p 'hello'\n"
            ),
            ".github/workflows/ok.yml": (
                "name: Nightly Summary\non:\n  schedule:\n    - cron: '0 2 * * *'\njobs:\n  x:\n"
                "    runs-on: ubuntu-latest\n    steps:\n      - run: claude -p 'summarise'\n"
            ),
            ".github/workflows/README.md": "not a workflow",
        },
    )
    result = run_audit(workflows, on=ON)
    assert result.files == 4
    assert len(result.problems) == 3
    bad_cron, broken, listed = sorted(result.problems)
    assert bad_cron.startswith(".github/workflows/bad-cron.yml: cron '0 0 L * *'")
    assert broken.startswith(".github/workflows/broken.yml: invalid YAML at line 5")
    assert listed == ".github/workflows/list.yaml: not a workflow (the top level is not a mapping)"
    audited = [(w.name, w.verdict, w.runs_per_month) for w in result.workloads]
    assert audited == [("Bad Cron", CANDIDATE, 0.0), ("Nightly Summary", CANDIDATE, pytest.approx(DAYS_PER_MONTH))]
    assert "broken.yml: invalid YAML at line 5" in to_markdown(result)


def test_cli_warns_with_the_file_name_and_still_reports(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    workflows = _tree(tmp_path, {".github/workflows/broken.yml": "on: [push\n"})
    assert main(["audit", "--workflows", str(workflows), "--json"]) == 0
    out, err = capsys.readouterr()
    assert "warning: .github/workflows/broken.yml: invalid YAML" in err
    assert json.loads(out)["problems"][0].startswith(".github/workflows/broken.yml: invalid YAML")
    assert main(["audit", "--workflows", str(tmp_path / "nowhere")]) == 2
    assert "workflows directory not found" in capsys.readouterr().err


def test_more_ways_to_call_an_llm(tmp_path: Path) -> None:
    workflows = _tree(
        tmp_path,
        {
            ".github/workflows/caller.yml": """\
name: Release Notes
on:
  schedule:
    - cron: '0 4 * * 1'
jobs:
  local:
    uses: ./.github/workflows/notes-reusable.yml
  remote:
    uses: acme/shared/.github/workflows/triage.yml@v2
    secrets:
      CLAUDE_CODE_OAUTH_TOKEN: ${{ secrets.CLAUDE_CODE_OAUTH_TOKEN }}
  harmless-remote:
    uses: acme/shared/.github/workflows/lint.yml@v2
  inline:
    runs-on: ubuntu-latest
    steps:
      - run: |
          curl -s https://api.anthropic.com/v1/messages -H "x-api-key: $KEY" -d @req.json
      - run: npx -y @anthropic-ai/claude-code@latest -p "write notes" --model claude-opus-4-8
      - uses: google-github-actions/run-gemini-cli@v0
        with:
          gemini_model: gemini-2.5-pro
      - name: Opaque script
        env:
          GEMINI_API_KEY: ${{ secrets.GEMINI_API_KEY }}
        run: ./tools/not-in-this-repo.sh
""",
            ".github/workflows/notes-reusable.yml": """\
on: workflow_call
jobs:
  write:
    runs-on: ubuntu-latest
    steps:
      - run: python -m pip install anthropic
      - run: python scripts/notes.py
""",
            "scripts/notes.py": "from anthropic import Anthropic\n",
        },
    )
    result = run_audit(workflows, on=ON)
    assert [w.workflow.stem for w in result.workloads] == ["caller"]  # the reusable is audited inside its caller
    kinds = [(s.job, s.kind, s.engine, s.model) for s in result.workloads[0].steps]
    assert kinds == [
        ("local → write", "API call", "claude", None),
        ("remote", "reusable workflow", "claude", None),
        ("inline", "API call", "claude", None),
        ("inline", "claude CLI", "claude", "claude-opus-4-8"),
        ("inline", "gemini CLI", "gemini", "gemini-2.5-pro"),
        ("inline", "LLM credential", "gemini", None),
    ]


def test_workflow_named_otherwise_is_routed_by_its_file_name(tmp_path: Path) -> None:
    workflows = _tree(
        tmp_path,
        {
            ".github/workflows/feature-ideation.yml": (
                "name: Feature Research & Ideation (Analyst)\non:\n  schedule:\n    - cron: '7 7 * * 5'\n"
                "  discussion:\n    types: [created]\njobs:\n  x:\n    runs-on: ubuntu-latest\n    steps:\n"
                "      - uses: anthropics/claude-code-action@v1\n"
            )
        },
    )
    (w,) = run_audit(workflows, on=ON).workloads
    assert (w.name, w.verdict) == ("feature-ideation", CANDIDATE)
    assert "give the step `workload: feature-ideation`" in " ".join(w.notes)


def test_audit_mode_of_the_action(repo: Path) -> None:
    run = run_action(repo, None, mode="audit", metrics_file="metrics/*.jsonl", api_key="")
    assert run.code == 0, run.log
    assert run.summary.startswith("## batch-arbiter audit: 2 batch candidates in 7 workflow files")
    assert "```mermaid" in run.summary
    assert run.outputs["mode"] == "audit"
    assert run.outputs["batch-candidates"] == "Feature Ideation,Weekly Report"
    assert run.outputs["monthly-savings-usd"] == "9.39"
    saved = json.loads((repo / "batch-results" / "audit.json").read_text())
    assert saved["batch_candidates"] == ["Feature Ideation", "Weekly Report"]


def test_benchmark_script_runs_at_a_tiny_size() -> None:
    bench = Path(__file__).resolve().parents[2] / "bench" / "audit_200.py"
    proc = subprocess.run(
        [sys.executable, str(bench), "--files", "12", "--records", "40", "--repeat", "1", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert (result["files"], result["workloads"], result["problems"]) == (12, 12, 0)
    assert result["candidates"] > 0 and result["in_process_best_s"] > 0


def test_audit_mode_does_not_write_through_a_planted_symlink(repo: Path) -> None:
    target = repo.parent / "outside.txt"
    target.write_text("keep me")
    (repo / "batch-results").mkdir(exist_ok=True)
    link = repo / "batch-results" / "audit.md"
    link.unlink(missing_ok=True)  # the repository fixture is shared with the other audit-mode tests
    link.symlink_to(target)
    run = run_action(repo, None, mode="audit", metrics_file="metrics/*.jsonl", api_key="")
    assert run.code == 0, run.log
    assert target.read_text() == "keep me"
    written = repo / "batch-results" / "audit.md"
    assert not written.is_symlink() and written.read_text().startswith("## batch-arbiter audit")
