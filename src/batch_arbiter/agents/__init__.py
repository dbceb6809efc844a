"""Batched agents: what runs for a model between batch rounds.

`Workspace` is the sandboxed executor of the client tools (`read`, `glob`, `grep`); the tool catalogue
itself (names, schemas, `ToolResult`) is pure data in `batch_arbiter.core.tools`.
"""

from batch_arbiter.agents.workspace import Workspace
from batch_arbiter.core.tools import ToolResult

__all__ = ["ToolResult", "Workspace"]
