"""Reads a `.github/workflows` tree: triggers, cron schedules, and the steps that call an LLM.

What counts as an LLM call: this action; `anthropics/claude-code-action`; Google's `run-gemini-cli`;
`claude -p`/`--print` and the `gemini` CLI in a `run:` script or in a script file it runs; code or
scripts that use the Anthropic or Gemini APIs or SDKs; a reusable workflow given an LLM credential;
and, when nothing more specific is found, a step or job handed an LLM credential.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from batch_arbiter.core.tools import cli_tool_names
from batch_arbiter.observatory.cron import Cron, CronError, parse

# Credentials that give a step away as an LLM caller, and the engine each belongs to.
CREDENTIALS = {
    "ANTHROPIC_API_KEY": "claude",
    "CLAUDE_CODE_OAUTH_TOKEN": "claude",
    "ANTHROPIC_AUTH_TOKEN": "claude",
    "GEMINI_API_KEY": "gemini",
    "GOOGLE_API_KEY": "gemini",
}
API_MARKERS: tuple[tuple[re.Pattern[str], str, str], ...] = tuple(
    (re.compile(pattern, re.MULTILINE), engine, label)
    for pattern, engine, label in (
        (r"api\.anthropic\.com", "claude", "calls api.anthropic.com"),
        (r"^\s*(?:import anthropic\b|from anthropic\b)", "claude", "uses the anthropic SDK"),
        (r"@anthropic-ai/sdk|@anthropic-ai/claude-agent-sdk", "claude", "uses the Anthropic SDK"),
        (r"\bclaude_agent_sdk\b", "claude", "uses the Claude Agent SDK"),
        (r"generativelanguage\.googleapis\.com", "gemini", "calls the Gemini API"),
        (r"from google import genai|\bgoogle\.genai\b|\bgoogle\.generativeai\b", "gemini", "uses the Gemini SDK"),
        (r"@google/genai|@google/generative-ai", "gemini", "uses the Gemini SDK"),
    )
)
SCRIPT_SUFFIXES = (".sh", ".bash", ".py", ".js", ".mjs", ".cjs", ".ts", ".rb")
INTERPRETERS = {"bash", "sh", "zsh", "python", "python3", "node", "ruby", "tsx", "ts-node", "deno", "bun"}
# Words that may precede the command itself on a line.
PREFIXES = {"sudo", "exec", "env", "time", "nohup", "command", "if", "then", "do", "else", "elif", "while", "!"}
MAX_SCRIPT_BYTES = 2_000_000
MAX_DEPTH = 3

_SEGMENT_SPLIT = re.compile(r"\|\||&&|[|;&`]|\$\(|\(|\)")
_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
_MODEL_FLAG = re.compile(r"(?:--model|-m)[=\s]+['\"]?([A-Za-z0-9._:/-]+)")
# A model id written in code or a request body: `model="claude-..."`, `"model": "gemini-..."`.
_MODEL_IN_CODE = re.compile(r"\bmodel['\"]?\s*[=:]\s*['\"]((?:claude|gemini)-[A-Za-z0-9._-]+)['\"]")
# How Claude Code and the Gemini CLI are told which tools an agent may use without asking.
_ALLOWED_TOOLS_FLAGS = ("--allowed-tools", "--allowedTools", "--allowed_tools")

# (kind, engine, model, evidence, allowed tools) of one LLM call found in a snippet or script.
_Hit = tuple[str, str, str | None, str, tuple[str, ...] | None]


@dataclass(frozen=True, slots=True)
class LlmStep:
    job: str
    step: str
    kind: str
    engine: str
    model: str | None
    evidence: str
    # The `with:` of a batch-arbiter step (mode, workload, model...), else empty.
    inputs: Mapping[str, str] = field(default_factory=dict)
    # An agent step's allowed tools as the CLI names them (`Read`, `Bash`); None when the step does not say.
    tools: tuple[str, ...] | None = None

    @property
    def is_arbiter(self) -> bool:
        return self.kind == "batch-arbiter"


@dataclass(frozen=True, slots=True)
class Schedule:
    expr: str
    cron: Cron | None


@dataclass
class WorkflowFile:
    rel: str
    name: str
    events: list[str] = field(default_factory=list)
    schedules: list[Schedule] = field(default_factory=list)
    steps: list[LlmStep] = field(default_factory=list)
    local_calls: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    valid: bool = True

    @property
    def stem(self) -> str:
        return PurePosixPath(self.rel).stem

    @property
    def crons(self) -> list[Cron]:
        return [s.cron for s in self.schedules if s.cron is not None]

    @property
    def runs_per_month(self) -> float:
        return sum(c.runs_per_month for c in self.crons)


def _workflow_loader() -> type[Any]:
    """YAML as GitHub reads workflows: only true/false are booleans, so `on:` stays a key.

    Built on libyaml's loader when PyYAML has it: parsing is most of an audit's time.
    """
    base = yaml.CSafeLoader if getattr(yaml, "__with_libyaml__", False) else yaml.SafeLoader
    loader: type[Any] = type("WorkflowLoader", (base,), {})
    loader.yaml_implicit_resolvers = {
        first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:bool"]
        for first, resolvers in base.yaml_implicit_resolvers.items()
    }
    loader.add_implicit_resolver(
        "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
    )
    return loader


_Loader = _workflow_loader()


def workflow_files(directory: Path) -> list[Path]:
    """The files GitHub reads: `*.yml` and `*.yaml` directly in the directory."""
    return sorted(p for p in directory.iterdir() if p.suffix in (".yml", ".yaml") and p.is_file())


def scan(directory: Path, repo_root: Path | None = None) -> list[WorkflowFile]:
    root = repo_root or _default_root(directory)
    scanner = _Scanner(root)
    return [scanner.workflow(path, _rel(path, root)) for path in workflow_files(directory)]


def _default_root(directory: Path) -> Path:
    resolved = directory.resolve()
    if resolved.name == "workflows" and resolved.parent.name == ".github":
        return resolved.parent.parent
    return resolved


def _rel(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()


def load_yaml(path: Path, rel: str) -> tuple[Any, str | None]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return None, f"{rel}: cannot read: {exc}"
    try:
        return yaml.load(text, Loader=_Loader), None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        return None, f"{rel}: invalid YAML{where}: {exc.problem or exc.context}"
    except yaml.YAMLError as exc:
        return None, f"{rel}: invalid YAML: {exc}"


class _Scanner:
    def __init__(self, root: Path) -> None:
        self.root = root
        self._script_cache: dict[Path, list[_Hit]] = {}

    def workflow(self, path: Path, rel: str) -> WorkflowFile:
        data, error = load_yaml(path, rel)
        if error is not None:
            return WorkflowFile(rel, rel, problems=[error], valid=False)
        if not isinstance(data, dict):
            return WorkflowFile(
                rel, rel, problems=[f"{rel}: not a workflow (the top level is not a mapping)"], valid=False
            )
        name = data.get("name")
        wf = WorkflowFile(rel, name.strip() if isinstance(name, str) and name.strip() else rel)
        if "on" not in data:
            wf.problems.append(f"{rel}: no `on:` triggers")
        self._triggers(wf, data.get("on"))
        jobs = data.get("jobs")
        if not isinstance(jobs, dict):
            wf.problems.append(f"{rel}: no `jobs:` mapping")
            return wf
        self._jobs(wf, jobs, data.get("env"), depth=0, seen={rel})
        return wf

    def _triggers(self, wf: WorkflowFile, on: Any) -> None:
        if isinstance(on, str):
            wf.events = [on]
        elif isinstance(on, list):
            wf.events = [str(e) for e in on]
        elif isinstance(on, dict):
            wf.events = [str(e) for e in on]
            entries = on.get("schedule")
            if "schedule" in on and not isinstance(entries, list):
                wf.problems.append(f"{wf.rel}: `schedule` must be a list of `- cron:` entries")
            for entry in entries if isinstance(entries, list) else []:
                expr = entry.get("cron") if isinstance(entry, dict) else None
                if not isinstance(expr, str):
                    wf.problems.append(f"{wf.rel}: schedule entry without a `cron` string: {entry!r}")
                    continue
                try:
                    wf.schedules.append(Schedule(expr, parse(expr)))
                except CronError as exc:
                    wf.schedules.append(Schedule(expr, None))
                    wf.problems.append(f"{wf.rel}: {exc}")

    def _jobs(self, wf: WorkflowFile, jobs: dict[Any, Any], env: Any, depth: int, seen: set[str]) -> None:
        for job_id, job in jobs.items():
            if not isinstance(job, dict):
                continue
            job_name = str(job_id)
            uses = job.get("uses")
            if isinstance(uses, str):
                self._reusable(wf, job_name, uses, job, depth, seen)
                continue
            found_before = len(wf.steps)
            steps = job.get("steps")
            for index, step in enumerate(steps if isinstance(steps, list) else []):
                if isinstance(step, dict):
                    self._step(wf, job_name, index, step, job.get("defaults"))
            if len(wf.steps) == found_before:
                credential = _credential(job.get("env")) or _credential(env)
                if credential and isinstance(steps, list) and any(isinstance(s, dict) and "run" in s for s in steps):
                    wf.steps.append(
                        LlmStep(
                            job_name,
                            "(job)",
                            "LLM credential",
                            CREDENTIALS[credential],
                            None,
                            f"the job is given {credential}; no call found in the files it runs",
                        )
                    )

    def _reusable(
        self, wf: WorkflowFile, job: str, uses: str, spec: dict[Any, Any], depth: int, seen: set[str]
    ) -> None:
        if uses.startswith("./"):
            rel = uses[2:].split("@", 1)[0]
            wf.local_calls.append(rel)
            path = self.root / rel
            if rel in seen or depth >= MAX_DEPTH:
                return
            data, error = (
                load_yaml(path, rel) if path.is_file() else (None, f"{wf.rel}: job {job} calls {uses}, not found")
            )
            if error is not None:
                wf.problems.append(error)
                return
            if not isinstance(data, dict):
                wf.problems.append(f"{rel}: not a workflow (the top level is not a mapping)")
                return
            jobs = data.get("jobs")
            if isinstance(jobs, dict):
                before = len(wf.steps)
                self._jobs(wf, jobs, data.get("env"), depth + 1, seen | {rel})
                wf.steps[before:] = [
                    LlmStep(f"{job} → {s.job}", s.step, s.kind, s.engine, s.model, s.evidence, s.inputs, s.tools)
                    for s in wf.steps[before:]
                ]
            return
        secrets = spec.get("secrets")
        credential = _credential(secrets) or _credential(spec.get("with"))
        if credential:
            wf.steps.append(
                LlmStep(
                    job,
                    "(reusable workflow)",
                    "reusable workflow",
                    CREDENTIALS[credential],
                    _model(spec.get("with")),
                    f"calls {uses} (not inspected) with {credential}",
                )
            )

    def _step(self, wf: WorkflowFile, job: str, index: int, step: dict[Any, Any], defaults: Any) -> None:
        label = str(step.get("name") or step.get("id") or f"step {index + 1}")
        uses = step.get("uses")
        given = step.get("with")
        with_: dict[Any, Any] = given if isinstance(given, dict) else {}
        if isinstance(uses, str):
            action = uses.split("@", 1)[0].lower()
            if "batch-arbiter" in action:
                inputs = {str(k): str(v) for k, v in with_.items()}
                if inputs.get("mode", "").strip().lower() in ("audit", "plan"):
                    return  # reports and estimates: no model answers anything
                provider = inputs.get("provider", "anthropic").lower()
                wf.steps.append(
                    LlmStep(
                        job,
                        label,
                        "batch-arbiter",
                        "gemini" if provider == "gemini" else "claude",
                        inputs.get("model") or None,
                        f"uses {uses}",
                        inputs,
                    )
                )
                return
            if action.startswith(("anthropics/claude-code-action", "anthropics/claude-code-base-action")):
                model = _model(with_) or _flag_model(" ".join(str(v) for v in with_.values()))
                wf.steps.append(
                    LlmStep(
                        job, label, "claude-code-action", "claude", model, f"uses {uses}", tools=_action_tools(with_)
                    )
                )
                return
            if "run-gemini-cli" in action:
                model = _model(with_) or _flag_model(" ".join(str(v) for v in with_.values()))
                wf.steps.append(LlmStep(job, label, "gemini CLI", "gemini", model, f"uses {uses}"))
                return
            found = _api_markers(str(with_.get("script", ""))) if action == "actions/github-script" else None
            if found:
                wf.steps.append(LlmStep(job, label, "API call", found[0], None, f"uses {uses}: the script {found[1]}"))
                return
            credential = _credential(with_) or _credential(step.get("env"))
            if credential:
                wf.steps.append(
                    LlmStep(
                        job,
                        label,
                        "LLM action",
                        CREDENTIALS[credential],
                        _model(with_),
                        f"uses {uses} with {credential}",
                    )
                )
            return
        run = step.get("run")
        if not isinstance(run, str):
            return
        workdir = step.get("working-directory")
        if workdir is None and isinstance(defaults, dict) and isinstance(defaults.get("run"), dict):
            workdir = defaults["run"].get("working-directory")
        base = self.root / str(workdir) if isinstance(workdir, str) and "${{" not in workdir else self.root
        hits = self._scan_text(run, base, "run:", depth=0, seen=set())
        for kind, engine, model, evidence, tools in hits:
            wf.steps.append(LlmStep(job, label, kind, engine, model, evidence, tools=tools))
        if not hits:
            credential = _credential(step.get("env"))
            if credential:
                wf.steps.append(
                    LlmStep(
                        job,
                        label,
                        "LLM credential",
                        CREDENTIALS[credential],
                        None,
                        f"the step is given {credential}; no call found in the files it runs",
                    )
                )

    def _scan_text(self, text: str, base: Path, where: str, depth: int, seen: set[Path]) -> list[_Hit]:
        """(kind, engine, model, evidence, allowed tools) for each LLM call in a shell snippet or script file."""
        hits: list[_Hit] = []
        for words in _commands(text):
            words = _unwrap_npx(words)
            command = words[0].rsplit("/", 1)[-1]
            line = " ".join(words)
            if command == "claude" and any(w in ("-p", "--print") for w in words[1:]):
                hits.append(("claude CLI", "claude", _flag_model(line), f"{where} `claude -p`", _allowed_tools(words)))
            elif command == "gemini" and not set(words[1:]) <= {"--version", "-v", "--help", "-h"}:
                hits.append(("gemini CLI", "gemini", _flag_model(line), f"{where} `gemini`", _allowed_tools(words)))
            else:
                script = _script_of(words)
                path = self._resolve(script, base) if script and depth < MAX_DEPTH else None
                if path is not None and path not in seen:
                    hits.extend(self._script(path, depth, seen | {path}))
        if not hits:
            found = _api_markers(text)
            if found:
                engine, what = found
                hits.append(("API call", engine, _code_model(text), f"{where} {what}", None))
        return hits

    def _resolve(self, script: str, base: Path) -> Path | None:
        # Paths in a script are relative to the job's working directory, usually the repository root.
        for directory in (base, self.root):
            path = (directory / script).resolve()
            if path.is_relative_to(self.root) and path.is_file():
                return path
        return None

    def _script(self, path: Path, depth: int, seen: set[Path]) -> list[_Hit]:
        if path in self._script_cache:
            return self._script_cache[path]
        try:
            if not path.is_file() or path.stat().st_size > MAX_SCRIPT_BYTES:
                return []
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return []
        rel = _rel(path, self.root)
        if path.suffix in (".sh", ".bash") or not path.suffix:
            hits = self._scan_text(text, path.parent, rel + ":", depth + 1, seen)
        else:
            found = _api_markers(text)
            hits = [("API call", found[0], _code_model(text), f"{rel} {found[1]}", None)] if found else []
        self._script_cache[path] = hits
        return hits


def _commands(text: str) -> Iterator[list[str]]:
    """The words of each simple command in a shell snippet, approximately (no full shell parser)."""
    joined = re.sub(r"\\\r?\n", " ", text)
    for raw in joined.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        line = re.sub(r"\s#.*$", "", line)
        for segment in _SEGMENT_SPLIT.split(line):
            words = [w.strip("'\"") for w in segment.split()]
            while words and (words[0] in PREFIXES or _ASSIGNMENT.match(words[0])):
                words.pop(0)
            if words and words[0] == "timeout":
                words = words[1:]
                while words and (words[0].startswith("-") or re.match(r"^\d+[smhd]?$", words[0])):
                    words.pop(0)
            if words:
                yield words


def _unwrap_npx(words: list[str]) -> list[str]:
    """`npx -y @anthropic-ai/claude-code@1.2 -p ...` -> `claude -p ...` (same for the gemini CLI)."""
    if PurePosixPath(words[0]).name not in ("npx", "bunx", "pnpx"):
        return words
    for index, word in enumerate(words[1:], 1):
        if word.startswith("-"):
            continue
        package = word[1:].split("@", 1)[0] if word.startswith("@") else word.split("@", 1)[0]
        if package.endswith("claude-code"):
            return ["claude", *words[index + 1 :]]
        if package.endswith("gemini-cli"):
            return ["gemini", *words[index + 1 :]]
        break
    return words


def _script_of(words: list[str]) -> str | None:
    """The repository file a command runs, when it runs one."""
    command = words[0]
    if command in ("source", ".") or PurePosixPath(command).name in INTERPRETERS:
        args = [w for w in words[1:] if not w.startswith("-")]
        if PurePosixPath(command).name in ("python", "python3") and "-m" in words:
            return None
        candidate = args[0] if args else None
    elif command in ("uv", "poetry", "pipenv") and len(words) > 2 and words[1] == "run":
        candidate = words[2] if words[2].endswith(SCRIPT_SUFFIXES) else None
    else:
        candidate = command if (command.endswith(SCRIPT_SUFFIXES) or command.startswith("./")) else None
    if not candidate or "$" in candidate or candidate.startswith(("/", "~")):
        return None
    return candidate


def _api_markers(text: str) -> tuple[str, str] | None:
    return next(((engine, label) for pattern, engine, label in API_MARKERS if pattern.search(text)), None)


def _credential(value: Any) -> str | None:
    if isinstance(value, dict):
        text = " ".join(f"{k} {v}" for k, v in value.items())
    elif isinstance(value, str):
        text = value
    else:
        return None
    return next((name for name in CREDENTIALS if name in text), None)


def _model(values: Any) -> str | None:
    if not isinstance(values, dict):
        return None
    for key in ("model", "claude_model", "gemini_model", "anthropic_model"):
        value = values.get(key)
        if isinstance(value, str) and value.strip() and "${{" not in value:
            return value.strip()
    return None


def _code_model(text: str) -> str | None:
    """The model a script asks for, when it names exactly one."""
    models = set(_MODEL_IN_CODE.findall(text))
    return models.pop() if len(models) == 1 else None


def _flag_model(text: str) -> str | None:
    match = _MODEL_FLAG.search(text)
    if match and "$" not in match.group(1):
        return match.group(1)
    return None


def _allowed_tools(words: list[str]) -> tuple[str, ...] | None:
    """The tool names after `--allowed-tools` / `--allowedTools` (comma- or space-separated, up to the next
    flag, as the CLIs read them), or None when the command gives none."""
    found: list[str] | None = None
    index = 0
    while index < len(words):
        flag, eq, value = words[index].partition("=")
        index += 1
        if flag not in _ALLOWED_TOOLS_FLAGS:
            continue
        values = [value] if eq else []
        while not eq and index < len(words) and not words[index].startswith("-"):
            values.append(words[index])
            index += 1
        found = (found or []) + cli_tool_names(" ".join(values))
    return tuple(found) if found is not None else None


def _action_tools(with_: Mapping[Any, Any]) -> tuple[str, ...] | None:
    """claude-code-action's allowed tools: `allowed_tools` (v0) and `--allowedTools` in `claude_args` (v1)."""
    found: list[str] | None = None
    allowed = with_.get("allowed_tools")
    if isinstance(allowed, str) and "${{" not in allowed:
        found = cli_tool_names(allowed)
    args = with_.get("claude_args")
    if isinstance(args, str):
        from_args = _allowed_tools([w.strip("'\"") for w in args.split()])
        if from_args is not None:
            found = (found or []) + list(from_args)
    return tuple(found) if found is not None else None
