"""scripts/check_benchmarks.py: a section is stale exactly when the code it measures changed since its commit."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from scripts import check_benchmarks as cb

ROOT = Path(__file__).resolve().parent.parent


def _git(repo: Path, *args: str) -> str:
    out = subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t.invalid", *args],
        cwd=repo,
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()


def _commit(repo: Path, files: dict[str, str], message: str) -> str:
    for rel, text in files.items():
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        (repo / rel).write_text(text)
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", message)
    return _git(repo, "rev-parse", "--short", "HEAD")


def _section(name: str, commit: str, paths: str) -> str:
    marker = f"<!-- measured: commit {commit}; paths {paths} -->"
    return f"<!-- bench:{name} -->\n{marker}\n| a | 1 |\n<!-- /bench:{name} -->\n"


@pytest.fixture
def repo(tmp_path: Path) -> tuple[Path, str]:
    r = tmp_path / "repo"
    r.mkdir()
    _git(r, "init", "-q")
    first = _commit(
        r,
        {"pkg/ct/drr.py": "x = 1\n", "pkg/merge.py": "y = 1\n", "scripts/bench_ct.py": "", "README.md": "hi\n"},
        "first",
    )
    return r, first


def _write_md(repo: Path, first: str) -> Path:
    md = repo / "BENCHMARKS.md"
    md.write_text(
        "# Benchmarks\n\n## CT\n"
        + _section("ct", first, "scripts/bench_ct.py pkg/ct/")
        + "\n## Merge\n"
        + _section("merge", first, "pkg/merge.py")
    )
    return md


def test_fresh_until_a_measured_path_changes(repo):
    r, first = repo
    md = _write_md(r, first)
    _commit(r, {"BENCHMARKS.md": md.read_text(), "README.md": "changed\n"}, "docs only")
    states = {s.name: s for s in cb.check(md.read_text(), r)}
    assert not states["ct"].stale and not states["merge"].stale
    _commit(r, {"pkg/ct/drr.py": "x = 2\n"}, "faster drr")
    states = {s.name: s for s in cb.check(md.read_text(), r)}
    assert states["ct"].stale and states["ct"].changed == ["pkg/ct/drr.py"]
    assert not states["merge"].stale


def test_uncommitted_change_unknown_commit_dirty_and_missing_marker_are_stale(repo):
    r, first = repo
    md = _write_md(r, first)
    (r / "pkg" / "merge.py").write_text("y = 2\n")  # not committed
    text = (
        md.read_text()
        + _section("lost", "deadbee", "pkg/merge.py")
        + _section("dirty", f"{first}-dirty", "pkg/ct/")
        + "<!-- bench:bare -->\n| a | 1 |\n<!-- /bench:bare -->\n"
    )
    states = {s.name: s for s in cb.check(text, r)}
    assert states["merge"].stale and "pkg/merge.py" in states["merge"].reason
    assert not states["ct"].stale
    assert "not in this repository" in states["lost"].reason
    assert "uncommitted" in states["dirty"].reason
    assert "marker" in states["bare"].reason


def test_cli_strict_exit_status_and_mark(repo):
    r, first = repo
    md = _write_md(r, first)
    script = ROOT / "scripts" / "check_benchmarks.py"

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, str(script), "--file", str(md), *args], capture_output=True, text=True)

    ok = run("--strict")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "0 of 2 sections stale" in ok.stdout
    _commit(r, {"pkg/merge.py": "y = 3\n"}, "merge change")
    assert run().returncode == 0  # listing only
    bad = run("--strict")
    assert bad.returncode == 1 and "stale  merge" in bad.stdout and "fresh  ct" in bad.stdout
    assert run("--mark").returncode == 0
    text = md.read_text()
    merge_body = text.split("<!-- bench:merge -->")[1]
    ct_body = text.split("<!-- bench:ct -->")[1].split("<!-- /bench:ct -->")[0]
    assert "**stale: re-run pending**" in merge_body and "pkg/merge.py" in merge_body
    assert "stale" not in ct_body
    # marking twice does not stack lines; a section that became fresh loses its line
    assert run("--mark").returncode == 0
    assert md.read_text().count("stale: re-run pending") == 1
    md.write_text(md.read_text().replace(f"commit {first}; paths pkg/merge.py", "commit HEAD; paths pkg/merge.py"))
    assert run("--mark", "--strict").returncode == 0
    assert "stale: re-run pending" not in md.read_text()


def test_the_projects_benchmarks_declare_their_commit_and_paths():
    """Every section of this project's BENCHMARKS.md carries a marker whose paths exist."""
    sections = cb.parse_sections((ROOT / "BENCHMARKS.md").read_text(encoding="utf-8"))
    assert {s.name for s in sections} >= {"merge", "augment", "train", "predict", "ct2yolo", "lift"}
    for s in sections:
        assert s.commit and s.paths, s.name
        assert all((ROOT / p).exists() for p in s.paths), (s.name, s.paths)
