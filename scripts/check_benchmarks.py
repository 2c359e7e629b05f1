"""List the BENCHMARKS.md sections that are older than the code they measure.

Every section (``<!-- bench:NAME -->`` … ``<!-- /bench:NAME -->``) starts with a marker that the bench script
writes: ``<!-- measured: commit abc1234; paths scripts/bench_x.py yolo_spine/x/ -->``. A section is stale when
git shows a change to any of its paths between that commit and the working tree (committed or not), when the
commit is unknown to this repository or was recorded as ``-dirty`` (measured with uncommitted changes), or
when the marker is missing.

    python scripts/check_benchmarks.py            # list every section, fresh or stale
    python scripts/check_benchmarks.py --strict   # exit 1 when any section is stale (CI)
    python scripts/check_benchmarks.py --mark     # write "stale: re-run pending" into stale sections

``--mark`` puts one line under each stale section's marker (and removes it from fresh ones); a bench script
that rewrites its section drops the line.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

SECTION_RE = re.compile(r"<!-- bench:(?P<name>[\w.-]+) -->\n(?P<body>.*?)<!-- /bench:(?P=name) -->", re.S)
MARKER_RE = re.compile(r"<!-- measured: commit (?P<commit>[0-9A-Za-z._-]+); paths (?P<paths>[^>]*?) -->")
STALE_LINE_RE = re.compile(r"^\*\*stale: re-run pending\*\*.*\n", re.M)


@dataclass
class Section:
    """One section of BENCHMARKS.md and its freshness.

    Attributes:
        name: Section name.
        commit: The commit it measured (``None``: no marker).
        paths: Source paths it measures.
        changed: Measured files changed since ``commit``.
        reason: Why it is stale (empty when fresh).
    """

    name: str
    commit: str | None
    paths: list[str]
    changed: list[str] = field(default_factory=list)
    reason: str = ""

    @property
    def stale(self) -> bool:
        """Whether the section is older than its code (or cannot be dated)."""
        return bool(self.reason)


def _git(repo: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True)


def parse_sections(text: str) -> list[Section]:
    """Sections of a BENCHMARKS.md text with their markers (not yet checked against git)."""
    out = []
    for m in SECTION_RE.finditer(text):
        marker = MARKER_RE.search(m["body"])
        if marker is None:
            out.append(Section(m["name"], None, [], reason="no '<!-- measured: commit …; paths … -->' marker"))
        else:
            out.append(Section(m["name"], marker["commit"], marker["paths"].split()))
    return out


def check(text: str, repo: Path) -> list[Section]:
    """Parse ``text`` and decide, with git in ``repo``, which sections are stale."""
    sections = parse_sections(text)
    for s in sections:
        if s.reason:
            continue
        if not s.paths:
            s.reason = "the marker names no measured paths"
        elif s.commit.endswith("-dirty"):
            s.reason = f"measured at {s.commit} (uncommitted changes to the measured code)"
        elif _git(repo, "rev-parse", "--verify", "--quiet", f"{s.commit}^{{commit}}").returncode != 0:
            s.reason = f"commit {s.commit} is not in this repository"
        else:
            diff = _git(repo, "diff", "--name-only", s.commit, "--", *s.paths)
            if diff.returncode != 0:
                s.reason = f"git diff failed: {diff.stderr.strip()}"
            else:
                s.changed = sorted(set(diff.stdout.split()))
                if s.changed:
                    s.reason = f"measured at {s.commit}; changed since: {', '.join(s.changed)}"
    return sections


def mark(text: str, sections: list[Section]) -> str:
    """``text`` with a ``**stale: re-run pending**`` line under the marker of each stale section only."""
    by_name = {s.name: s for s in sections}

    def repl(m: re.Match) -> str:
        body = STALE_LINE_RE.sub("", m["body"])
        s = by_name.get(m["name"])
        if s is not None and s.stale:
            line = f"**stale: re-run pending** ({s.reason}).\n"
            marker = MARKER_RE.search(body)
            at = marker.end() + 1 if marker else 0
            body = body[:at] + line + body[at:]
        return f"<!-- bench:{m['name']} -->\n{body}<!-- /bench:{m['name']} -->"

    return SECTION_RE.sub(repl, text)


def main(argv: list[str] | None = None) -> int:
    """Print each section's state; return the exit status (1 with ``--strict`` when any is stale)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--file", type=Path, default=ROOT / "BENCHMARKS.md", help="default: the checkout's BENCHMARKS.md")
    ap.add_argument("--repo", type=Path, default=None, help="git checkout (default: the file's folder)")
    ap.add_argument("--strict", action="store_true", help="exit 1 when any section is stale")
    ap.add_argument("--mark", action="store_true", help="write 'stale: re-run pending' into stale sections")
    args = ap.parse_args(argv)
    if not args.file.is_file():
        print(f"error: {args.file} does not exist", file=sys.stderr)
        return 2
    repo = args.repo or args.file.resolve().parent
    text = args.file.read_text(encoding="utf-8")
    sections = check(text, repo)
    if not sections:
        print(f"error: no '<!-- bench:NAME -->' sections in {args.file}", file=sys.stderr)
        return 2
    for s in sections:
        print(f"{'stale' if s.stale else 'fresh'}  {s.name}: {s.reason or f'measured at {s.commit}'}")
    if args.mark:
        new = mark(text, sections)
        if new != text:
            args.file.write_text(new, encoding="utf-8")
    n_stale = sum(s.stale for s in sections)
    print(f"{n_stale} of {len(sections)} sections stale")
    return 1 if args.strict and n_stale else 0


if __name__ == "__main__":
    sys.exit(main())
