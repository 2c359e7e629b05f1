"""Benchmark batch scale: ``ct2yolo --csv`` on the local executor and on Ray, and a plan past this machine.

Measured here (each run is one whole ``yolo_spine ct2yolo --csv`` command in a fresh process, as a user runs it):

* per-study seconds and peak memory of the example CT (LIDC-IDRI-0001, 512×512×133) with the default spine
  conversion (three planes every slice, AP + lateral DRRs at 512²), from the study ledger's records;
* throughput of ``--studies`` copies of it (listed under different study ids) with 1 and 2 workers, on the local
  executor and on Ray (``--executor ray`` against a Ray head started on 127.0.0.1); one thread per worker on both
  sides (``--task-cpus 1``, ``drr.threads=1``, ``OMP_NUM_THREADS=1``, ``OPENCV_FOR_THREADS_NUM=1``); parallel
  efficiency 1 → 2 workers; Ray's overhead over the local executor at 2 workers, per study, with one study per
  task (the automatic choice for 4 studies on 2 workers) and with ``--task-batch 2`` (one task per worker) in the
  same run; Ray's start-up (``ray start``), a command's own start-up on Ray (a fresh driver: ``import ray``,
  connecting, the job's two new worker processes, disconnecting; Ray starts workers per job), the local
  executor's start-up measured the same way (its fork server and two workers) and a no-op task's round trip,
  reported apart from the per-study figures; the overhead with each side's start-up taken out; the CPU seconds
  Ray's own processes (GCS, raylet, agents) use during a 2-worker run, which a 2-core machine takes from the workers;
* peak memory of one study of the example CT resampled to 512×512×800 (linear for HU, nearest for labels);
* SHA-256 speed (the driver hashes every input before any study runs) and bytes/files written per study.

From these, the arithmetic for 1,228 CTs on one 16-core node and for 10,000 CTs on N nodes (assumptions stated
in the section), GB written per 1,000 studies, and which limit is met first.

Ray runs in a network namespace that has only the loopback interface (``unshare --net``, as root; the script
re-runs itself there): Ray 2.60 registers the machine's external address otherwise, and this traffic must stay
on loopback. Without root/unshare or Ray, ``--no-ray`` measures the local executor alone.

    python scripts/bench_scale.py                    # the full measurement (≤ 10 min on 2 cores)
    python scripts/bench_scale.py --tiny --no-write  # smoke test: a cropped CT, small images, print only
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from scripts._bench import command_line, git_rev, machine, write_section

#: What this section measures (scripts/check_benchmarks.py).
_PACKAGE = ("batch.py", "ledger.py", "parallel.py", "cluster.py", "ct/batch.py", "ct/convert.py")
MEASURES = ["scripts/bench_scale.py", *(f"yolo_spine/{m}" for m in _PACKAGE)]
PORT = 6393
IN_NAMESPACE = "YOLO_SPINE_BENCH_SCALE_NS"
#: One thread per worker, on both executors: the libraries read these when they load.
THREAD_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENCV_FOR_THREADS_NUM": "1"}
WORKLOAD = ("--set", "drr.threads=1", "--task-cpus", "1")
TINY_WORKLOAD = ("--step", "4", "--size", "128", "--set", "drr.threads=1", "--task-cpus", "1")
TARGETS = {"ray_overhead": 0.10, "efficiency": 0.8, "peak_gib": 4.0}
GIB = 2**30


# ------------------------------------------------------------------------------------------------- inputs
def example_inputs(tmp: Path, tiny: bool) -> tuple[Path, Path]:
    """The example CT and its labels (``tiny``: cropped to the spine's half and every other voxel in-plane)."""
    import SimpleITK as sitk

    from yolo_spine.data import example_ct

    ex = example_ct()
    if not tiny:
        return ex.volume, ex.labels
    out = []
    for src, name in ((ex.volume, "ct.nii.gz"), (ex.labels, "labels.nii.gz")):
        img = sitk.ReadImage(str(src))
        sx, sy, _ = img.GetSize()
        sitk.WriteImage(img[sx // 4 : 3 * sx // 4 : 2, sy // 4 : sy : 2, :], str(tmp / name))
        out.append(tmp / name)
    return out[0], out[1]


def volume_size(path: Path) -> tuple[int, ...]:
    """A volume's size in voxels (x, y, z), from its header."""
    import SimpleITK as sitk

    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    reader.ReadImageInformation()
    return tuple(reader.GetSize())


def resampled_inputs(volume: Path, labels: Path, tmp: Path, depth: int) -> tuple[Path, Path, tuple[int, int, int]]:
    """The CT (linear) and labels (nearest) resampled along z to ``depth`` slices, in-plane grid unchanged."""
    import SimpleITK as sitk

    out, new_size = [], (0, 0, 0)
    for src, name, interp in ((volume, "big_ct.nii.gz", sitk.sitkLinear), (labels, "big_labels.nii.gz", None)):
        img = sitk.ReadImage(str(src))
        size, spacing = img.GetSize(), img.GetSpacing()
        new_size = (size[0], size[1], depth)
        new_spacing = (spacing[0], spacing[1], spacing[2] * size[2] / depth)
        res = sitk.Resample(
            img,
            new_size,
            sitk.Transform(),
            interp if interp is not None else sitk.sitkNearestNeighbor,
            img.GetOrigin(),
            new_spacing,
            img.GetDirection(),
            -1024 if interp is not None else 0,
            img.GetPixelID(),
        )
        sitk.WriteImage(res, str(tmp / name), useCompression=True)
        out.append(tmp / name)
    return out[0], out[1], new_size


def study_list(tmp: Path, volume: Path, labels: Path, n: int, name: str) -> Path:
    """A CSV listing the same CT ``n`` times under different study ids."""
    path = tmp / f"{name}.csv"
    path.write_text("volume,labels,study\n" + "".join(f"{volume},{labels},{name}{k}\n" for k in range(n)))
    return path


# ------------------------------------------------------------------------------------------------- one run
def run_ct2yolo(
    csv: Path,
    out: Path,
    workers: int,
    workload: tuple[str, ...],
    ray: str | None,
    task_batch: int = 0,
    ray_temp: Path | None = None,
) -> dict[str, Any]:
    """One ``ct2yolo --csv`` command in a fresh process: wall seconds, its own peak RSS, the ledger records."""
    cmd = [sys.executable, "-m", "yolo_spine", "--quiet", "ct2yolo", "--csv", str(csv), "--out", str(out)]
    cmd += ["--overwrite", "--workers", str(workers), "--task-batch", str(task_batch), *workload]
    if ray is not None:
        cmd += ["--executor", "ray", "--ray-address", ray]
    env = {**os.environ, **THREAD_ENV, "RAY_USAGE_STATS_ENABLED": "0"}
    with tempfile.TemporaryFile() as log:
        daemons0 = ray_daemon_cpu_s() if ray is not None else 0.0
        t0 = time.perf_counter()
        workers0 = ray_worker_logs(ray_temp)
        proc = subprocess.Popen(cmd, stdout=log, stderr=log, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - t0
        started = ray_worker_logs(ray_temp) - workers0  # task-worker processes this command's job started
        daemons = ray_daemon_cpu_s() - daemons0 if ray is not None else 0.0
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            log.seek(0)
            raise RuntimeError(f"{' '.join(cmd)} failed:\n{log.read().decode(errors='replace')[-3000:]}")
    records = [json.loads(p.read_text()) for p in sorted((out / "ledger").glob("*.json"))]
    files = [p for p in out.rglob("*") if p.is_file()]
    return {
        "seconds": seconds,
        "command_cpu_s": usage.ru_utime + usage.ru_stime,  # the command and the children it waited for
        "ray_daemon_cpu_s": daemons,
        "command_peak_bytes": usage.ru_maxrss * 1024,
        "study_seconds": [r["seconds"] for r in records],
        "study_cpu_seconds": [r.get("cpu_seconds") for r in records],
        "study_workers": [r["worker"] for r in records],  # records sorted by study: the order they were sent
        "ray_workers_started": len(started),
        "study_peak_bytes": [r["peak_memory_bytes"] for r in records],
        "workers": sorted({r["worker"] for r in records}),
        "bytes": sum(p.stat().st_size for p in files),
        "files": len(files),
        "record_bytes": statistics.median((out / "ledger" / f"{r['study']}.json").stat().st_size for r in records),
    }


def repeated(
    n: int,
    csv: Path,
    out: Path,
    workers: int,
    workload: tuple[str, ...],
    ray: str | None,
    task_batch: int = 0,
    ray_temp: Path | None = None,
) -> list[dict]:
    runs = []
    for _ in range(n):
        runs.append(run_ct2yolo(csv, out, workers, workload, ray, task_batch, ray_temp))
        label = f"{'ray' if ray else 'local'} x{workers}" + (f" task-batch {task_batch}" if task_batch else "")
        print(f"  {label}: {runs[-1]['seconds']:.1f} s", flush=True)
    shutil.rmtree(out, ignore_errors=True)
    return runs


# ---------------------------------------------------------------------------------------------------- Ray
def ray_cli() -> str:
    return str(Path(sys.executable).with_name("ray"))


def start_ray(temp: Path, worker_niceness: int | None = 0) -> float:
    """Start a Ray head on 127.0.0.1 with 2 CPUs; return the seconds ``ray start`` took.

    ``worker_niceness``: the task workers' niceness above the head's (``RAY_worker_niceness``; ``None``: Ray's
    default, 15, which lets every other process on the node, the command's own included, take the cores first;
    0: the priority of the command that started them, as the local executor's workers and the executor's own
    private Ray instance have).
    """
    cmd = [ray_cli(), "start", "--head", "--node-ip-address=127.0.0.1", f"--port={PORT}", "--num-cpus=2"]
    cmd += ["--object-store-memory=200000000", "--include-dashboard=false", "--disable-usage-stats"]
    cmd += [f"--temp-dir={temp}"]
    t0 = time.perf_counter()
    env = {**os.environ, **THREAD_ENV}
    if worker_niceness is not None:
        env["RAY_worker_niceness"] = str(worker_niceness)
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    if proc.returncode != 0:
        raise RuntimeError(f"ray start failed:\n{(proc.stdout + proc.stderr)[-3000:]}")
    return time.perf_counter() - t0


#: Ray's own long-lived processes (not task workers), by executable name or by a word of the command line.
RAY_DAEMONS = ("gcs_server", "raylet", "log_monitor", "monitor.py", "dashboard", "runtime_env", "agent")


def ray_daemon_cpu_s() -> float:
    """CPU seconds used so far by Ray's own processes in this (PID) namespace: GCS, raylet, agents, monitors.

    Task workers (``default_worker.py``) and commands are left out: the difference around a command is what Ray's
    machinery itself costs while the studies run, CPU that the two workers cannot use on a 2-core machine.
    """
    import psutil

    total = 0.0
    for proc in psutil.process_iter(["name", "cmdline", "cpu_times"]):
        info = proc.info
        words = " ".join(info.get("cmdline") or []) + " " + (info.get("name") or "")
        if "default_worker" in words or not any(d in words for d in RAY_DAEMONS) or info.get("cpu_times") is None:
            continue
        total += info["cpu_times"].user + info["cpu_times"].system
    return total


def cache_file(tiny: bool) -> Path:
    """Where the last run's measurements are kept (JSON; ``--report-only`` reads them; ``--tiny`` apart)."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "yolo_spine" / "bench_scale" / ("results-tiny.json" if tiny else "results.json")


def ray_worker_logs(temp: Path | None) -> set[str]:
    """The log files of every Ray task-worker process started so far (one per process).

    Read after the fact, so counting them costs the run nothing.
    """
    if temp is None:
        return set()
    return {p.name for p in temp.glob("session_*/logs/python-core-worker-*.log")}


def _noop(x: int) -> int:
    return x


def _sleepy_pid(seconds: float) -> int:
    time.sleep(seconds)
    return os.getpid()


#: How long each of the job start-up probe's two tasks sleeps (so that they need two worker processes).
PROBE_SLEEP_S = 0.3


def job_startup_probe(address: str) -> dict[str, float]:
    """What a command pays once on Ray, measured in this (fresh) process: import, connect, two new workers, close."""
    t0 = time.perf_counter()
    from yolo_spine.cluster import RayExecutor, import_ray

    ray = import_ray()
    t1 = time.perf_counter()
    ex = RayExecutor(2, task_cpus=1, address=address)
    t2 = time.perf_counter()
    pids = [o.get() for o in ex.map(_sleepy_pid, [PROBE_SLEEP_S] * 2, progress=False)]
    t3 = time.perf_counter()
    ex.close()
    ray.shutdown()
    t4 = time.perf_counter()
    return {
        "import_s": t1 - t0,
        "connect_s": t2 - t1,
        "workers_s": t3 - t2 - PROBE_SLEEP_S,
        "close_s": t4 - t3,
        "total_s": t4 - t0 - PROBE_SLEEP_S,
        "worker_processes": len(set(pids)),
    }


def local_startup_probe() -> dict[str, float]:
    """The local executor's counterpart of :func:`job_startup_probe`: its fork server and two worker processes."""
    t0 = time.perf_counter()
    from yolo_spine.parallel import LocalExecutor

    t1 = time.perf_counter()
    ex = LocalExecutor(2, task_cpus=1)
    pids = [o.get() for o in ex.map(_sleepy_pid, [PROBE_SLEEP_S] * 2, progress=False)]
    t2 = time.perf_counter()
    ex.close()
    t3 = time.perf_counter()
    return {
        "import_s": t1 - t0,
        "workers_s": t2 - t1 - PROBE_SLEEP_S,
        "close_s": t3 - t2,
        "total_s": t3 - t0 - PROBE_SLEEP_S,
        "worker_processes": len(set(pids)),
    }


def job_startup(address: str | None, n: int) -> dict[str, Any]:
    """A start-up probe in ``n`` fresh processes (each a new Ray job, as each command is): the medians.

    ``address`` None probes the local executor (:func:`local_startup_probe`), else Ray (:func:`job_startup_probe`).
    """
    runs = []
    for _ in range(n):
        probe = ["--local-startup-probe"] if address is None else ["--job-startup-probe", address]
        cmd = [sys.executable, __file__, *probe]
        out = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **THREAD_ENV}, timeout=300)
        if out.returncode != 0:
            raise RuntimeError(f"the job start-up probe failed:\n{out.stderr[-3000:]}")
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    return {k: statistics.median(r[k] for r in runs) for k in runs[0]} | {"runs": [r["total_s"] for r in runs]}


def ray_noop_overhead(address: str, n: int) -> dict[str, float]:
    """Connect a driver, then no-op tasks through :class:`RayExecutor` (2 in flight): seconds per task."""
    from yolo_spine.cluster import RayExecutor, import_ray

    ray = import_ray()
    t0 = time.perf_counter()
    ex = RayExecutor(2, task_cpus=1, address=address)
    connect = time.perf_counter() - t0
    t0 = time.perf_counter()
    list(ex.map(_noop, range(4), progress=False))  # the first tasks start the worker processes
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    outs = list(ex.map(_noop, range(n), progress=False))
    per_task = (time.perf_counter() - t0) / n
    assert [o.get() for o in outs] == list(range(n))
    ex.close()
    ray.shutdown()
    return {"connect_s": connect, "first_tasks_s": first, "noop_task_s": per_task}


# ------------------------------------------------------------------------------------------------ the bench
def measure(args: argparse.Namespace) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="bench_scale_", dir=args.tmp))
    res: dict[str, Any] = {"studies": args.studies, "repeat": args.repeat, "tiny": args.tiny}
    workload = TINY_WORKLOAD if args.tiny else WORKLOAD
    res["workload"] = " ".join(workload)
    try:
        volume, labels = example_inputs(tmp, args.tiny)
        res["example_size"] = list(volume_size(volume))
        res["input_bytes"] = volume.stat().st_size + labels.stat().st_size
        t0 = time.perf_counter()
        for p in (volume, labels):
            hashlib.sha256(p.read_bytes()).hexdigest()
        res["sha256_bytes_per_s"] = res["input_bytes"] / (time.perf_counter() - t0)
        csv = study_list(tmp, volume, labels, args.studies, "ex")
        print("local executor", flush=True)
        res["local"] = {w: repeated(args.repeat, csv, tmp / "out", w, workload, None) for w in (1, 2)}
        res["local_job"] = job_startup(None, args.repeat + 1)
        if not args.no_ray:
            temp = Path(tempfile.mkdtemp(prefix="ray", dir="/tmp"))  # Ray's socket paths must stay short
            try:
                res["ray_start_s"] = start_ray(temp)
                address = f"127.0.0.1:{PORT}"
                res["ray_noop"] = ray_noop_overhead(address, args.noop_tasks)
                res["ray_job"] = job_startup(address, args.repeat + 1)
                print("ray executor", flush=True)
                res["ray"] = {w: repeated(args.repeat, csv, tmp / "out", w, workload, address, 0, temp) for w in (1, 2)}
                # the same 2-worker run with the studies split evenly into one task per worker
                batch = -(-args.studies // 2)
                res["ray_batched"] = {
                    "task_batch": batch,
                    2: repeated(args.repeat, csv, tmp / "out", 2, workload, address, batch, temp),
                }
            finally:
                subprocess.run([ray_cli(), "stop", "--force"], capture_output=True, timeout=120)
                shutil.rmtree(temp, ignore_errors=True)
            temp = Path(tempfile.mkdtemp(prefix="ray", dir="/tmp"))
            try:  # the same 2-worker runs on a head with Ray's default worker niceness (15)
                start_ray(temp, worker_niceness=None)
                print("ray executor, Ray's default worker niceness", flush=True)
                res["ray_nice15"] = {2: repeated(args.repeat, csv, tmp / "out", 2, workload, address, 0, temp)}
            finally:
                subprocess.run([ray_cli(), "stop", "--force"], capture_output=True, timeout=120)
                shutil.rmtree(temp, ignore_errors=True)
        print(f"resampled CT, {args.depth} slices", flush=True)
        big_vol, big_lab, size = resampled_inputs(volume, labels, tmp, args.depth)
        res["big_size"] = list(size)
        res["big_input_bytes"] = big_vol.stat().st_size + big_lab.stat().st_size
        big_csv = study_list(tmp, big_vol, big_lab, 1, "big")
        res["big"] = run_ct2yolo(big_csv, tmp / "big_out", 1, workload, None)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return res


# ---------------------------------------------------------------------------------------------------- report
def _med(runs: list[dict], key: str = "seconds") -> float:
    return statistics.median(r[key] for r in runs)


def _spread(runs: list[dict]) -> str:
    return ", ".join(f"{r['seconds']:.1f}" for r in runs)


def _verdict(ok: bool) -> str:
    return "met" if ok else "**MISSED**"


def ray_connection_s(res: dict[str, Any]) -> float:
    """What only a Ray command pays, once: ``import ray``, connecting and disconnecting (a fresh driver's medians).

    The job's new worker processes are not in it: the local executor starts its worker processes too, inside its
    own figures.
    """
    job = res["ray_job"]
    return job["import_s"] + job["connect_s"] + job["close_s"]


def startup_free_overhead(res: dict[str, Any], key: str = "ray") -> float:
    """Ray over local at 2 workers with each command's own start-up taken out on both sides.

    Ray: ``import ray``, connect, the job's two new worker processes, disconnect; local: its fork server and two
    worker processes. Each measured in fresh processes (the probes), medians.
    """
    ray2 = _med(res[key][2]) - res["ray_job"]["total_s"]
    local2 = _med(res["local"][2]) - res["local_job"]["total_s"]
    return ray2 / local2 - 1


def ray_per_study(res: dict[str, Any], key: str = "ray") -> float:
    """Ray's extra wall time per study at 2 workers, without the command's one connection (measured apart)."""
    extra = _med(res[key][2]) - _med(res["local"][2]) - ray_connection_s(res)
    return 2 * extra / res["studies"]  # two lanes: each runs half of the studies


def ray_overheads(res: dict[str, Any], key: str = "ray") -> tuple[float, float]:
    """Ray over local at 2 workers: the whole commands, and without the command's one connection."""
    ray2, local2 = _med(res[key][2]), _med(res["local"][2])
    return ray2 / local2 - 1, (ray2 - ray_connection_s(res)) / local2 - 1


def first_in_process(runs: list[dict]) -> tuple[list[float], list[float], list[int]]:
    """CPU seconds of studies that ran first in their worker process and of later ones; fresh studies per run."""
    first, later, fresh = [], [], []
    for run in runs:
        seen: set[str] = set()
        for worker, cpu in zip(run.get("study_workers", []), run.get("study_cpu_seconds", []), strict=False):
            if cpu is not None:
                (later if worker in seen else first).append(cpu)
            seen.add(worker)
        fresh.append(len(seen))
    return first, later, fresh


def first_in_process_line(res: dict[str, Any]) -> str:
    """How many studies ran first in a fresh worker process on each side, and what that costs in CPU."""
    parts = {k: first_in_process(res[k][2]) for k in ("local", "ray")}
    first = parts["local"][0] + parts["ray"][0]
    later = parts["local"][1] + parts["ray"][1]
    if not first or not later:
        return ""
    return (
        f"Studies that ran first in their worker process, per run: local {', '.join(map(str, parts['local'][2]))}, "
        f"Ray {', '.join(map(str, parts['ray'][2]))} of {res['studies']}; such a study pays the conversion's first-use "
        f"costs (its lazy imports, first memory touches): median {statistics.median(first):.2f} CPU-s against "
        f"{statistics.median(later):.2f} for a later one (both executors)."
    )


def plan(res: dict[str, Any], node_mem_gib: float) -> list[str]:
    """The arithmetic past this machine, from the measurements (assumptions said in the text)."""
    n = res["studies"]
    local1, local2 = res["local"][1], res["local"][2]
    s_ex = statistics.median(s for r in local1 for s in r["study_seconds"])
    s_big = res["big"]["study_seconds"][0]
    peak_big = max(res["big"]["study_peak_bytes"]) / GIB
    eff = _med(local1) / (2 * _med(local2))
    per_node = min(16, int(0.8 * node_mem_gib // max(peak_big, 1e-9)))
    out_ex = _med(local1, "bytes") / n
    out_big = res["big"]["bytes"]
    files_ex = _med(local1, "files") / n
    ray_task = max(0.0, ray_per_study(res)) if "ray" in res else 0.0
    hash_s_ex = res["input_bytes"] / res["sha256_bytes_per_s"]
    hash_s_big = res["big_input_bytes"] / res["sha256_bytes_per_s"]

    def hours(count: int, nodes: int, s: float) -> float:
        return count * (s / max(eff, 1e-9) + ray_task) / (nodes * per_node) / 3600

    rows = [
        "| CTs | nodes × workers | per study (measured, example / large) | hours, example-size CTs | hours, large CTs "
        "| driver hashing before the first study (h, example / large) |",
        "|---|---|---|---|---|---|",
    ]
    for count, nodes in ((1228, 1), (10000, 1), (10000, 4), (10000, 16), (10000, 64)):
        rows.append(
            f"| {count:,} | {nodes} × {per_node} | {s_ex:.1f} s / {s_big:.1f} s | {hours(count, nodes, s_ex):.2f} | "
            f"{hours(count, nodes, s_big):.2f} | {count * hash_s_ex / 3600:.2f} / {count * hash_s_big / 3600:.2f} |"
        )
    rec = _med(local1, "record_bytes")
    ex_size, big_size = "×".join(map(str, res["example_size"])), "×".join(map(str, res["big_size"]))
    return [
        f"Assumptions: a node has 16 cores and {node_mem_gib:.0f} GiB; a worker is one study on one thread; workers "
        f"per node = min(16, 80 % of the memory / the large CT's peak {peak_big:.2f} GiB) = {per_node}; each worker "
        f"keeps the per-study time measured here divided by the 1→2-worker efficiency measured here ({eff:.2f}) "
        "— optimistic past 2 workers (memory bandwidth and the shared filesystem are not measured); "
        f"Ray adds {ray_task:.2f} s per study (measured above at 2 workers; the connection, once per command, "
        f"not included). Example-size CT: {ex_size}; large CT: "
        f"{big_size}.",
        "",
        *rows,
        "",
        f"Written per 1,000 studies: {out_ex * 1000 / 1e9:.1f} GB and {files_ex * 1000:,.0f} files for example-size "
        f"CTs, {out_big * 1000 / 1e9:.1f} GB for large CTs (`{res['workload']}`; `--step K` divides the slices' "
        "share by K). Inputs read per study: "
        f"{res['input_bytes'] / 1e6:.0f} MB / {res['big_input_bytes'] / 1e6:.0f} MB.",
        "",
        "What breaks first at 10,000 studies: "
        + (
            f"**memory per worker** ({per_node} workers fit a {node_mem_gib:.0f} GiB node, not 16)"
            if per_node < 16
            else "**the shared filesystem** (memory leaves all 16 cores busy; bytes and files below)"
        )
        + ". The limits, from the figures above:",
        f"1. **Disk and files**: {out_ex * 1e4 / 1e9:.0f}–{out_big * 1e4 / 1e9:.0f} GB and "
        f"~{files_ex * 1e4 / 1e6:.1f} M files "
        "in three flat folders per split (`images|labels|sidecars/<split>`); every node must write to one shared "
        "filesystem (the ledger's rename is the commit point), whose metadata rate bounds the whole run.",
        f"2. **Memory per worker**: {peak_big:.2f} GiB for a {big_size} CT (target ≤ {TARGETS['peak_gib']:.0f}) "
        f"sets {per_node} workers on a {node_mem_gib:.0f} GiB node; larger CTs need `--task-memory` so Ray (or the "
        "local executor, with `--workers 0`) runs fewer at once instead of the out-of-memory killer deciding.",
        f"3. **The driver**: it hashes every input serially before the first study ({hash_s_ex:.2f}–{hash_s_big:.2f} s "
        f"per study at {res['sha256_bytes_per_s'] / 1e6:.0f} MB/s: {1e4 * hash_s_ex / 3600:.2f}–"
        f"{1e4 * hash_s_big / 3600:.2f} h at 10,000, on one core, before any node starts) and keeps every "
        f"study's record (median {rec / 1e3:.0f} kB here: {rec * 10000 / 1e9:.2f} GB at 10,000) in memory.",
        "4. **Object store: not a limit**: a task carries its studies' paths and the options (the function inline, "
        "under 64 KiB) and returns no record (the driver reads it from the work folder); images never travel "
        "through Ray. Ray's cost is per command (its worker processes start per job, above), not per study: "
        "`--task-batch` (automatic: up to 8 studies per task for long lists) only saves the ms-sized round trips.",
        "5. Not measured here: `lift --csv` over one dataset parses only each study's own sidecars "
        "(`<study>_*`), but still lists the dataset's sidecar and label folders once per study (a directory "
        "listing, quadratic in the studies of a dataset, though far cheaper than parsing): for very long lists, "
        "convert and lift in shards of a few thousand studies (one ct2yolo dataset per shard).",
    ]


def report(res: dict[str, Any], args: argparse.Namespace) -> str:
    n = res["studies"]
    lines = [
        "## scale (ct2yolo --csv, local and Ray)",
        "",
        f"`{command_line()}` at {git_rev(MEASURES)} on {machine()}.",
        "",
        f"Workload: the example CT ({'×'.join(map(str, res['example_size']))}) listed {n} times under different "
        f"study ids, the spine preset's conversion with `{res['workload']}` (one thread per worker on both executors; "
        "`OMP_NUM_THREADS=1`, "
        "`OPENCV_FOR_THREADS_NUM=1`). Each run is one whole command in a fresh process (start-up, reading, "
        f"writing, assembly included), {res['repeat']} runs each; 1 worker runs in the command's own process. "
        "Ray's head runs its task workers at the priority of the command (`RAY_worker_niceness=0`), as the local "
        "executor's workers and the executor's own private Ray instance do; Ray's default (niceness 15) is "
        "measured apart below.",
        "",
    ]
    l1 = res["local"][1]
    s1 = [s for r in l1 for s in r["study_seconds"]]
    p1 = [p for r in l1 for p in r["study_peak_bytes"]]
    lines += [
        f"Per study (1 worker, ledger records): median {statistics.median(s1):.2f} s "
        f"({min(s1):.2f}–{max(s1):.2f}), peak memory {max(p1) / GIB:.2f} GiB.",
        "",
        "| executor | workers | runs (s) | median s | studies/min | efficiency 1→2 |",
        "|---|---|---|---|---|---|",
    ]
    for name in ("local", "ray"):
        if name not in res:
            continue
        r1, r2 = res[name][1], res[name][2]
        eff = _med(r1) / (2 * _med(r2))
        for w, runs in ((1, r1), (2, r2)):
            lines.append(
                f"| {name} | {w} | {_spread(runs)} | {_med(runs):.1f} | {60 * n / _med(runs):.2f} | "
                + (f"{eff:.2f} (target ≥ {TARGETS['efficiency']}: {_verdict(eff >= TARGETS['efficiency'])})" * (w == 2))
                + " |"
            )
    if "ray" in res:
        rb = res["ray_batched"]
        lines.append(
            f"| ray, `--task-batch {rb['task_batch']}` | 2 | {_spread(rb[2])} | {_med(rb[2]):.1f} | "
            f"{60 * n / _med(rb[2]):.2f} |  |"
        )
        noop, job, cap = res["ray_noop"], res["ray_job"], 100 * TARGETS["ray_overhead"]
        lines += [
            "",
            "Ray over the local executor at 2 workers (the same study list, in the same run):",
            "",
        ]
        variants = [("ray", "one study per task (automatic here)"), ("ray_batched", "one task per worker")]
        if "ray_nice15" in res:
            variants.append(("ray_nice15", "one study per task, Ray's default worker niceness (15)"))
        for key, what in variants:
            raw, steady = ray_overheads(res, key)
            lines.append(
                f"- {what}: whole commands {100 * raw:+.1f} % "
                f"(≤ {cap:.0f} %: {_verdict(raw <= TARGETS['ray_overhead'])}); "
                f"without the command's one connection ({ray_connection_s(res):.2f} s) {100 * steady:+.1f} % "
                f"(≤ {cap:.0f} %: {_verdict(steady <= TARGETS['ray_overhead'])}), i.e. "
                f"{ray_per_study(res, key):+.2f} s per study; without each side's start-up (Ray "
                f"{res['ray_job']['total_s']:.2f} s, local {res['local_job']['total_s']:.2f} s, below) "
                f"{100 * startup_free_overhead(res, key):+.1f} % "
                f"(≤ {cap:.0f} %: {_verdict(startup_free_overhead(res, key) <= TARGETS['ray_overhead'])})."
            )
        daemons = statistics.median(r["ray_daemon_cpu_s"] for r in res["ray"][2])
        per_run = ", ".join(f"{r['ray_daemon_cpu_s']:.2f}" for r in res["ray"][2])
        ray_steady = _med(res["ray"][2]) - res["ray_job"]["total_s"]
        unexplained = ray_steady - (_med(res["local"][2]) - res["local_job"]["total_s"])
        inside = {k: [s for r in res[k][2] for s in r["study_seconds"]] for k in ("local", "ray")}
        in_studies = (statistics.median(inside["ray"]) - statistics.median(inside["local"])) * n / 2
        cpu = {k: [c for r in res[k][2] for c in r.get("study_cpu_seconds", []) if c is not None] for k in inside}
        started = [r.get("ray_workers_started", 0) for r in res["ray"][2]]
        lines += [
            "",
            "Inside the studies (each study's ledger seconds, timed in its worker around the conversion alone) at 2 "
            f"workers: median local {statistics.median(inside['local']):.2f} s "
            f"({min(inside['local']):.2f}–{max(inside['local']):.2f}), Ray {statistics.median(inside['ray']):.2f} s "
            f"({min(inside['ray']):.2f}–{max(inside['ray']):.2f}): {n} studies on 2 workers put "
            f"{in_studies:+.2f} s of wall time inside the conversions themselves"
            + (
                f", as much as or more than the {unexplained:.2f} s Ray adds beyond both sides' start-up: the same "
                "conversion runs slower in a Ray worker than in a local one (why is not measured here: first-use "
                "imports inside the study, threads, memory)."
                if in_studies >= unexplained
                else f", of the {unexplained:.2f} s Ray adds beyond both sides' start-up; the rest lies between "
                "them (dispatch, unpickling, commits, the driver's collection)."
            ),
        ]
        if cpu["local"] and cpu["ray"]:
            lines[-1] += (
                " Their CPU seconds (the worker process, all threads): median local "
                f"{statistics.median(cpu['local']):.2f} s, Ray {statistics.median(cpu['ray']):.2f} s. "
                f"Ray started {', '.join(map(str, started))} task-worker processes per 2-worker run ({n} studies). "
                + first_in_process_line(res)
            )
        lines += [
            "",
            f"Where the rest goes: Ray's own processes (GCS server, raylet, agents, monitors; not the task workers) "
            f"used {daemons:.2f} CPU-seconds during a 2-worker run (median; {per_run}) while both cores were busy "
            f"with the two workers: at most {daemons / 2:.2f} s of wall time taken from the studies, of the "
            f"{unexplained:.2f} s that Ray adds beyond both sides' start-up"
            + (
                " — most of it: on a node with a core left to Ray (`ray start --num-cpus` one below the cores) its "
                "daemons would not compete with the workers. "
                if daemons / 2 >= 0.5 * unexplained
                else "; the rest is not Ray's daemons. "
            )
            + "The commands' own CPU (driver and the children it waited for; Ray's workers are not its children): "
            f"local {statistics.median(r['command_cpu_s'] for r in res['local'][2]):.1f} s, Ray "
            f"{statistics.median(r['command_cpu_s'] for r in res['ray'][2]):.1f} s.",
        ]
        lines += [
            "",
            f"Start-up, not in the per-study figures: `ray start` (head, 2 CPUs) {res['ray_start_s']:.1f} s. "
            f"A command's start-up on Ray, once per command (a fresh driver, median of {len(job['runs'])}: "
            f"{', '.join(f'{t:.2f}' for t in job['runs'])} s): {job['total_s']:.2f} s = `import ray` "
            f"{job['import_s']:.2f} + connect {job['connect_s']:.2f} + the job's {job['worker_processes']:.0f} new "
            f"worker processes {job['workers_s']:.2f} + disconnect {job['close_s']:.2f} s (Ray starts worker "
            "processes per job). The local executor's start-up, measured the same way (a fresh process: its fork "
            f"server and 2 worker processes, then closing; median of {len(res['local_job']['runs'])}: "
            f"{', '.join(f'{t:.2f}' for t in res['local_job']['runs'])} s): {res['local_job']['total_s']:.2f} s. "
            "The first driver after "
            f"`ray start` gets prestarted workers: its first 4 tasks {noop['first_tasks_s']:.2f} s; then a no-op task "
            f"takes {1000 * noop['noop_task_s']:.1f} ms (2 in flight, {args.noop_tasks} tasks). "
            "Ray ran in a loopback-only network namespace.",
        ]
    big = res["big"]
    peak_big = max(big["study_peak_bytes"]) / GIB
    lines += [
        "",
        f"Large CT: the example CT resampled to {'×'.join(map(str, res['big_size']))} (one study, 1 worker): "
        f"{big['study_seconds'][0]:.1f} s, peak memory {peak_big:.2f} GiB (target ≤ {TARGETS['peak_gib']:.0f} GiB: "
        f"{_verdict(peak_big <= TARGETS['peak_gib'])}; the command's whole process: "
        f"{big['command_peak_bytes'] / GIB:.2f} GiB), {big['bytes'] / 1e6:.0f} MB in {big['files']} files written.",
        "",
        "### Past this machine",
        "",
        *plan(res, args.node_memory_gib),
    ]
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tiny", action="store_true", help="smoke test: cropped CT, small images, 2 studies, 1 run")
    ap.add_argument("--no-write", action="store_true", help="print only; leave BENCHMARKS.md alone")
    ap.add_argument("--no-ray", action="store_true", help="the local executor only")
    ap.add_argument("--studies", type=int, help="copies of the example CT per run (default 4; tiny 2)")
    ap.add_argument("--repeat", type=int, help="runs per configuration (default 2; tiny 1)")
    ap.add_argument("--depth", type=int, help="slices of the resampled CT (default 800; tiny 200)")
    ap.add_argument("--noop-tasks", type=int, default=200, help="no-op Ray tasks timed")
    ap.add_argument("--node-memory-gib", type=float, default=64.0, help="memory of a 16-core node in the plan")
    ap.add_argument("--tmp", help="folder for the temporary inputs and outputs")
    ap.add_argument("--report-only", action="store_true", help="write the section from the last saved measurements")
    ap.add_argument("--job-startup-probe", metavar="ADDRESS", help=argparse.SUPPRESS)  # internal: one fresh driver
    ap.add_argument("--local-startup-probe", action="store_true", help=argparse.SUPPRESS)  # internal: local pool
    args = ap.parse_args()
    if args.job_startup_probe:
        print(json.dumps(job_startup_probe(args.job_startup_probe)))
        return 0
    if args.local_startup_probe:
        print(json.dumps(local_startup_probe()))
        return 0
    args.studies = args.studies or (2 if args.tiny else 4)
    args.repeat = args.repeat or (1 if args.tiny else 2)
    args.depth = args.depth or (200 if args.tiny else 800)
    if not args.no_ray and not args.report_only and os.environ.get(IN_NAMESPACE) != "1":
        if os.geteuid() != 0 or shutil.which("unshare") is None:
            sys.exit("Ray needs a loopback-only network namespace (root and unshare); run with --no-ray otherwise")
        cmd = ["unshare", "--net", "--pid", "--fork", "--mount-proc", sys.executable, *sys.argv]
        # A HOME of its own: Ray >= 2.59 writes ~/.ray/auth_token for an instance it starts, and a head started
        # with `ray start` rejects drivers that present a token left there by an earlier private instance.
        # The user's cache (the example CT) stays where it is.
        home = tempfile.mkdtemp(prefix="bench_scale_home_")
        cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        try:
            env = {**os.environ, IN_NAMESPACE: "1", "HOME": home, "XDG_CACHE_HOME": cache}
            return subprocess.run(cmd, env=env).returncode
        finally:
            shutil.rmtree(home, ignore_errors=True)
    if not args.no_ray and not args.report_only:
        subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
        links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=True).stdout
        assert [line.split(":")[1].strip() for line in links.splitlines()] == ["lo"], links
    saved = cache_file(args.tiny)
    if args.report_only:
        if not saved.is_file():
            sys.exit(f"no saved measurements in {saved}: run without --report-only first")
        res = json.loads(saved.read_text(encoding="utf-8"))
    else:
        res = measure(args)
        saved.parent.mkdir(parents=True, exist_ok=True)
        saved.write_text(json.dumps(res, indent=1), encoding="utf-8")  # a later --report-only needs no re-run
    body = report(res, args)
    print(body)
    if not args.no_write:
        write_section("scale", body, MEASURES)
    return 0


if __name__ == "__main__":
    sys.exit(main())
