"""A wire-compatible local emulator of the provider HTTP APIs batch-arbiter talks to.

Standard library only, so it also runs inside the slim action image. Anthropic Messages and Message
Batches today; further APIs plug into the same server as extra `ApiModule`s (see `routing`).
"""

from .anthropic_api import Batch, BatchItem
from .cli import main
from .config import OUTCOMES, ROUTES, Call, EmulatorConfig, Fault
from .server import Emulator

__all__ = ["OUTCOMES", "ROUTES", "Batch", "BatchItem", "Call", "Emulator", "EmulatorConfig", "Fault", "main"]
