"""`batch-arbiter`: argparse wiring of every command; each command's work lives in its package.

`run` is the default, so the container's bare entrypoint (inputs in `INPUT_*`) runs the action.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import Any

from batch_arbiter.core.settings import Settings, input_name

__all__ = ["build_parser", "main", "post_main"]

Handler = Callable[[argparse.Namespace], int]


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line and run the command it names."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or (args[0].startswith("-") and args[0] not in ("-h", "--help")):
        args = ["run", *args]
    namespace = build_parser().parse_args(args)
    handler: Handler = namespace.func
    return handler(namespace)


def post_main(argv: Sequence[str] | None = None) -> int:
    """The `batch-arbiter-post` script that action.yml's `post-entrypoint` runs."""
    return main(["post", *(sys.argv[1:] if argv is None else argv)])


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with one subcommand per command."""
    parser = argparse.ArgumentParser(
        prog="batch-arbiter",
        description="Run scheduled LLM workloads through provider batch APIs at half price.",
    )
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)
    for name, mode, text in (
        ("run", None, "run the action's main step (the default): submit, wait, fall back, report"),
        ("plan", "plan", "check the inputs and estimate the cost; nothing is submitted"),
    ):
        sub = commands.add_parser(name, help=text, description=f"{text}. {_FLAGS_NOTE}")
        _settings_flags(sub)
        sub.set_defaults(func=_main_step, mode_override=mode)
    post = commands.add_parser("post", help="the action's post step: cancel a batch a killed main step left running")
    post.set_defaults(func=_post)

    from batch_arbiter.observatory import audit, spend

    sub = commands.add_parser("audit", help="find scheduled LLM workloads that could run as batches")
    audit.add_arguments(sub)
    sub.set_defaults(func=_console_command(audit.command))
    sub = commands.add_parser("report", help="what was spent and saved, from token-metrics logs")
    spend.add_arguments(sub)
    sub.set_defaults(func=_console_command(spend.command))

    from batch_arbiter.providers import smoke

    sub = commands.add_parser("smoke", help="check the real APIs answer as expected (needs a key; under one cent)")
    smoke.add_arguments(sub)
    sub.set_defaults(func=_console_command(smoke.command))

    from batch_arbiter.emulator import cli as emulator

    sub = commands.add_parser(
        "emulate", help="serve the bundled API emulator", description=emulator.DESCRIPTION, epilog=emulator.EPILOG
    )
    emulator.add_arguments(sub)
    sub.set_defaults(func=emulator.serve)

    from batch_arbiter.devtools import demo

    sub = commands.add_parser("demo", help="run a demo batch end to end against the bundled emulator")
    demo.add_arguments(sub)
    sub.set_defaults(func=demo.demo)
    return parser


_FLAGS_NOTE = "Every flag mirrors an input of action.yml; flags win over INPUT_* variables."


def _settings_flags(parser: argparse.ArgumentParser) -> None:
    for name in Settings.model_fields:
        flag = "--" + input_name(name)
        if name == "prompt_files":
            parser.add_argument(flag, nargs="+", metavar="PATH_OR_GLOB")
        else:
            parser.add_argument(flag, dest=name, metavar=input_name(name).upper().replace("-", "_"))


def _main_step(args: argparse.Namespace) -> int:
    from batch_arbiter.action.entry import main_step
    from batch_arbiter.action.runner import Runner

    flags: dict[str, Any] = {name: getattr(args, name, None) for name in Settings.model_fields}
    if flags.get("prompt_files"):
        flags["prompt_files"] = "\n".join(flags["prompt_files"])
    if args.mode_override:
        flags["mode"] = args.mode_override
    return main_step(flags, Runner.from_env())


def _post(args: argparse.Namespace) -> int:
    from batch_arbiter.action.post import post_step
    from batch_arbiter.action.runner import Runner

    return post_step(Runner.from_env())


def _console_command(command: Callable[[argparse.Namespace, Any], int]) -> Handler:
    def handler(args: argparse.Namespace) -> int:
        from batch_arbiter.action.runner import Runner

        return command(args, Runner.from_env())

    return handler
