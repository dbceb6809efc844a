from __future__ import annotations

import io
import re
from pathlib import Path

from batch_arbiter.action.runner import SUMMARY_LIMIT_BYTES, Runner
from support import parse_outputs


def make_runner(tmp_path: Path) -> tuple[Runner, io.StringIO]:
    out = tmp_path / "output"
    out.touch()
    stream = io.StringIO()
    return Runner(output_path=out, summary_path=tmp_path / "summary", workspace=tmp_path, stream=stream), stream


def test_outputs_use_fresh_random_delimiters(tmp_path: Path) -> None:
    runner, _ = make_runner(tmp_path)
    forged = "EOF\nstatus=succeeded\nghadelimiter_00000000-0000-0000-0000-000000000000\ncost-usd=0"
    runner.set_outputs({"model": forged, "status": "failed"})
    text = (tmp_path / "output").read_text()
    delimiters = re.findall(r"<<(ghadelimiter_[0-9a-f-]{36})", text)
    assert len(delimiters) == 2 and delimiters[0] != delimiters[1]
    assert parse_outputs(text) == {"model": forged, "status": "failed"}


def test_secrets_are_masked_and_redacted_everywhere(tmp_path: Path) -> None:
    runner, stream = make_runner(tmp_path)
    runner.mask("sk-abc123")
    runner.log("calling with sk-abc123")
    runner.error("HTTP 401 for key sk-abc123")
    runner.set_outputs({"batch-id": "sk-abc123"})
    runner.write_summary("key sk-abc123")
    log = stream.getvalue()
    assert log.startswith("::add-mask::sk-abc123\n")
    assert log.count("sk-abc123") == 1
    assert "sk-abc123" not in (tmp_path / "output").read_text()
    assert "sk-abc123" not in (tmp_path / "summary").read_text()


def test_annotations_omit_empty_properties(tmp_path: Path) -> None:
    runner, stream = make_runner(tmp_path)
    runner.error("bad\ninput 100%", title="batch-arbiter: bad input")
    runner.warning("careful")
    assert stream.getvalue().splitlines() == [
        "::error title=batch-arbiter%3A bad input::bad%0Ainput 100%25",
        "::warning::careful",
    ]


def test_log_lines_cannot_start_workflow_commands(tmp_path: Path) -> None:
    runner, stream = make_runner(tmp_path)
    runner.log("remote said:\n::error::pwned\n  ::add-mask::x\nsee ##[error]legacy form")
    lines = stream.getvalue().splitlines()
    assert len(lines) == 4
    assert not any(line.lstrip().startswith("::") or "##[" in line for line in lines)


def test_untrusted_block_stops_commands(tmp_path: Path) -> None:
    runner, stream = make_runner(tmp_path)
    with runner.untrusted():
        stream.write("::error::from the model\n")
    lines = stream.getvalue().splitlines()
    token = lines[0].removeprefix("::stop-commands::")
    assert re.fullmatch(r"[0-9a-f]{32}", token)
    assert lines[-1] == f"::{token}::"


def test_summary_is_trimmed_below_github_limit(tmp_path: Path) -> None:
    runner, _ = make_runner(tmp_path)
    runner.write_summary("x" * (2 * SUMMARY_LIMIT_BYTES))
    data = (tmp_path / "summary").read_bytes()
    assert len(data) <= 1024 * 1024
    assert b"Summary trimmed" in data


def test_local_run_prints_outputs_instead_of_set_output(tmp_path: Path) -> None:
    stream = io.StringIO()
    runner = Runner(workspace=tmp_path, stream=stream)
    runner.set_outputs({"status": "succeeded"})
    assert "status=succeeded" in stream.getvalue()
    assert "::set-output" not in stream.getvalue()


def test_terminal_escapes_from_remote_text_never_reach_log_annotations_or_summary(tmp_path: Path) -> None:
    runner, stream = make_runner(tmp_path)
    remote = "HTTP 500 \x1b[31mboom\x1b[0m \x1b]8;;http://x\x07link\x1b]8;;\x07 \x07bell"
    runner.error(remote, title="\x1b[2Jtitle")
    runner.log(remote)
    runner.write_summary(f"| {remote} |")
    text = stream.getvalue() + (tmp_path / "summary").read_text()
    assert "\x1b" not in text and "\x07" not in text
    assert "HTTP 500 boom link bell" in text and "title=title" in text


def test_publish_goes_to_the_runners_stream_with_commands_broken(tmp_path: Path) -> None:
    runner, stream = make_runner(tmp_path)
    runner.publish("# Report\n::set-output name=status::succeeded\n")
    assert "# Report" in stream.getvalue()
    assert "::set-output" not in stream.getvalue()
    assert "# Report" in (tmp_path / "summary").read_text()
