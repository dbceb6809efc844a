"""The workflows that ship with the action (CI, self-test, release) and the examples users copy: every use
of the action passes only inputs action.yml declares, actions are pinned by commit, permissions are
explicit; and the release's rewrite of action.yml yields a valid action that pulls the published image."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
ACTION = yaml.safe_load((ROOT / "action.yml").read_text(encoding="utf-8"))
WORKFLOWS = sorted([*(ROOT / ".github" / "workflows").glob("*.yml"), *(ROOT / "examples").glob("*.yml")])
PINNED = re.compile(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40}$")


def _load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    return data


def _steps(workflow: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for job in workflow["jobs"].values():
        yield from job.get("steps", [])


def _is_this_action(uses: str) -> bool:
    return uses == "./" or uses.split("@", 1)[0].endswith("/batch-arbiter")


def _id(path: Path) -> str:
    return str(path.relative_to(ROOT))


def test_there_are_workflows_and_examples() -> None:
    names = {_id(p) for p in WORKFLOWS}
    assert {".github/workflows/ci.yml", ".github/workflows/self-test.yml", ".github/workflows/release.yml"} <= names
    assert len([n for n in names if n.startswith("examples/")]) >= 4


@pytest.mark.parametrize("path", WORKFLOWS, ids=_id)
def test_uses_of_the_action_pass_declared_inputs(path: Path) -> None:
    declared = set(ACTION["inputs"])
    required = {name for name, spec in ACTION["inputs"].items() if spec.get("required")}
    text = path.read_text(encoding="utf-8")
    for step in _steps(_load(path)):
        if _is_this_action(step.get("uses", "")):
            given = set(step.get("with", {}))
            assert given <= declared, f"unknown inputs {sorted(given - declared)}"
            assert required <= given, f"missing required inputs {sorted(required - given)}"
            read = set(re.findall(rf"steps\.{re.escape(step.get('id', '-'))}\.outputs\.([\w-]+)", text))
            assert read <= set(ACTION["outputs"]), f"unknown outputs {sorted(read - set(ACTION['outputs']))}"


@pytest.mark.parametrize("path", WORKFLOWS, ids=_id)
def test_actions_are_pinned_by_commit_and_permissions_are_explicit(path: Path) -> None:
    workflow = _load(path)
    assert "permissions" in workflow, "set least-privilege permissions at the top"
    for step in _steps(workflow):
        uses = step.get("uses", "")
        if uses and not uses.startswith("./") and not _is_this_action(uses):
            assert PINNED.match(uses), f"{uses} is not pinned to a commit"


def test_release_rewrite_points_the_action_at_the_published_image(tmp_path: Path) -> None:
    released = tmp_path / "action.yml"
    original = (ROOT / "action.yml").read_text(encoding="utf-8")
    released.write_text(original, encoding="utf-8")
    image = "docker://ghcr.io/acme/batch-arbiter:1.2.3"
    subprocess.run([ROOT / ".github/release/use-prebuilt-image", image, released], check=True)
    action = yaml.safe_load(released.read_text(encoding="utf-8"))
    assert action["runs"]["image"] == image
    action["runs"]["image"] = ACTION["runs"]["image"]
    assert action == ACTION
    # Run twice, it refuses: a release must start from the source action.yml.
    again = subprocess.run([ROOT / ".github/release/use-prebuilt-image", image, released], capture_output=True)
    assert again.returncode == 1


def test_release_rewrite_refuses_an_image_without_a_tag(tmp_path: Path) -> None:
    released = tmp_path / "action.yml"
    released.write_text((ROOT / "action.yml").read_text(encoding="utf-8"), encoding="utf-8")
    proc = subprocess.run(
        [ROOT / ".github/release/use-prebuilt-image", "ghcr.io/acme/batch-arbiter", released], capture_output=True
    )
    assert proc.returncode == 2
    assert released.read_text(encoding="utf-8") == (ROOT / "action.yml").read_text(encoding="utf-8")


def test_examples_pin_the_same_commits_as_our_workflows() -> None:
    # Dependabot updates .github/workflows only; examples must not drift from what CI runs.
    pins: dict[str, set[str]] = {}
    for path in WORKFLOWS:
        for step in _steps(_load(path)):
            uses = step.get("uses", "")
            if PINNED.match(uses):
                name, sha = uses.split("@")
                pins.setdefault(name, set()).add(sha)
    assert {name: shas for name, shas in pins.items() if len(shas) > 1} == {}
