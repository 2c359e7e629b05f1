"""Load test of ``yolo_spine serve`` on loopback: latency, throughput and failed requests under concurrent clients.

One ``yolo_spine serve`` process (the shipped phantom-pretrained YOLO11n-seg by default) on a free loopback port;
real DICOM radiographs from pydicom-data (``yolo_spine.data.example_radiographs``: the chest CR ``RG1`` and the
``RG3`` CR, uncompressed and JPEG 2000) posted to ``POST /v1/radiographs`` round-robin. Two phases, in this order,
against the same warm server, each request timed from its first byte sent to its last byte received:

* **1 client** (sequential): what one user waits for a radiograph when nobody else is served — the baseline;
* **N clients** (``--clients``, default 8) sending ``--requests`` (default 200) requests in all, each client
  posting its next radiograph as soon as the previous answer arrived: requests queue for the model (one
  inference at a time) instead of failing.

Reported: p50/p95/max latency, throughput (requests per second over the phase's wall time), failed requests
(anything but a 200 with a well-formed body, connection errors included) and the ratios of the loaded phase to
the sequential one. The target is 0 failed requests; a miss is stated as missed.

    python scripts/bench_serve.py                                  # 8 clients, 200 requests
    python scripts/bench_serve.py --requests 16 --no-write         # quick check
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from scripts._bench import command_line, git_rev, machine, write_section

ROOT = Path(__file__).resolve().parent.parent
#: What this section measures (scripts/check_benchmarks.py).
MEASURES = ["scripts/bench_serve.py", "yolo_spine/serve/", "configs/serve/", "yolo_spine/io/xray.py"]
DEFAULT_WEIGHTS = ROOT / "yolo_spine" / "weights" / "yolo11n-seg-spine-phantoms.pt"


def free_port() -> int:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def percentile(values: list[float], q: float) -> float:
    """The ``q``-th percentile (0–100) by linear interpolation between closest ranks."""
    s = sorted(values)
    if not s:
        return float("nan")
    k = (len(s) - 1) * q / 100.0
    lo, hi = int(k), min(int(k) + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def start_server(weights: Path, threads: int | None, log_path: Path) -> tuple[subprocess.Popen, str]:
    import httpx

    port = free_port()
    cmd = [sys.executable, "-m", "yolo_spine", "serve", "--weights", f"bench={weights}", "--port", str(port)]
    if threads:
        cmd += ["--threads", str(threads)]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "YOLO_OFFLINE": "1"})
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"serve exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/v1/models", timeout=2).status_code == 200:
                return proc, url
        time.sleep(0.5)
    proc.terminate()
    raise SystemExit("serve did not answer within 300 s")


def run_phase(url: str, images: list[tuple[str, bytes]], n_requests: int, clients: int, conf: float) -> dict:
    """Send ``n_requests`` from ``clients`` threads; return latencies (s), failures, wall time, instances."""
    import httpx

    latencies: list[float] = []
    failures: list[str] = []
    instances: list[int] = []
    counter = iter(range(n_requests))
    lock = threading.Lock()

    def client() -> None:
        with httpx.Client(timeout=600) as http:
            while True:
                with lock:
                    k = next(counter, None)
                if k is None:
                    return
                name, data = images[k % len(images)]
                t0 = time.perf_counter()
                try:
                    r = http.post(f"{url}/v1/radiographs", params={"conf": conf}, files={"file": (name, data)})
                    body = r.json() if r.status_code == 200 else None
                    ok = body is not None and isinstance(body.get("instances"), list)
                    reason = "" if ok else f"HTTP {r.status_code}: {r.text[:200]}"
                except (httpx.HTTPError, ValueError) as exc:
                    ok, body, reason = False, None, f"{type(exc).__name__}: {exc}"
                dt = time.perf_counter() - t0
                with lock:
                    if ok and body is not None:
                        latencies.append(dt)
                        instances.append(len(body["instances"]))
                    else:
                        failures.append(reason)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    return {"latencies": latencies, "failures": failures, "wall": wall, "instances": instances, "n": n_requests}


def summary(phase: dict) -> dict:
    lat = phase["latencies"]
    return {
        "p50": percentile(lat, 50),
        "p95": percentile(lat, 95),
        "max": max(lat) if lat else float("nan"),
        "throughput": len(lat) / phase["wall"] if phase["wall"] > 0 else float("nan"),
        "failed": len(phase["failures"]),
        "n": phase["n"],
        "instances": statistics.mean(phase["instances"]) if phase["instances"] else 0.0,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", type=Path, default=DEFAULT_WEIGHTS, help="model to serve")
    ap.add_argument("--requests", type=int, default=200, help="requests of the concurrent phase")
    ap.add_argument("--clients", type=int, default=8, help="concurrent clients")
    ap.add_argument(
        "--sequential", type=int, default=None, help="requests of the 1-client phase (default: 2 per image)"
    )
    ap.add_argument(
        "--conf",
        type=float,
        default=0.05,
        help="confidence threshold sent with every request (0.05: the phantom model finds 17-35 instances per image)",
    )
    ap.add_argument("--threads", type=int, default=None, help="inference threads of the server (default: every core)")
    ap.add_argument("--no-write", action="store_true", help="print the table, leave BENCHMARKS.md alone")
    args = ap.parse_args()

    from yolo_spine.data import example_radiographs

    paths = example_radiographs()
    images = [(p.name, p.read_bytes()) for p in paths]
    n_seq = args.sequential or 2 * len(images)
    with tempfile.TemporaryDirectory(prefix="bench_serve_") as tmp:
        log_path = Path(tmp) / "serve.log"
        proc, url = start_server(args.weights, args.threads, log_path)
        try:
            warm = run_phase(url, images, len(images), 1, args.conf)  # each image once, untimed: caches, allocator
            if warm["failures"]:
                raise SystemExit(f"warm-up failed: {warm['failures'][0]}")
            seq = summary(run_phase(url, images, n_seq, 1, args.conf))
            print(f"1 client: p50 {seq['p50']:.3f} s, {seq['throughput']:.2f} req/s, {seq['failed']} failed")
            loaded_phase = run_phase(url, images, args.requests, args.clients, args.conf)
            loaded = summary(loaded_phase)
            print(
                f"{args.clients} clients: p50 {loaded['p50']:.3f} s, p95 {loaded['p95']:.3f} s, "
                f"{loaded['throughput']:.2f} req/s, {loaded['failed']} failed"
            )
            for reason in loaded_phase["failures"][:5]:
                print(f"  failed: {reason}")
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
    sizes = ", ".join(f"{name} ({len(data) / 2**20:.1f} MiB)" for name, data in images)
    verdict = (
        "**0 failed requests: target met.**"
        if loaded["failed"] == 0 and seq["failed"] == 0
        else f"**{loaded['failed'] + seq['failed']} failed requests: target (0) missed.**"
    )
    rows = [
        f"| {label} | {s['n']} | {s['p50']:.3f} | {s['p95']:.3f} | {s['max']:.3f} | {s['throughput']:.2f} | "
        f"{s['failed']} | {s['instances']:.1f} |"
        for label, s in (("1 client (sequential)", seq), (f"{args.clients} concurrent clients", loaded))
    ]
    body = "\n".join(
        [
            "## serve: latency and throughput under concurrent clients (loopback)",
            "",
            f"`yolo_spine serve` with `{args.weights.name}` on a loopback port; `POST /v1/radiographs` (multipart "
            f"upload, decode, window, inference, JSON) at conf {args.conf}, radiographs round-robin: {sizes}. "
            "Each image sent once untimed first. Latency from the first byte sent to the last received. The phantom-"
            "pretrained model's instances on these radiographs are not meaningful anatomy (it never saw a real "
            "X-ray); the low threshold makes every answer carry masks, polygons and JSON, so their cost is inside "
            "the clock. "
            f"Machine: {machine()}; commit {git_rev(MEASURES)}.",
            "",
            "| phase | requests | p50 (s) | p95 (s) | max (s) | throughput (req/s) | failed | instances/request |",
            "|---|---|---|---|---|---|---|---|",
            *rows,
            "",
            f"Under {args.clients} clients: throughput {loaded['throughput'] / seq['throughput']:.2f}× the "
            f"sequential rate, p50 latency {loaded['p50'] / seq['p50']:.2f}× (requests wait their turn for the "
            f"model: one inference at a time). {verdict}",
            "",
            f"Command: `{command_line()}`",
        ]
    )
    print(body)
    if not args.no_write:
        write_section("serve", body, MEASURES)


if __name__ == "__main__":
    main()
