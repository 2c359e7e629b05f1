"""Benchmark ``yolo_spine merge`` against supervision on a generated pair of Roboflow exports.

A YOLOv11 export and a COCO-segmentation export (half the images each), Roboflow naming, 3 copies per source
image, 15 instances per image with 20–40 vertices each. Our merge runs as the CLI in a subprocess (median of
``--repeat`` runs); supervision loads both (``from_yolo`` / ``from_coco`` with ``force_masks=True``, which
segmentation needs), ``merge``s them and writes ``as_yolo``, in a subprocess too. Peak memory is that of the
whole process tree (the tool's process and every worker it starts), measured alike for both. Polygon vertices
are counted in and out of both.

    python scripts/bench_merge.py            # 10,000 images, 150,000 instances
    python scripts/bench_merge.py --quick    # 1,000 images
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from scripts._bench import command_line, git_rev, machine, write_section
from yolo_spine.registry import load_registry

#: What this section measures (scripts/check_benchmarks.py).
MEASURES = [
    "scripts/bench_merge.py",
    "yolo_spine/datasets/merge.py",
    "yolo_spine/datasets/roboflow.py",
    "yolo_spine/io/labels.py",
    "yolo_spine/io/xray.py",
    "yolo_spine/io/coco.py",
    "yolo_spine/geometry.py",
]
TARGET_SECONDS_10K, TARGET_SPEEDUP = 30.0, 5.0


def _polygon(rng: np.random.Generator) -> np.ndarray:
    n = int(rng.integers(20, 41))
    ang = np.sort(rng.uniform(0, 2 * np.pi, n))
    r = rng.uniform(0.03, 0.08) * (1 + 0.2 * rng.uniform(-1, 1, n))
    c = rng.uniform(0.15, 0.85, 2)
    return np.clip(np.stack([c[0] + r * np.cos(ang), c[1] + r * np.sin(ang)], 1), 0.001, 0.999)


def generate(root: Path, n_images: int, per_image: int, img: int = 64, seed: int = 0) -> tuple[Path, Path, int]:
    """Write a YOLO export and a COCO export with ``n_images`` images in total; return them and the vertex count."""
    rng = np.random.default_rng(seed)
    names = sorted(n.lower() for n in load_registry("spine").names[:24])  # Roboflow's alphabetical lower case
    yy, xx = np.mgrid[0:img, 0:img]
    base = ((xx + yy) * 127 // img + rng.integers(0, 8, (img, img))).astype(np.uint8)  # X-ray-like smooth + noise
    vertices = 0
    yolo, coco = root / "rf-yolo", root / "rf-coco"
    halves = [(yolo, n_images // 2), (coco, n_images - n_images // 2)]
    serial = 0
    for export, n in halves:
        is_coco = export == coco
        cats = [{"id": 0, "name": "spine", "supercategory": "none"}] + [
            {"id": i + 1, "name": nm, "supercategory": "spine"} for i, nm in enumerate(names)
        ]
        per_split: dict[str, dict] = {}
        for k in range(n):
            split = "train" if k % 10 < 8 else ("valid" if k % 10 == 8 else "test")
            stem = f"case{k // 3:05d}"
            name = f"{stem}_png.rf.{rng.bytes(16).hex()}.png"
            pixels = base.copy()
            pixels[0, :8] = np.frombuffer(serial.to_bytes(8, "little"), dtype=np.uint8)  # unique bytes per image
            serial += 1
            _, buf = cv2.imencode(".png", pixels)
            polys = [_polygon(rng) for _ in range(per_image)]
            cls = rng.integers(0, len(names), per_image)
            vertices += sum(len(p) for p in polys)
            if is_coco:
                d = per_split.setdefault(split, {"images": [], "annotations": []})
                (export / split).mkdir(parents=True, exist_ok=True)
                (export / split / name).write_bytes(buf.tobytes())
                iid = len(d["images"])
                d["images"].append({"id": iid, "file_name": name, "width": img, "height": img})
                for c, p in zip(cls, polys, strict=True):
                    d["annotations"].append(
                        {
                            "id": len(d["annotations"]),
                            "image_id": iid,
                            "category_id": int(c) + 1,
                            "segmentation": [(p * img).round(3).reshape(-1).tolist()],
                            "bbox": [0, 0, 1, 1],
                            "area": 1,
                            "iscrowd": 0,
                        }
                    )
            else:
                (export / split / "images").mkdir(parents=True, exist_ok=True)
                (export / split / "labels").mkdir(parents=True, exist_ok=True)
                (export / split / "images" / name).write_bytes(buf.tobytes())
                rows = [f"{c} " + " ".join(f"{v:.6f}" for v in p.reshape(-1)) for c, p in zip(cls, polys, strict=True)]
                (export / split / "labels" / f"{Path(name).stem}.txt").write_text("\n".join(rows) + "\n")
        if is_coco:
            for split, d in per_split.items():
                (export / split / "_annotations.coco.json").write_text(json.dumps({"categories": cats, **d}))
        else:
            (export / "data.yaml").write_text(
                yaml.safe_dump(
                    {
                        "train": "../train/images",
                        "val": "../valid/images",
                        "test": "../test/images",
                        "nc": len(names),
                        "names": names,
                    }
                )
            )
    return yolo, coco, vertices


def count_vertices(labels_root: Path) -> tuple[int, int]:
    rows = verts = 0
    for p in labels_root.rglob("*.txt"):
        for line in p.read_text().splitlines():
            n = len(line.split())
            if n > 5:
                rows += 1
                verts += (n - 1) // 2
    return rows, verts


class TreeMemory(threading.Thread):
    """Sample the resident memory of a process and all its descendants every ``interval`` seconds.

    ``peak`` is the largest sum over the tree seen at one instant (bytes). Children are found through
    ``/proc/PID/task/TID/children`` and sizes read from ``/proc/PID/statm``, a few small reads per sample, so the
    sampler costs the measured tools next to nothing; off Linux it falls back to psutil. Pages shared between
    processes (a forked worker's copy-on-write memory) count once per process, so the sum is an upper bound.
    """

    def __init__(self, pid: int, interval: float = 0.02) -> None:
        super().__init__(daemon=True)
        self.pid, self.interval, self.peak = pid, interval, 0
        self._stop_event = threading.Event()
        self._page = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
        self._proc = Path("/proc").is_dir()

    def _tree(self) -> list[int]:
        pids, todo = [], [self.pid]
        while todo:
            pid = todo.pop()
            pids.append(pid)
            try:
                for task in Path(f"/proc/{pid}/task").iterdir():
                    todo += [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                pass
        return pids

    def _sample(self) -> int:
        if not self._proc:
            import psutil

            try:
                root = psutil.Process(self.pid)
                procs = [root, *root.children(recursive=True)]
            except psutil.Error:
                return 0
            total = 0
            for p in procs:
                with contextlib.suppress(psutil.Error):
                    total += p.memory_info().rss
            return total
        total = 0
        for pid in self._tree():
            with contextlib.suppress(OSError, IndexError, ValueError):
                total += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * self._page
        return total

    def run(self) -> None:
        """Sample until :meth:`stop`."""
        while not self._stop_event.is_set():
            self.peak = max(self.peak, self._sample())
            self._stop_event.wait(self.interval)

    def stop(self) -> int:
        """Stop sampling; return the peak in bytes."""
        self._stop_event.set()
        self.join()
        return self.peak


def run_measured(cmd: list[str]) -> tuple[float, float]:
    """Run a command; return its wall time (s) and the peak memory of its process tree (MiB), or exit on failure.

    The peak is the larger of the sampled tree sum (:class:`TreeMemory`) and the largest single process's
    peak from ``wait4`` (which no sample can miss).
    """
    with tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err)
        sampler = TreeMemory(proc.pid)
        sampler.start()
        _, status, usage = os.wait4(proc.pid, 0)
        dt = time.perf_counter() - t0
        tree_peak = sampler.stop()
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode:
            err.seek(0)
            raise SystemExit(f"{cmd[:4]} failed: {err.read().decode()[-2000:]}")
    return dt, max(tree_peak, usage.ru_maxrss * 1024) / 2**20


def run_ours(yolo: Path, coco: Path, out: Path) -> tuple[float, float]:
    return run_measured(
        [sys.executable, "-m", "yolo_spine", "-q", "merge", str(yolo), str(coco), "--out", str(out), "--overwrite"]
    )


SV_SCRIPT = r"""
import sys, time
import supervision as sv
yolo, coco, out = sys.argv[1:4]
t0 = time.perf_counter()
parts = []
for split in ("train", "valid", "test"):
    parts.append(sv.DetectionDataset.from_yolo(f"{yolo}/{split}/images", f"{yolo}/{split}/labels",
                                               f"{yolo}/data.yaml", force_masks=True))
    parts.append(sv.DetectionDataset.from_coco(f"{coco}/{split}", f"{coco}/{split}/_annotations.coco.json",
                                               force_masks=True))
merged = sv.DetectionDataset.merge(parts)
merged.as_yolo(f"{out}/images", f"{out}/labels", f"{out}/data.yaml")
print(time.perf_counter() - t0)
"""


def run_supervision(yolo: Path, coco: Path, out: Path) -> tuple[float, float]:
    shutil.rmtree(out, ignore_errors=True)
    return run_measured([sys.executable, "-c", SV_SCRIPT, str(yolo), str(coco), str(out)])


def measure(tmp: Path, n_images: int, img: int, repeat: int, per_image: int = 15) -> dict:
    """Generate one pair of exports and time both tools on it."""
    t0 = time.perf_counter()
    yolo, coco, verts_in = generate(tmp / f"src{img}", n_images, per_image, img)
    print(
        f"generated {n_images} images of {img}x{img}, {n_images * per_image} instances, {verts_in} vertices "
        f"in {time.perf_counter() - t0:.1f} s"
    )
    ours, rss = [], []
    for _ in range(repeat):
        dt, mib = run_ours(yolo, coco, tmp / "ours")
        ours.append(dt)
        rss.append(mib)
        print(f"yolo_spine merge: {dt:.2f} s, peak RSS {mib:.0f} MiB")
    rows_out, verts_out = count_vertices(tmp / "ours" / "labels")
    sv_dt, sv_rss = run_supervision(yolo, coco, tmp / "sv")
    print(f"supervision: {sv_dt:.2f} s, peak RSS {sv_rss:.0f} MiB")
    sv_rows, sv_verts = count_vertices(tmp / "sv" / "labels")
    shutil.rmtree(tmp / f"src{img}")
    return {
        "n": n_images,
        "img": img,
        "inst": n_images * per_image,
        "verts_in": verts_in,
        "ours": ours,
        "ours_rss": max(rss),
        "rows_out": rows_out,
        "verts_out": verts_out,
        "sv": sv_dt,
        "sv_rss": sv_rss,
        "sv_rows": sv_rows,
        "sv_verts": sv_verts,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="1,000 + 200 images instead of 10,000 + 1,000")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--no-write", action="store_true", help="print only; leave BENCHMARKS.md alone")
    args = ap.parse_args()
    configs = [(1000, 64, args.repeat), (200, 512, 1)] if args.quick else [(10_000, 64, args.repeat), (1000, 512, 1)]
    with tempfile.TemporaryDirectory(prefix="bench_merge_") as tmpd:
        results = [measure(Path(tmpd), n, img, rep) for n, img, rep in configs]
    lines = [
        f"Machine: {machine()}; commit {git_rev(MEASURES)}; {time.strftime('%Y-%m-%d')}.",
        f"Command: `{command_line()}`",
        "",
        "Input: a generated YOLOv11 export and a COCO-segmentation export (half the images each, Roboflow names, "
        "3 copies per source image, 15 instances per image with 20–40 vertices). Both tools run as separate "
        "processes on the same files, one after the other.",
        "",
        "| images | size | tool | wall time (s) | speed-up | peak RSS (MiB) | instances out | vertices out / in |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        med = statistics.median(r["ours"])
        runs = ", ".join(f"{t:.2f}" for t in r["ours"])
        lines.append(
            f"| {r['n']:,} | {r['img']} px | `yolo_spine merge` (median of {len(r['ours'])}: {runs}) | "
            f"{med:.2f} | {r['sv'] / med:.1f}× | {r['ours_rss']:.0f} | {r['rows_out']:,} | "
            f"{r['verts_out']:,} / {r['verts_in']:,} |"
        )
        lines.append(
            f"| {r['n']:,} | {r['img']} px | supervision {_sv_version()} (force_masks, merge, as_yolo) | "
            f"{r['sv']:.2f} | 1.0× | {r['sv_rss']:.0f} | {r['sv_rows']:,} | "
            f"{r['sv_verts']:,} / {r['verts_in']:,} |"
        )
    lines += ["", *_verdicts(results)]
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        write_section("merge", text, MEASURES)


def _verdicts(results: list[dict]) -> list[str]:
    """Targets met or missed, and what each tool did to the vertices, from the measured figures."""
    out = []
    tenk = next((r for r in results if r["n"] == 10_000), None)
    if tenk is None:
        out.append(
            f"Targets (the 10,000-image merge under {TARGET_SECONDS_10K:.0f} s on 2 cores and at least "
            f"{TARGET_SPEEDUP:.0f}× faster than supervision, no vertex lost): not evaluated, no 10,000-image run."
        )
    else:
        med = statistics.median(tenk["ours"])
        speedup = tenk["sv"] / med
        fast = "met" if med < TARGET_SECONDS_10K else "MISSED"
        ratio = "met" if speedup >= TARGET_SPEEDUP else "MISSED"
        out.append(
            f"Targets at 10,000 images ({tenk['img']} px): under {TARGET_SECONDS_10K:.0f} s on 2 cores — {fast} "
            f"({med:.2f} s, runs {', '.join(f'{t:.2f}' for t in tenk['ours'])}); at least {TARGET_SPEEDUP:.0f}× "
            f"faster than supervision — **{ratio}** ({speedup:.1f}×); no vertex lost — "
            f"{'met' if tenk['verts_out'] == tenk['verts_in'] else 'MISSED'}."
        )
    kept = "; ".join(
        f"at {r['img']} px it writes {r['sv_verts'] / r['verts_in']:.2f}× the input vertex count" for r in results
    )
    out.append(
        "Our merge copies every polygon as it is. supervision rasterises each polygon to a full-image mask and "
        "traces the mask's outline back (OpenCV contours, `CHAIN_APPROX_SIMPLE`; `as_yolo` simplifies nothing by "
        "default), so its vertices are re-sampled on the pixel grid rather than kept: "
        f"{kept} — fewer where the polygons are a few pixels across, more where the outline becomes a staircase. "
        "Its time and memory grow with the pixel count (a 10k merge of 512 px images would need ~40 GB of masks, "
        "more than this machine has; hence the 1,000-image row). Our merge's cost does not depend on image size "
        "(hard links, a SHA-256 of the bytes, a header-only PIL verify), and it also re-splits by group, checks "
        "every image and writes manifest.json."
    )
    out.append(
        "Peak RSS: the whole process tree of each tool — the largest sum of the resident memory of the tool's "
        "process and its workers (ours: 2 worker processes) over samples every 20 ms, and at least the largest "
        "single process's peak (wait4); pages a forked worker shares with its parent count twice, so ours is an "
        "upper bound."
    )
    return out


def _sv_version() -> str:
    try:
        import importlib.metadata

        return importlib.metadata.version("supervision")
    except Exception:
        return "?"


if __name__ == "__main__":
    os.environ.setdefault("YOLO_OFFLINE", "1")
    main()
