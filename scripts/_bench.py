"""Shared helpers for ``scripts/bench_*.py``: machine description, medians, and BENCHMARKS.md sections.

Each benchmark owns one section of BENCHMARKS.md, delimited by ``<!-- bench:NAME -->`` and
``<!-- /bench:NAME -->``; re-running a benchmark replaces only its own section.
"""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS_MD = ROOT / "BENCHMARKS.md"


def machine() -> str:
    """One line describing this machine (CPU model, cores, memory, Python, torch)."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f", {kb / 2**20:.0f} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    try:
        import torch

        tv = f", torch {torch.__version__}, CUDA {'yes' if torch.cuda.is_available() else 'no'}"
    except ImportError:
        tv = ""
    return f"{cpu}, {os.cpu_count()} cores{mem}, Python {platform.python_version()}{tv}"


def git_rev() -> str:
    """Short commit hash of the benchmarked tree (``unknown`` outside git)."""
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
        return out.stdout.strip() or "unknown"
    except OSError:
        return "unknown"


def median_seconds(fn: Callable[[], object], repeat: int = 3) -> tuple[float, list[float]]:
    """Run ``fn`` ``repeat`` times; return the median wall time and all times (seconds)."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), times


def command_line() -> str:
    """The command that ran this benchmark, as a user would type it."""
    return " ".join(["python", *[str(a) for a in sys.argv]])


def write_section(name: str, body: str) -> Path:
    """Replace (or append) the ``name`` section of BENCHMARKS.md with ``body`` (Markdown)."""
    start, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
    text = BENCHMARKS_MD.read_text() if BENCHMARKS_MD.exists() else "# Benchmarks\n"
    block = f"{start}\n{body.rstrip()}\n{end}"
    if start in text and end in text:
        before, rest = text.split(start, 1)
        _, after = rest.split(end, 1)
        text = before + block + after
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    BENCHMARKS_MD.write_text(text)
    return BENCHMARKS_MD
