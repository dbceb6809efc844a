"""The action as it ships: the image built from the Dockerfile, run exactly as the GitHub runner runs a
Docker action (see `runner_docker_run`). Marked `container`; skipped with the reason when no Docker engine
answers. `BATCH_ARBITER_IMAGE=<ref>` tests an already built or published image instead of building one.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from batch_arbiter.emulator import Emulator
from support import parse_outputs, write_prompts

pytestmark = pytest.mark.container

ROOT = Path(__file__).resolve().parents[2]
ACTION = yaml.safe_load((ROOT / "action.yml").read_text(encoding="utf-8"))
BUILT_TAG = "batch-arbiter:test"


def _engine_problem() -> str | None:
    if shutil.which("docker") is None:
        return "no `docker` command on PATH"
    try:
        proc = subprocess.run(["docker", "version", "--format", "{{.Server.Version}}"], capture_output=True, timeout=30)
    except subprocess.TimeoutExpired:
        return "the Docker engine did not answer within 30 s"
    if proc.returncode != 0:
        where = os.environ.get("DOCKER_HOST", "the default socket")
        detail = proc.stderr.decode(errors="replace").strip().splitlines()[-1:] or [""]
        return f"no Docker engine answers at {where} ({detail[0]})"
    return None


@pytest.fixture(scope="session")
def image() -> str:
    problem = _engine_problem()
    if problem:
        pytest.skip(f"container suite skipped: {problem}. Start a Docker engine or point DOCKER_HOST at one.")
    given = os.environ.get("BATCH_ARBITER_IMAGE")
    if given:
        return given
    build = subprocess.run(["docker", "build", "--quiet", "-t", BUILT_TAG, str(ROOT)], capture_output=True, text=True)
    assert build.returncode == 0, build.stdout + build.stderr
    return BUILT_TAG


@dataclass
class Step:
    """One run of the action's container, with what the runner would read back afterwards."""

    code: int
    stdout: str
    stderr: str
    outputs: dict[str, str]
    summary: str
    workspace: Path

    def results(self, output_dir: str = "batch-results") -> list[dict[str, object]]:
        path = self.workspace / output_dir / "results.jsonl"
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


class RunnerHost:
    """The runner's side of one job: the workspace, the file-commands folder and the docker command."""

    def __init__(self, root: Path, image: str) -> None:
        self.image = image
        self.workspace = root / "workspace"
        self.file_commands = root / "_runner_file_commands"
        self.home = root / "_github_home"
        self.workflow = root / "_github_workflow"
        for d in (self.workspace, self.file_commands, self.home, self.workflow):
            d.mkdir(parents=True, exist_ok=True)
        (self.workflow / "event.json").write_text("{}", encoding="utf-8")
        suffix = uuid.uuid4()
        self.output_file = f"set_output_{suffix}"
        self.summary_file = f"step_summary_{suffix}"
        (self.file_commands / self.output_file).write_text("")
        (self.file_commands / self.summary_file).write_text("")

    def env(self, event: str = "schedule", workflow: str = "feature-ideation", **inputs: str) -> dict[str, str]:
        """Every declared input with its action.yml default (as the runner sends them), then the step's."""
        env = {f"INPUT_{name.upper()}": str(spec.get("default", "")) for name, spec in ACTION["inputs"].items()}
        env.update({f"INPUT_{k.upper().replace('_', '-')}": v for k, v in inputs.items()})
        env.update(
            {
                "HOME": "/github/home",
                "GITHUB_ACTIONS": "true",
                "CI": "true",
                "GITHUB_WORKSPACE": "/github/workspace",
                "GITHUB_OUTPUT": f"/github/file_commands/{self.output_file}",
                "GITHUB_STEP_SUMMARY": f"/github/file_commands/{self.summary_file}",
                "GITHUB_EVENT_PATH": "/github/workflow/event.json",
                "GITHUB_EVENT_NAME": event,
                "GITHUB_WORKFLOW": workflow,
                "GITHUB_RUN_ID": "4242",
            }
        )
        return env

    def command(
        self, env: dict[str, str], network: str = "host", name: str | None = None, entrypoint: str | None = None
    ) -> list[str]:
        """`docker run` as ContainerActionHandler builds it: `-e NAME` only, values from the process env."""
        cmd = ["docker", "run", "--rm", "--workdir", "/github/workspace", "--network", network]
        if name:
            cmd += ["--name", name]
        if entrypoint:
            cmd += ["--entrypoint", entrypoint]
        for host_dir, container_dir in (
            (self.home, "/github/home"),
            (self.workflow, "/github/workflow"),
            (self.file_commands, "/github/file_commands"),
            (self.workspace, "/github/workspace"),
        ):
            cmd += ["-v", f"{host_dir}:{container_dir}"]
        for key in env:
            cmd += ["-e", key]
        return [*cmd, self.image]

    def process_env(self, env: dict[str, str]) -> dict[str, str]:
        return {**os.environ, **env}

    def run(
        self, env: dict[str, str], network: str = "host", timeout: float = 120, entrypoint: str | None = None
    ) -> Step:
        proc = subprocess.run(
            self.command(env, network, entrypoint=entrypoint),
            env=self.process_env(env),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        return self.step(proc.returncode, proc.stdout, proc.stderr)

    def step(self, code: int, stdout: str, stderr: str) -> Step:
        return Step(
            code,
            stdout,
            stderr,
            parse_outputs((self.file_commands / self.output_file).read_text(encoding="utf-8")),
            (self.file_commands / self.summary_file).read_text(encoding="utf-8"),
            self.workspace,
        )


@pytest.fixture
def host(tmp_path: Path, image: str) -> RunnerHost:
    return RunnerHost(tmp_path, image)


IDEAS = {
    "prompts/ideation/cli.md": "Signals: users ask for shell completion.",
    "prompts/ideation/docs.md": "Signals: how do I run this locally? [[emulator:errored]]",
    "prompts/ideation/more.jsonl": '{"custom_id": "ideas-security", "prompt": "Signals: an advisory landed."}\n',
    "prompts/system.md": "You are the product analyst.",
}


def test_scheduled_batch_with_fallback(host: RunnerHost, emulator: Emulator) -> None:
    write_prompts(host.workspace, IDEAS)
    env = host.env(
        prompt_files="prompts/ideation/*.md\nprompts/ideation/*.jsonl\n",
        system_prompt_file="prompts/system.md",
        api_key="sk-ant-container-test-0123456789",
        base_url=emulator.base_url,
        poll_interval="0.1",
    )
    step = host.run(env)
    assert step.code == 0, step.stdout + step.stderr
    out = step.outputs
    # feature-ideation on a schedule goes to batch; the errored request alone reruns synchronously.
    assert (out["mode"], out["status"], out["succeeded"], out["failed"]) == ("batch+fallback", "succeeded", "3", "0")
    assert out["batch-id"].startswith("msgbatch_")
    assert float(out["cost-usd"]) < float(out["sync-cost-usd"])
    assert "::add-mask::sk-ant-container-test-0123456789" in step.stdout
    assert "sk-ant-container-test" not in step.stdout.replace("::add-mask::sk-ant-container-test-0123456789", "")
    assert "## batch-arbiter: feature-ideation" in step.summary and "batch+fallback" in step.summary
    by_id = {r["custom_id"]: r for r in step.results()}
    assert set(by_id) == {"prompts_ideation_cli_md", "prompts_ideation_docs_md", "ideas-security"}
    assert by_id["prompts_ideation_docs_md"]["via"] == "sync" and by_id["prompts_ideation_cli_md"]["via"] == "batch"
    assert (host.workspace / "batch-results" / "prompts_ideation_cli_md.md").is_file()
    assert len(emulator.calls("create")) == 1 and len(emulator.calls("messages")) == 1


def test_bad_input_is_an_error_annotation_and_exit_2(host: RunnerHost, emulator: Emulator) -> None:
    env = host.env(prompt_files="prompts/missing/*.md", api_key="sk-ant-x", base_url=emulator.base_url)
    step = host.run(env)
    assert step.code == 2, step.stdout + step.stderr
    assert "::error title=batch-arbiter%3A bad input::prompt-files pattern" in step.stdout
    assert step.outputs == {}
    assert emulator.calls() == []


def test_bundled_emulator_needs_no_key_and_no_network(host: RunnerHost) -> None:
    # The self-test's switch: the container answers itself, so even `--network none` succeeds.
    write_prompts(host.workspace, {"p/a.md": "Idea A", "p/b.md": "Idea B [[emulator:expired]]"})
    env = host.env(event="workflow_dispatch", workflow="self-test", prompt_files="p/*.md", poll_interval="0.2")
    env["BATCH_ARBITER_EMULATOR"] = "1"
    step = host.run(env, network="none")
    assert step.code == 0, step.stdout + step.stderr
    assert "bundled emulator" in step.stdout
    out = step.outputs
    assert (out["mode"], out["status"], out["succeeded"]) == ("batch+fallback", "succeeded", "2")


@pytest.mark.parametrize(
    ("provider", "model", "sdk", "other"),
    [
        ("anthropic", "claude-sonnet-5-5", "anthropic", "google.genai"),
        ("gemini", "gemini-4-argon", "google.genai", "anthropic"),
    ],
)
def test_only_the_provider_sdk_in_use_is_imported(
    host: RunnerHost, emulator: Emulator, provider: str, model: str, sdk: str, other: str
) -> None:
    write_prompts(host.workspace, {"p/a.md": "Idea A"})
    env = host.env(
        prompt_files="p/a.md", mode="sync", provider=provider, model=model, api_key="key-x", base_url=emulator.base_url
    )
    env["PYTHONPROFILEIMPORTTIME"] = "1"
    step = host.run(env)
    assert step.code == 0, step.stdout + step.stderr
    imported = {line.rsplit("|", 1)[-1].strip() for line in step.stderr.splitlines() if line.startswith("import time:")}
    assert sdk in imported
    assert not {m for m in imported if m == other or m.startswith(other + ".")}


@pytest.fixture
def container_name() -> Iterator[str]:
    name = f"batch-arbiter-test-{uuid.uuid4().hex[:12]}"
    yield name
    subprocess.run(["docker", "rm", "-f", name], capture_output=True)


@pytest.mark.parametrize("signal_name", ["SIGTERM", "SIGINT"])
def test_cancelled_step_keeps_the_batch(
    host: RunnerHost, emulator: Emulator, container_name: str, signal_name: str
) -> None:
    # The runner cancels a step by signalling `docker run`, which forwards to PID 1: Python itself here.
    emulator.config.default_outcome = "hang"
    write_prompts(host.workspace, {"p/a.md": "Idea A", "p/b.md": "Idea B"})
    env = host.env(prompt_files="p/*.md", mode="batch", api_key="sk-ant-x", base_url=emulator.base_url)
    proc = subprocess.Popen(
        host.command(env, name=container_name),
        env=host.process_env(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not emulator.calls("create") and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert emulator.calls("create"), "the container never submitted its batch"
    time.sleep(0.3)
    started = time.monotonic()
    subprocess.run(["docker", "kill", "--signal", signal_name, container_name], check=True, capture_output=True)
    stdout, stderr = proc.communicate(timeout=30)
    assert time.monotonic() - started < 7.5, "the runner escalates to a hard kill after 7.5 s"
    step = host.step(proc.returncode, stdout, stderr)
    assert step.code == 1, step.stdout + step.stderr
    assert step.outputs["status"] == "pending"
    state = json.loads((host.workspace / "batch-results" / "state.json").read_text(encoding="utf-8"))
    assert state["batch_id"] == step.outputs["batch-id"]
    assert {r["status"] for r in step.results()} == {"pending"}


def test_post_step_cancels_the_batch_a_killed_step_left(
    host: RunnerHost, emulator: Emulator, container_name: str
) -> None:
    # Past its grace period the runner kills the step outright; then runs `post-entrypoint` in a new container.
    emulator.config.default_outcome = "hang"
    write_prompts(host.workspace, {"p/a.md": "Idea A"})
    env = host.env(prompt_files="p/a.md", mode="batch", api_key="sk-ant-x", base_url=emulator.base_url)
    proc = subprocess.Popen(
        host.command(env, name=container_name), env=host.process_env(env), stdout=subprocess.DEVNULL
    )
    state_path = host.workspace / "batch-results" / "state.json"
    deadline = time.monotonic() + 60
    while not state_path.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    subprocess.run(["docker", "kill", container_name], check=True, capture_output=True)
    proc.wait(timeout=30)
    batch_id = json.loads(state_path.read_text(encoding="utf-8"))["batch_id"]

    post = host.run(env, entrypoint=ACTION["runs"]["post-entrypoint"])
    assert post.code == 0, post.stdout + post.stderr
    assert [c.path for c in emulator.calls("cancel")] == [f"/v1/messages/batches/{batch_id}/cancel"]
    assert json.loads(state_path.read_text(encoding="utf-8"))["status"] == "canceled"
