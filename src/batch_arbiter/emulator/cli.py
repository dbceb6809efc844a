"""`python -m batch_arbiter.emulator` / `batch-arbiter emulate`: run the emulator in the foreground."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from types import FrameType

from .config import OUTCOMES, ROUTES, EmulatorConfig, Fault
from .server import Emulator


def _outcome(text: str) -> tuple[str, str]:
    glob, sep, outcome = text.rpartition("=")
    if not sep or not glob or outcome not in OUTCOMES:
        raise argparse.ArgumentTypeError(f"expected GLOB=OUTCOME with OUTCOME one of {sorted(OUTCOMES)}")
    return glob, outcome


def _fault(text: str) -> Fault:
    parts = text.split(":")
    try:
        if not 2 <= len(parts) <= 4:
            raise ValueError("expected ROUTE:STATUS[:TIMES[:RETRY_AFTER]]")
        times = int(parts[2]) if len(parts) > 2 and parts[2] else 1
        retry_after = float(parts[3]) if len(parts) > 3 and parts[3] else None
        return Fault(parts[0], int(parts[1]), times, retry_after)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


DESCRIPTION = "Emulate the Anthropic Messages and Message Batches API and the Gemini API locally."
EPILOG = (
    "Prompt markers steer single requests: [[emulator:errored|expired|canceled|hang]] in a batch "
    "item's user text, [[emulator:sync-errored]] in a sync request; on Gemini also "
    "[[emulator:job-failed]] (the whole job fails) and [[emulator:flex-unavailable]] (Flex sheds it)."
)


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog or "python -m batch_arbiter.emulator", description=DESCRIPTION, epilog=EPILOG
    )
    add_arguments(parser)
    return parser


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The emulator's flags, on its own parser or on a subcommand's."""
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8787, help="port to bind; 0 picks a free one (default 8787)")
    parser.add_argument(
        "--processing-seconds", type=float, default=1.0, help="time a batch takes to finish (default 1.0)"
    )
    parser.add_argument(
        "--outcome",
        type=_outcome,
        action="append",
        default=[],
        metavar="GLOB=OUTCOME",
        help="batch outcome for custom_ids matching GLOB (repeatable; first match wins)",
    )
    parser.add_argument("--default-outcome", choices=sorted(OUTCOMES), default="succeeded")
    parser.add_argument(
        "--fault",
        type=_fault,
        action="append",
        default=[],
        metavar="ROUTE:STATUS[:TIMES[:RETRY_AFTER]]",
        help=f"fail calls to ROUTE (one of {', '.join(sorted(ROUTES))}); TIMES -1 = always (repeatable)",
    )
    parser.add_argument("--api-key", default=None, help="accept only this key (default: any non-empty key)")


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    return serve(build_parser(prog).parse_args(argv))


def serve(args: argparse.Namespace) -> int:
    """Serve until SIGINT or SIGTERM."""
    config = EmulatorConfig(
        processing_seconds=args.processing_seconds,
        outcomes=dict(args.outcome),
        default_outcome=args.default_outcome,
        faults=list(args.fault),
        api_key=args.api_key,
    )
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    # As PID 1 in a container, Python ignores SIGTERM unless a handler is installed.
    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    emulator = Emulator(config, host=args.host, port=args.port)
    try:
        print(emulator.start(), flush=True)
        # wait() with a timeout so the main thread wakes for signals on every platform.
        while not stop.wait(0.5):
            pass
    finally:
        emulator.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


if __name__ == "__main__":
    sys.exit(main())
