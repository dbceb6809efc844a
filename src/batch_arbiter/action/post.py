"""The action's post step: deal with a batch that a killed or cancelled main step left running.

The runner runs a Docker action's `post-entrypoint` in a fresh container after the job's steps, even
after a cancellation. A main step that ended on its own marks `state.json` done or pending; one that was
killed leaves it `submitted`. Such a batch is cancelled (so nothing more is billed for a run nobody
collects) unless `on-timeout: leave` says a later run will collect it.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime

from batch_arbiter.action.runner import Runner
from batch_arbiter.action.selftest import enabled as on_bundled_emulator
from batch_arbiter.core.settings import load_settings
from batch_arbiter.errors import InputError, ProviderError
from batch_arbiter.providers import REGISTRY, ProviderConfig, make_provider
from batch_arbiter.providers.registry import api_key_from
from batch_arbiter.run.prepare import inside
from batch_arbiter.run.state import STATE_FILE, RunState

__all__ = ["post_step"]

EXIT_OK = 0


def post_step(runner: Runner) -> int:
    """Cancel the batch a killed main step left running, unless a later run is to collect it.

    Never fails the job: every problem is a warning.
    """
    try:
        settings = load_settings()
        out_dir = inside(runner.workspace.resolve(), settings.output_dir, "output-dir")
    except InputError:
        return EXIT_OK  # the main step already reported bad input; nothing was submitted
    state = RunState.read(out_dir / STATE_FILE) if out_dir else None
    if state is None or state.status != "submitted" or not state.batch_ids:
        return EXIT_OK
    if state.run is not None and state.run != runner.run_key:
        return EXIT_OK  # an earlier run's batch, restored for this run to collect: not ours to cancel
    if on_bundled_emulator() and not settings.base_url:
        return EXIT_OK  # that batch lived in the main step's own emulator, gone with its container
    batch_id = state.batch_id
    if settings.on_timeout == "leave" or (settings.mode == "collect" and _before(state.collect_by)):
        runner.notice(f"batch {batch_id} is still with the provider; collect it later with `batch-id: {batch_id}`")
        return EXIT_OK
    vendor = REGISTRY.get(state.provider)
    if vendor is None:
        return EXIT_OK
    key = api_key_from(vendor, settings.api_key.get_secret_value() if settings.api_key else None, os.environ)
    if key:
        runner.mask(key)
        key = key.strip()
    if not key:
        runner.warning(
            f"batch {batch_id} may still be running, and no API key is available to cancel it; "
            f"collect it with `batch-id: {batch_id}` or cancel it in the provider's console"
        )
        return EXIT_OK
    runner.mask(key)
    try:
        provider = make_provider(state.provider, ProviderConfig(api_key=key, base_url=settings.base_url))
    except Exception as exc:  # no key, no SDK: the post step must never fail the job
        runner.warning(f"batch {batch_id} may still be running and could not be cancelled: {type(exc).__name__}")
        return EXIT_OK
    try:
        for one in state.batch_ids:
            try:
                provider.cancel(one)
            except ProviderError as exc:
                runner.warning(f"the main step was stopped with batch {one} running, and cancelling it failed: {exc}")
                return EXIT_OK
    finally:
        provider.close()
    state.status = "canceled"
    state.save()
    runner.warning(
        f"the main step was stopped with batch {batch_id} running; cancelled it (on-timeout: fallback). "
        f"What it finished can still be collected with `batch-id: {batch_id}`."
    )
    return EXIT_OK


def _before(moment: str | None) -> bool:
    """Whether the collect-by time recorded in state.json is still ahead: until then the batch is only
    collected, never cancelled, even by a collect that was killed."""
    if not moment:
        return False
    try:
        when = datetime.fromisoformat(moment)
    except ValueError:
        return False
    return datetime.now(UTC) < (when if when.tzinfo else when.replace(tzinfo=UTC))
