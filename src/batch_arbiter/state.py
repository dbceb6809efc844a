"""`<output-dir>/state.json`: enough to collect a submitted batch later, after a crash or a cancel."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

STATE_FILE = "state.json"


@dataclass
class RunState:
    path: Path | None
    provider: str
    model: str
    workload: str
    deadline: str
    status: str = "new"
    batch_id: str | None = None
    submitted_at: str | None = None
    custom_ids: list[str] = field(default_factory=list)

    @classmethod
    def read(cls, path: Path) -> RunState | None:
        try:
            data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            return None
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__ and k != "path"}
        try:
            return cls(path=path, **known)
        except TypeError:
            return None

    @property
    def collectable(self) -> bool:
        return self.batch_id is not None and self.status in ("submitted", "pending")

    def submitted(self, batch_id: str, custom_ids: list[str]) -> None:
        self.batch_id = batch_id
        self.custom_ids = custom_ids
        self.submitted_at = datetime.now(UTC).isoformat(timespec="seconds")
        self.status = "submitted"
        self.save()

    def collecting(self, batch_id: str, custom_ids: list[str]) -> None:
        self.batch_id = batch_id
        self.custom_ids = custom_ids or self.custom_ids
        self.status = "submitted"
        self.save()

    def pending(self) -> None:
        self.status = "pending"
        self.save()

    def done(self, status: str) -> None:
        self.status = f"done:{status}"
        self.save()

    def save(self) -> None:
        if self.path is None:
            return
        data = asdict(self)
        data.pop("path")
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, self.path)
