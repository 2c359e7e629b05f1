"""Helper of tests/test_cluster.py: a two-node Ray cluster on loopback, ct2yolo through it, the checks, one namespace.

Run as ``unshare --net --pid --fork --mount-proc python tests/ray_cluster_check.py CSV LOCAL_OUT RAY_OUT RESULT``
(root): the new network namespace has only ``lo``, which this script brings up, so Ray registers 127.0.0.1 and
its traffic cannot leave loopback; the new PID namespace means ``ray stop`` sees only this cluster's processes,
and every process left when this script ends is killed by the kernel. The script starts the head and a second
node (1 CPU and a small object store each), converts the CSV with ``--executor ray --ray-address
127.0.0.1:PORT``, compares every file of the result with LOCAL_OUT (the local executor's output, made by the
test) byte for byte, and writes RESULT (JSON).
With ``RAY_CHECK_LIFT`` set (JSON ``{"csv": …, "local": …, "out": …}``), it then lifts the Ray run's dataset
with ``lift --csv`` through the same cluster and compares that with the local executor's lift (``local``): label
maps and centroids byte for byte, lift's run records apart from when, how long and where they ran.
It exits 0 only when the Ray runs succeeded and every file is equal.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

PORT = 6391


def _files(root: Path) -> dict[str, bytes]:
    subs = ("images", "labels", "sidecars", "studies")
    return {p.relative_to(root).as_posix(): p.read_bytes() for s in subs for p in (root / s).rglob("*") if p.is_file()}


def _check_lift(spec: dict, dataset: str, ray_flags: list[str], env: dict, result: dict) -> bool:
    """``lift --csv`` of the Ray-made dataset through the cluster, compared with the local executor's lift."""
    cmd = [sys.executable, "-m", "yolo_spine", "lift", "--csv", spec["csv"], dataset, "--out", spec["out"], *ray_flags]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    stdout, stderr = proc.communicate(timeout=900)
    result |= {"lift_rc": proc.returncode, "lift_stdout": stdout[-2000:], "lift_stderr": stderr[-3000:]}
    result["lift_command_pid"] = proc.pid
    if proc.returncode != 0:
        return False
    from output_tree import comparable_tree  # beside this script; imports the checkout under test (PYTHONPATH)

    local, remote = comparable_tree(Path(spec["local"])), comparable_tree(Path(spec["out"]))
    result["lift_files"] = len(remote)
    result["lift_different"] = sorted(k for k in set(local) | set(remote) if local.get(k) != remote.get(k))
    records = [json.loads(p.read_text()) for p in sorted(Path(spec["out"]).glob("ledger/*.json"))]
    result["lift_workers"] = sorted({r["worker"] for r in records})
    result["lift_equal"] = not result["lift_different"] and len(remote) > 0
    return bool(result["lift_equal"])


def main(csv: str, local_out: str, ray_out: str, result_path: str, *extra: str) -> int:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "RAY_USAGE_STATS_ENABLED": "0"}
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=True).stdout
    result: dict = {"interfaces": [line.split(":")[1].strip() for line in links.splitlines()]}
    temp = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # Ray's socket paths must stay short
    ray = str(Path(sys.executable).with_name("ray"))
    head = [
        ray,
        "start",
        "--head",
        "--node-ip-address=127.0.0.1",
        f"--port={PORT}",
        "--num-cpus=1",
        "--object-store-memory=80000000",
        "--include-dashboard=false",
        "--disable-usage-stats",
        f"--temp-dir={temp}",
    ]
    try:
        started = subprocess.run(head, capture_output=True, text=True, env=env, timeout=300)
        result["head_rc"] = started.returncode
        if started.returncode != 0:
            result["head_log"] = (started.stdout + started.stderr)[-3000:]
            return 1
        # a second node (its own raylet and object store) joins the head: tasks are scheduled across nodes
        node = [ray, "start", f"--address=127.0.0.1:{PORT}", "--node-ip-address=127.0.0.1", "--num-cpus=1"]
        joined = subprocess.run([*node, "--object-store-memory=80000000"], capture_output=True, text=True, env=env)
        result["node_rc"] = joined.returncode
        if joined.returncode != 0:
            result["head_log"] = (joined.stdout + joined.stderr)[-3000:]
            return 1
        ray_flags = ["--executor", "ray", "--ray-address", f"127.0.0.1:{PORT}", "--workers", "2", "--task-cpus", "1"]
        cmd = [sys.executable, "-m", "yolo_spine", "ct2yolo", "--csv", csv, "--out", ray_out, *ray_flags, *extra]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        stdout, stderr = proc.communicate(timeout=900)
        result |= {"ct2yolo_rc": proc.returncode, "ct2yolo_stdout": stdout[-2000:], "stderr": stderr[-3000:]}
        # which processes converted the studies (ledger records): Ray workers, not the command's own process
        records = [json.loads(p.read_text()) for p in sorted(Path(ray_out).glob("ledger/*.json"))]
        result["workers"] = sorted({r["worker"] for r in records})
        result["command_pid"] = proc.pid
        nodes = subprocess.run([ray, "status", f"--address=127.0.0.1:{PORT}"], capture_output=True, text=True, env=env)
        result["ray_status"] = nodes.stdout[-2000:]
        active = nodes.stdout.split("Active:")[1].split("Pending:")[0] if "Active:" in nodes.stdout else ""
        result["nodes"] = sum(1 for line in active.splitlines() if "node_" in line)
        if proc.returncode != 0:
            return 1
        local, remote = _files(Path(local_out)), _files(Path(ray_out))
        result["files"] = len(remote)
        result["only_local"] = sorted(set(local) - set(remote))
        result["only_ray"] = sorted(set(remote) - set(local))
        result["different"] = sorted(k for k in set(local) & set(remote) if local[k] != remote[k])
        ok = not (result["only_local"] or result["only_ray"] or result["different"]) and len(remote) > 0
        result["equal"] = ok
        if ok and os.environ.get("RAY_CHECK_LIFT"):
            ok = _check_lift(json.loads(os.environ["RAY_CHECK_LIFT"]), ray_out, ray_flags, env, result)
        return 0 if ok else 1
    finally:
        subprocess.run([ray, "stop", "--force"], capture_output=True, env=env, timeout=120)
        shutil.rmtree(temp, ignore_errors=True)
        Path(result_path).write_text(json.dumps(result, indent=1), encoding="utf-8")


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
