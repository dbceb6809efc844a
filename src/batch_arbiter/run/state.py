"""`<output-dir>/state.json`: enough to collect a submitted batch later, after a crash or a cancel."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, cast

from batch_arbiter.core.records import RunStatus
from batch_arbiter.files import write_own

STATE_FILE = "state.json"
# `new` until a batch exists; `submitted` while it runs; `pending` when left for a later collect;
# `canceled` by the post step; `done:<run status>` once the run settled every request.
StateStatus = Literal[
    "new", "submitted", "pending", "canceled", "done:succeeded", "done:partial", "done:failed", "done:pending"
]


@dataclass
class RunState:
    """What `state.json` keeps of a run: its batches and requests, where it stands, and which workflow run owns it."""

    path: Path | None
    provider: str
    model: str
    workload: str
    deadline: str
    status: StateStatus = "new"
    # Every batch of the run: a run over a provider's per-batch limit is split into several.
    batch_ids: list[str] = field(default_factory=list)
    submitted_at: str | None = None
    custom_ids: list[str] = field(default_factory=list)
    # Which workflow run (id.attempt) wrote this file: the post step acts only on its own run's batches.
    run: str | None = None
    # A create sent and not yet answered: {"token", "since", "size"}. A run killed in that moment leaves
    # this, and the next run asks the provider for the batch instead of creating (and paying) again.
    creating: dict[str, Any] | None = None
    # Until when (ISO 8601, UTC) a batch left with the provider is only collected: a collect before then
    # that finds it unfinished leaves it pending again instead of falling back (`collect-by`).
    collect_by: str | None = None

    @classmethod
    def read(cls, path: Path) -> RunState | None:
        """The state saved at `path` (older single-`batch_id` files too); None if it is missing or unreadable."""
        try:
            data: Any = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError, RecursionError):
            return None
        if not isinstance(data, dict):
            return None
        if isinstance(data.get("batch_id"), str) and "batch_ids" not in data:
            data["batch_ids"] = [data["batch_id"]]
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__ and k != "path"}
        # A hand-edited or corrupt file must not be polled as, say, a string one character at a time.
        for name in ("batch_ids", "custom_ids"):
            value = known.get(name, [])
            if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
                return None
        for name in ("provider", "model", "workload", "deadline", "status"):
            if name in known and not isinstance(known[name], str):
                return None
        for name in ("submitted_at", "run", "collect_by"):
            if known.get(name) is not None and not isinstance(known[name], str):
                return None
        creating = known.get("creating")
        if creating is not None and not (
            isinstance(creating, dict)
            and isinstance(creating.get("token"), str)
            and isinstance(creating.get("since"), str)
            and type(creating.get("size")) is int
        ):
            return None
        try:
            return cls(path=path, **known)
        except TypeError:
            return None

    @property
    def batch_id(self) -> str | None:
        """The batch ids as the `batch-id` input and output spell them: comma-separated."""
        return ",".join(self.batch_ids) or None

    @property
    def finished(self) -> bool:
        """Whether a run already settled every request of these batches (or the post step canceled them)."""
        return self.status.startswith("done:") or self.status == "canceled"

    @property
    def collectable(self) -> bool:
        """Whether a re-run should collect these batches instead of submitting again: submitted or left pending."""
        return (bool(self.batch_ids) or self.creating is not None) and self.status in ("submitted", "pending")

    def creating_batch(self, token: str, custom_ids: list[str]) -> None:
        """A create is about to be sent: saved first, so no moment exists in which a paid batch is unknown."""
        self.creating = {
            "token": token,
            "since": datetime.now(UTC).isoformat(timespec="seconds"),
            "size": len(custom_ids),
        }
        known = set(self.custom_ids)
        self.custom_ids.extend(c for c in custom_ids if c not in known)
        self.status = "submitted"
        self.save()

    def submitted(self, batch_id: str, custom_ids: list[str]) -> None:
        """One more batch is with the provider: saved before anything else can go wrong."""
        self.batch_ids.append(batch_id)
        known = set(self.custom_ids)
        self.custom_ids.extend(c for c in custom_ids if c not in known)
        self.creating = None
        self.submitted_at = self.submitted_at or datetime.now(UTC).isoformat(timespec="seconds")
        self.status = "submitted"
        self.save()

    def collecting(self, batch_ids: list[str], custom_ids: list[str]) -> None:
        """This run collects batches given back by id: record them as submitted (with custom ids, if known) and save."""
        self.batch_ids = list(batch_ids)
        self.custom_ids = custom_ids or self.custom_ids
        self.status = "submitted"
        self.save()

    def pending(self) -> None:
        """Mark the batches as left with the provider for a later run to collect, and save."""
        self.status = "pending"
        self.save()

    def done(self, status: RunStatus) -> None:
        """Mark the run finished with `status`, and save: the post step then has nothing to cancel."""
        self.status = cast(StateStatus, f"done:{status}")
        self.save()

    def save(self) -> None:
        """Write the file atomically (temp file, then rename); a state without a path is not saved."""
        if self.path is None:
            return
        data = asdict(self)
        data.pop("path")
        data["batch_id"] = self.batch_id  # the form to paste into `batch-id`
        tmp = self.path.with_suffix(".tmp")
        write_own(tmp, json.dumps(data, indent=2) + "\n")
        os.replace(tmp, self.path)
