"""A wire-compatible local emulator of the provider HTTP APIs batch-arbiter talks to.

Standard library only, so it also runs inside the slim action image. Anthropic Messages and Message
Batches, and the Gemini Developer API (generateContent, Batch API, Files), each an `ApiModule` on the
same server (see `routing`).
"""

from .anthropic_api import Batch, BatchItem
from .cli import main
from .config import OUTCOMES, ROUTES, Call, EmulatorConfig, Fault
from .gemini_api import GeminiItem, GeminiJob
from .server import Emulator

__all__ = [
    "OUTCOMES",
    "ROUTES",
    "Batch",
    "BatchItem",
    "Call",
    "Emulator",
    "EmulatorConfig",
    "Fault",
    "GeminiItem",
    "GeminiJob",
    "main",
]
