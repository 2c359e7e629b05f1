"""Helper of tests/test_cluster.py: several studies per Ray task, one of them failing, in a loopback-only namespace.

Run as ``unshare --net --pid --fork --mount-proc python tests/ray_batch_check.py WORK RESULT`` (root): it brings up
``lo`` (the namespace's only interface), runs five studies through the study ledger on a private Ray instance (2
CPUs) in tasks of three studies (``task_batch=3``): ``bad`` fails at once (a bad input), ``flaky`` fails on its
first attempt; then writes RESULT (JSON) with the summary, the ledger records, this process's id and niceness.
The test reads the work folder itself, and gives this script a HOME of its own (a new Ray instance writes
``~/.ray/auth_token``, which later ``ray start --address`` joins of the same user pick up).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from yolo_spine.errors import DataError
from yolo_spine.ledger import StudyLedger, StudyTask, options_hash
from yolo_spine.parallel import make_executor


def write(payload: dict, folder: Path) -> None:
    """One study: ``bad`` fails every time, ``flaky`` once (a marker file remembers), the others write two files."""
    if payload["name"] == "bad":
        (folder / "half.txt").write_text("half")
        raise DataError("this study's label map is empty")
    marker = Path(payload["marker"])
    if payload["name"] == "flaky" and not marker.exists():
        marker.write_text("failed once")
        raise RuntimeError("transient")
    (folder / "a").mkdir()
    (folder / "a" / f"{payload['name']}.txt").write_text(payload["name"])
    (folder / "pid.txt").write_text(str(os.getpid()))
    (folder / "nice.txt").write_text(str(os.nice(0)))  # the worker's priority


def main(work: str, result_path: str) -> int:
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=True).stdout
    result: dict = {"interfaces": [line.split(":")[1].strip() for line in links.splitlines()]}
    result |= {"pid": os.getpid(), "nice": os.nice(0)}
    temp = os.environ["RAY_TMPDIR"] = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # Ray's socket paths stay short
    names = ["s0", "bad", "flaky", "s3", "s4"]
    marker = str(Path(work).parent / "flaky.marker")
    tasks = [(StudyTask(n, {"volume": n * 4}, options_hash({"v": 1})), {"name": n, "marker": marker}) for n in names]
    try:
        with make_executor("ray", workers=2, task_cpus=1, n_items=len(tasks)) as ex:
            summary = StudyLedger(work).run(tasks, write, ex, retries=1, progress=False, task_batch=3)
        result |= {"done": summary.done, "failed": summary.failed}
        result["records"] = {p.stem: json.loads(p.read_text()) for p in sorted(Path(work, "ledger").glob("*.json"))}
    finally:
        shutil.rmtree(temp, ignore_errors=True)
        Path(result_path).write_text(json.dumps(result, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
