"""What a user's job pays before the action sends its first request: image size, build, container start.

    python bench/container_start.py --runs 5

Needs a Docker engine (DOCKER_HOST). Measures, on the image built from the Dockerfile:
- the image's size, and the gzip size of `docker save` (about what a pull transfers);
- `docker build --no-cache`: what `image: Dockerfile` costs on every job (base image already present);
- `docker load` of the saved image: the unpacking half of pulling the released image (no network here);
- cold start to first request: from `docker run` (exactly as the runner runs the action, see
  tests/container/test_container.py) to the emulator receiving the batch create call, and to the container's exit;
- inside the container: bare interpreter start, and `-X importtime` of the entrypoint, of the SDK it
  uses and of the SDK it does not import.
Prints a Markdown table; `--json` prints the raw figures.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "tests" / "container"))

from test_container import RunnerHost  # noqa: E402  (the suite's runner-exact `docker run`)

from batch_arbiter.emulator import Emulator, EmulatorConfig  # noqa: E402

TAG = "batch-arbiter:bench"


def timed(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True)
    return time.perf_counter() - start


def image_bytes(tag: str) -> tuple[int, int]:
    size = int(
        subprocess.run(
            ["docker", "image", "inspect", "-f", "{{.Size}}", tag], capture_output=True, text=True, check=True
        ).stdout
    )
    packer = zlib.compressobj(6, zlib.DEFLATED, 31)  # gzip framing, as registries store layers
    packed = 0
    with subprocess.Popen(["docker", "save", tag], stdout=subprocess.PIPE) as proc:
        assert proc.stdout is not None
        while chunk := proc.stdout.read(1 << 20):
            packed += len(packer.compress(chunk))
    packed += len(packer.flush())
    return size, packed


def load_seconds(tag: str) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        archive = Path(tmp) / "image.tar"
        subprocess.run(["docker", "save", "-o", str(archive), tag], check=True)
        subprocess.run(["docker", "rmi", tag], check=True, capture_output=True)
        return timed(["docker", "load", "-i", str(archive)])


def first_request(tag: str, runs: int) -> tuple[list[float], list[float]]:
    """Seconds from `docker run` to the first API call, and to the container's exit, per run."""
    to_first, to_exit = [], []
    with Emulator(EmulatorConfig(processing_seconds=0.2)) as emulator:
        for _ in range(runs):
            emulator.clear_calls()
            with tempfile.TemporaryDirectory() as tmp:
                host = RunnerHost(Path(tmp), tag)
                (host.workspace / "ideas").mkdir()
                (host.workspace / "ideas" / "a.md").write_text("Propose one feature.\n")
                env = host.env(
                    prompt_files="ideas/a.md", api_key="bench-key", base_url=emulator.base_url, poll_interval="0.1"
                )
                start = time.perf_counter()
                proc = subprocess.Popen(
                    host.command(env), env=host.process_env(env), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
                )
                # The call log has no clock of its own: watch it closely instead.
                while not emulator.calls() and proc.poll() is None:
                    time.sleep(0.001)
                first = time.perf_counter() - start
                code = proc.wait()
                to_exit.append(time.perf_counter() - start)
                if code != 0 or not emulator.calls("create"):
                    raise SystemExit(f"the action failed (exit {code}); run the container suite to see why")
                to_first.append(first)
    return to_first, to_exit


def in_container(tag: str, runs: int) -> dict[str, float]:
    def py(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["docker", "run", "--rm", "--entrypoint", "python", tag, *args], capture_output=True, text=True, check=True
        )

    bare = statistics.median(
        timed(["docker", "run", "--rm", "--entrypoint", "python", tag, "-c", "pass"]) for _ in range(runs)
    )

    def cumulative_ms(stmt: str, module: str) -> float:
        # -X importtime reports microseconds; the row of the module itself carries the cumulative time.
        samples = []
        for _ in range(runs):
            lines = py("-X", "importtime", "-c", stmt).stderr.splitlines()
            row = next(line for line in lines if line.rsplit("|", 1)[-1].strip() == module)
            samples.append(int(row.split("|")[1]) / 1000)
        return statistics.median(samples)

    return {
        "container_python_pass_s": bare,
        "import_entrypoint_ms": cumulative_ms("import batch_arbiter.cli", "batch_arbiter.cli"),
        "import_anthropic_ms": cumulative_ms("import anthropic", "anthropic"),
        "import_google_genai_ms": cumulative_ms("import google.genai", "google.genai"),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    build = timed(["docker", "build", "--no-cache", "--quiet", "-t", TAG, str(ROOT)])
    size, packed = image_bytes(TAG)
    load = load_seconds(TAG)
    first, done = first_request(TAG, args.runs)
    inside = in_container(TAG, args.runs)
    figures: dict[str, Any] = {
        "image_mb": size / 1e6,
        "image_gzip_mb": packed / 1e6,
        "build_no_cache_s": build,
        "load_s": load,
        "first_request_s": first,
        "exit_s": done,
        **inside,
    }
    if args.json:
        print(json.dumps(figures, indent=2))
        return 0
    med = statistics.median
    print(
        "\n".join(
            [
                "| measure | value |",
                "|---|---:|",
                f"| image size (uncompressed) | {figures['image_mb']:.0f} MB |",
                f"| image size (gzip of docker save) | {figures['image_gzip_mb']:.0f} MB |",
                f"| `docker build --no-cache` (image: Dockerfile, every job) | {build:.1f} s |",
                f"| `docker load` of the saved image (unpacking part of a pull) | {load:.1f} s |",
                f"| `docker run` to first API request (median of {args.runs}) | {med(first):.2f} s "
                f"(min {min(first):.2f}, max {max(first):.2f}) |",
                f"| `docker run` to exit, one-request batch (median) | {med(done):.2f} s |",
                f"| container start + `python -c pass` (median) | {inside['container_python_pass_s']:.2f} s |",
                f"| import of the entrypoint | {inside['import_entrypoint_ms']:.0f} ms |",
                f"| import of `anthropic` (provider anthropic) | {inside['import_anthropic_ms']:.0f} ms |",
                f"| import of `google.genai` (provider gemini only) | {inside['import_google_genai_ms']:.0f} ms |",
            ]
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
