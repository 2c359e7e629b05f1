"""Shared helpers for ``scripts/bench_*.py``: machine description, medians, and BENCHMARKS.md sections.

Each benchmark owns one section of BENCHMARKS.md, delimited by ``<!-- bench:NAME -->`` and
``<!-- /bench:NAME -->``; re-running a benchmark replaces only its own section. The section's first line is a
marker naming the commit it measured and the source paths it measures,
``<!-- measured: commit abc1234; paths scripts/bench_x.py yolo_spine/x/ -->``, which
``scripts/check_benchmarks.py`` compares with git to list the sections older than their code.
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


def git_rev(paths: list[str] | None = None) -> str:
    """Short commit hash of the benchmarked tree (``unknown`` outside git).

    With ``paths``, ``-dirty`` is appended when any of them has uncommitted changes: the figures then belong
    to no commit, and ``scripts/check_benchmarks.py`` reports the section as stale.
    """
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
        rev = out.stdout.strip() or "unknown"
        if paths and rev != "unknown":
            st = subprocess.run(
                ["git", "status", "--porcelain", "--", *paths], cwd=ROOT, capture_output=True, text=True
            )
            if st.stdout.strip():
                rev += "-dirty"
        return rev
    except OSError:
        return "unknown"


def measured_marker(paths: list[str]) -> str:
    """The marker line naming the commit measured and the source paths measured (see the module docstring)."""
    return f"<!-- measured: commit {git_rev(paths)}; paths {' '.join(paths)} -->"


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


def write_section(name: str, body: str, paths: list[str]) -> Path:
    """Replace (or append) the ``name`` section of BENCHMARKS.md with ``body`` (Markdown).

    Args:
        name: Section name (``<!-- bench:NAME -->``).
        body: Markdown of the section.
        paths: Source files and folders (relative to the checkout) whose code the section measures; written
            with the commit into the section's marker line.
    """
    missing = [p for p in paths if not (ROOT / p).exists()]
    if missing:
        raise ValueError(f"measured paths do not exist: {', '.join(missing)}")
    start, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
    text = BENCHMARKS_MD.read_text(encoding="utf-8") if BENCHMARKS_MD.exists() else "# Benchmarks\n"
    block = f"{start}\n{measured_marker(paths)}\n{body.rstrip()}\n{end}"
    if start in text and end in text:
        before, rest = text.split(start, 1)
        _, after = rest.split(end, 1)
        text = before + block + after
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    BENCHMARKS_MD.write_text(text, encoding="utf-8")
    return BENCHMARKS_MD
