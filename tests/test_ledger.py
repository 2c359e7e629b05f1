"""Study ledger and resumable ct2yolo: skips, retries, failures without partial files, a killed run resumed."""

from __future__ import annotations

import json
import multiprocessing
import os
import time
from pathlib import Path

import pytest

from yolo_spine.ct.convert import ct2yolo, split_of_study
from yolo_spine.ct.options import CtOptions
from yolo_spine.errors import DataError, UserError
from yolo_spine.ledger import StudyLedger, StudyTask, options_hash
from yolo_spine.parallel import LocalExecutor, make_executor
from yolo_spine.synth.phantoms import spine_phantom, write_phantom

FAST = {"planes": ["axial", "sagittal"], "step": 2, "views": ["ap"], "drr": {"size": 96, "threads": 1}}
FAST_FLAGS = ("--planes", "axial,sagittal", "--step", "2", "--views", "ap", "--size", "96")


# ------------------------------------------------------------------------------------------------ the ledger
def _write(payload: dict, folder: Path) -> None:
    """A study writer for the ledger tests: fails as told, else writes two files."""
    marker = payload.get("fail_once")
    if marker is not None and not Path(marker).exists():
        Path(marker).write_text("failed once")
        (folder / "half.txt").write_text("half")
        raise RuntimeError("transient")
    if payload.get("bad"):
        (folder / "half.txt").write_text("half")
        raise DataError("this study's label map is empty")
    (folder / "a").mkdir()
    (folder / "a" / f"{payload['name']}.txt").write_text(payload["name"])
    (folder / "b.txt").write_text(str(payload.get("version", 1)))


def _tasks(payloads: list[dict]) -> list[tuple[StudyTask, dict]]:
    return [
        (StudyTask(p["name"], {"volume": p["name"] * 4}, options_hash({"v": p.get("version", 1)})), p) for p in payloads
    ]


def test_ledger_skips_done_studies_and_redoes_changed_or_tampered_ones(tmp_path):
    ledger = StudyLedger(tmp_path / "work")
    payloads = [{"name": "s1"}, {"name": "s2"}, {"name": "s3"}]
    with LocalExecutor(1) as ex:
        first = ledger.run(_tasks(payloads), _write, ex, progress=False)
        assert first.done == ["s1", "s2", "s3"] and not first.skipped and not first.failed
        rec = json.loads((tmp_path / "work" / "ledger" / "s1.json").read_text())
        assert rec["status"] == "done" and set(rec["outputs"]) == {"a/s1.txt", "b.txt"}
        assert rec["peak_memory_bytes"] > 0 and rec["seconds"] >= 0 and rec["inputs"] == {"volume": "s1s1s1s1"}
        again = ledger.run(_tasks(payloads), _write, ex, progress=False)
        assert again.skipped == ["s1", "s2", "s3"] and not again.done
        # other options for s2, a tampered output of s3: only those two are converted again
        (tmp_path / "work" / "studies" / "s3" / "b.txt").write_text("edited")
        payloads[1]["version"] = 2
        third = ledger.run(_tasks(payloads), _write, ex, progress=False)
        assert third.skipped == ["s1"] and third.done == ["s2", "s3"]
        assert (tmp_path / "work" / "studies" / "s3" / "b.txt").read_text() == "1"
        assert ledger.run(_tasks(payloads), _write, ex, redo=True, progress=False).done == ["s1", "s2", "s3"]
    assert not list((tmp_path / "work" / "studies").glob(".*"))  # no temporary folder left


def test_ledger_retries_a_transient_failure_and_records_a_bad_study_without_partial_files(tmp_path):
    ledger = StudyLedger(tmp_path / "work")
    payloads = [{"name": "ok"}, {"name": "flaky", "fail_once": str(tmp_path / "m")}, {"name": "bad", "bad": True}]
    with make_executor("local", workers=2, n_items=3) as ex:
        summary = ledger.run(_tasks(payloads), _write, ex, retries=1, progress=False)
    assert summary.done == ["ok", "flaky"]
    assert list(summary.failed) == ["bad"] and "label map is empty" in summary.failed["bad"]
    assert json.loads((tmp_path / "work" / "ledger" / "flaky.json").read_text())["attempts"] == 2
    bad = json.loads((tmp_path / "work" / "ledger" / "bad.json").read_text())
    assert bad["status"] == "failed" and bad["attempts"] == 1  # a UserError is not retried
    assert not (tmp_path / "work" / "studies" / "bad").exists()
    assert not list((tmp_path / "work").rglob("half.txt"))
    assert "2 done, 0 skipped (already done), 1 failed: bad: DataError" in summary.line()
    # with no retries the transient failure is final
    (tmp_path / "m").unlink()
    with LocalExecutor(1) as ex:
        s2 = StudyLedger(tmp_path / "w2").run(_tasks(payloads[1:2]), _write, ex, retries=0, progress=False)
    assert s2.failed == {"flaky": "RuntimeError: transient"}


class _ChunkSpy(LocalExecutor):
    """The local pool, noting the chunk size the ledger asks for on each attempt."""

    chunks: list[int]

    def map(self, fn, items, *, chunksize=1, **kw):
        self.chunks = [*getattr(self, "chunks", []), chunksize]
        return super().map(fn, items, chunksize=chunksize, **kw)


def test_several_studies_in_one_task_with_one_failing_still_commit_the_others(tmp_path):
    work = tmp_path / "work"
    payloads = [
        {"name": "s0"},
        {"name": "bad", "bad": True},
        {"name": "flaky", "fail_once": str(tmp_path / "m")},
        {"name": "s3"},
        {"name": "s4"},
    ]
    with _ChunkSpy(2, n_items=5) as ex:
        summary = StudyLedger(work).run(_tasks(payloads), _write, ex, retries=1, progress=False, task_batch=3)
    assert ex.chunks == [3, 1]  # the first attempt in tasks of 3 studies, the retry of "flaky" alone
    assert summary.done == ["s0", "flaky", "s3", "s4"] and list(summary.failed) == ["bad"]
    records = {p.stem: json.loads(p.read_text()) for p in (work / "ledger").glob("*.json")}
    assert records["bad"]["status"] == "failed" and "label map is empty" in records["bad"]["error"]
    assert records["flaky"]["attempts"] == 2
    for name in ("s0", "flaky", "s3", "s4"):
        rec = records[name]
        assert rec["status"] == "done" and set(rec["outputs"]) == {f"a/{name}.txt", "b.txt"}
        assert (work / "studies" / name / "a" / f"{name}.txt").read_text() == name
        assert summary.records[name].outputs == rec["outputs"]  # read back from the work folder, not sent
    assert records["s3"]["worker"] == records["s4"]["worker"]  # one task, one worker process
    assert not (work / "studies" / "bad").exists() and not list(work.rglob("half.txt"))
    with LocalExecutor(1) as ex, pytest.raises(UserError, match="--task-batch"):
        StudyLedger(tmp_path / "w2").run(_tasks(payloads), _write, ex, task_batch=-1)


def test_a_second_run_on_the_same_work_folder_is_refused(tmp_path):
    ledger = StudyLedger(tmp_path / "work")
    with ledger.locked(), LocalExecutor(1) as ex, pytest.raises(UserError, match="another command is converting"):
        StudyLedger(tmp_path / "work").run(_tasks([{"name": "s1"}]), _write, ex, progress=False)
    with LocalExecutor(1) as ex:  # released: the next run goes ahead
        assert ledger.run(_tasks([{"name": "s1"}]), _write, ex, progress=False).done == ["s1"]


def test_executor_options_are_checked(tmp_path):
    with pytest.raises(UserError, match="--ray-address needs --executor ray"):
        make_executor("local", address="auto")
    with pytest.raises(UserError, match="must be one of local, ray"):
        make_executor("dask")
    with LocalExecutor(1) as ex, pytest.raises(UserError, match="--retries"):
        StudyLedger(tmp_path).run([], _write, ex, retries=-1)
    from yolo_spine.ct.options import CtOptions

    opts = CtOptions.load(sets=["batch.task_memory=4G", "batch.executor=ray", "batch.ray_address=auto"])
    assert (opts.batch.task_memory, opts.batch.executor, opts.batch.ray_address) == ("4G", "ray", "auto")
    with pytest.raises(UserError, match="needs executor ray"):
        CtOptions.load(batch={"ray_address": "auto"})
    with pytest.raises(UserError, match="memory size"):
        CtOptions.load(batch={"task_memory": "lots"})
    with pytest.raises(UserError, match=r"batch\.executor"):
        CtOptions.load(batch={"executor": "dask"})
    assert CtOptions.load().batch.task_batch == 0 and CtOptions.load(sets=["batch.task_batch=4"]).batch.task_batch == 4
    with pytest.raises(UserError, match=r"batch\.task_batch"):
        CtOptions.load(batch={"task_batch": -1})


def test_executor_ray_without_ray_says_how_to_install_it(tmp_path, run_cli):
    fake = tmp_path / "site" / "ray"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('no ray here')\n")
    vol, lab = write_phantom(spine_phantom(size_xyz=(20, 20, 24)), tmp_path, "p")
    res = run_cli(
        "ct2yolo", "--volume", vol, "--labels", lab, "--out", tmp_path / "o", "--executor", "ray",
        env={"PYTHONPATH": os.pathsep.join([str(tmp_path / "site"), os.environ["PYTHONPATH"]])},
    )  # fmt: skip
    assert res.returncode != 0
    assert res.stderr.strip().splitlines() == [
        'yolo_spine ct2yolo: error: --executor ray needs Ray, which is not installed: pip install "yolo_spine[cluster]"'
    ]
    assert not (tmp_path / "o").exists() and not (tmp_path / ".o.partial").exists()


# --------------------------------------------------------------------------------------------------- ct2yolo
def _study_list(folder: Path, n: int, size=(20, 20, 24), names: bool = True) -> Path:
    rows = ["volume,labels,study" if names else "volume,labels"]
    for k in range(n):
        vol, lab = write_phantom(spine_phantom(size_xyz=size, seed=k), folder, f"p{k}")
        rows.append(f"{vol.name},{lab.name}" + (f",case{k}" if names else ""))
    (folder / "list.csv").write_text("\n".join(rows) + "\n")
    return folder / "list.csv"


def _files(root: Path, subs=("images", "labels", "sidecars", "studies")) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for s in subs for p in (root / s).rglob("*") if p.is_file()}


def _stable_manifest(root: Path) -> dict:
    m = json.loads((root / "manifest.json").read_text())
    return {k: m[k] for k in ("studies", "images_per_split", "options", "anatomy", "kind")}


def test_rerun_skips_done_studies_and_a_failed_study_leaves_no_files(tmp_path):
    csv = _study_list(tmp_path, 2)
    with open(csv, "a") as f:  # a third study whose label map names nothing of the anatomy
        f.write("p0_ct.nii.gz,p0_ct.nii.gz,broken\n")
    with pytest.raises(UserError, match=r"1 of 3 studies failed .*broken: DataError"):
        ct2yolo(tmp_path / "ds", study_list=csv, progress=False, **FAST)
    assert not (tmp_path / "ds").exists()
    work = tmp_path / ".ds.partial"
    assert sorted(p.name for p in (work / "studies").iterdir()) == ["case0", "case1"]
    assert json.loads((work / "ledger" / "broken.json").read_text())["status"] == "failed"
    # the same command with --skip-failed: done studies are not converted again; the failure is in the manifest
    m = ct2yolo(tmp_path / "ds", study_list=csv, progress=False, **FAST, batch={"skip_failed": True})
    assert m["ledger"]["skipped"] == ["case0", "case1"] and list(m["ledger"]["failed"]) == ["broken"]
    written = json.loads((tmp_path / "ds" / "manifest.json").read_text())
    assert [s["study"] for s in written["studies"]] == ["case0", "case1"]
    assert "DataError" in written["failed_studies"]["broken"] and "p0_ct" not in written["failed_studies"]["broken"]
    assert not list((tmp_path / "ds").rglob("broken*")) and not work.exists()
    assert sorted(p.name for p in (tmp_path / "ds" / "ledger").iterdir()) == ["case0.json", "case1.json"]


def _convert_then_hang(argv: list[str], hang_after: str) -> None:
    """Run ``yolo_spine ARGV`` in this (child) process; the study whose volume is ``hang_after`` is converted into
    its staging folder and then hangs, so a kill finds it in flight: files staged, nothing committed or recorded.
    """
    from yolo_spine.cli import main
    from yolo_spine.ct import convert

    real = convert.convert_study

    def convert_study(spec, root, *args, **kwargs):
        report = real(spec, root, *args, **kwargs)
        if spec.volume.name == hang_after:
            time.sleep(3600)
        return report

    convert.convert_study = convert_study
    main(argv)


def test_killed_run_resumes_to_the_same_dataset_redoing_only_studies_in_flight(tmp_path, run_cli):
    csv = _study_list(tmp_path, 5, size=(28, 28, 40), names=False)  # pseudonymous ids, as without a study column
    ref = run_cli("ct2yolo", "--csv", csv, "--out", tmp_path / "ref", "--workers", "2", *FAST_FLAGS)
    assert ref.returncode == 0, ref.stderr
    in_list_order = [s["study"] for s in json.loads((tmp_path / "ref" / "manifest.json").read_text())["studies"]]
    # The same command, one study at a time (list order), SIGKILLed while the third study is in flight: it hangs
    # after writing its files, so whenever the kill lands, exactly the first two studies are done.
    argv = ["ct2yolo", "--csv", str(csv), "--out", str(tmp_path / "ds"), "--workers", "1", *FAST_FLAGS]
    proc = multiprocessing.get_context("spawn").Process(target=_convert_then_hang, args=(argv, "p2_ct.nii.gz"))
    proc.start()
    ledger = tmp_path / ".ds.partial" / "ledger"
    deadline = time.time() + 300
    while time.time() < deadline and proc.is_alive() and len(list(ledger.glob("*.json"))) < 2:
        time.sleep(0.05)
    time.sleep(0.5)  # let the third study write its files (it hangs afterwards, so waiting longer changes nothing)
    proc.kill()
    proc.join()
    recorded = sorted(p.stem for p in ledger.glob("*.json"))
    # exact: a ledger that records a study before its files are committed (the third would be listed), or runs
    # the list out of order, fails here
    assert recorded == sorted(in_list_order[:2])
    assert not (tmp_path / "ds").exists()  # the dataset appears complete or not at all
    res = run_cli("ct2yolo", "--csv", csv, "--out", tmp_path / "ds", *FAST_FLAGS)
    assert res.returncode == 0, res.stderr
    assert "3 done, 2 skipped" in res.stdout  # the in-flight study and the two never started, nothing else
    assert _files(tmp_path / "ds") == _files(tmp_path / "ref")
    assert _stable_manifest(tmp_path / "ds") == _stable_manifest(tmp_path / "ref")
    assert not (tmp_path / ".ds.partial").exists()
    assert not list(tmp_path.glob(".ds.*"))  # no temporary folder of any kind left


def test_shards_assign_the_splits_and_bytes_of_the_whole_list(tmp_path):
    csv = _study_list(tmp_path, 6, size=(16, 16, 20))
    rows = csv.read_text().splitlines()
    whole = ct2yolo(tmp_path / "whole", study_list=csv, progress=False, **FAST, workers=2)
    parts = {}
    for k, shard in enumerate((rows[1:3], rows[3:7])):  # uneven shards, in reverse order on the second
        (tmp_path / f"shard{k}.csv").write_text("\n".join([rows[0], *shard[::-1]]) + "\n")
        m = ct2yolo(tmp_path / f"part{k}", study_list=tmp_path / f"shard{k}.csv", progress=False, **FAST)
        parts |= {s["study"]: s["split"] for s in m["studies"]}
        assert _files(tmp_path / f"part{k}").items() <= _files(tmp_path / "whole").items()
    splits = {s["study"]: s["split"] for s in whole["studies"]}
    assert parts == splits and len(splits) == 6
    split_options = CtOptions.for_anatomy("spine").split  # fractions 0.7/0.15/0.15, seed 0
    assert splits == {s: split_of_study(s, split_options) for s in splits}
    assert len(set(splits.values())) > 1  # six studies do not all land in one split
    for study, split in splits.items():
        assert {p.parent.name for p in (tmp_path / "whole" / "images").rglob(f"{study}_*.png")} == {split}


def test_task_memory_sizes_parse_and_cap_local_workers():
    from yolo_spine.parallel import parse_bytes, plan_workers

    assert parse_bytes("4G") == 4 * 2**30 and parse_bytes("512MiB") == 512 * 2**20 and parse_bytes("1000") == 1000
    for bad in ("lots", "-1G", "0"):
        with pytest.raises(UserError, match="memory size"):
            parse_bytes(bad)
    # --workers 0: as many as 16 cores allow at 2 threads each, but only 3 studies of 4 GiB fit in 12 GiB
    assert plan_workers(0, task_cpus=2, task_memory=4 * 2**30, cpu_budget=16, memory_budget=12 * 2**30) == (3, 2)


def _busy_then_idle(payload: dict, folder: Path) -> None:
    """About 0.15 s of CPU, then 0.3 s asleep (a study waiting on I/O)."""
    t0 = time.process_time()
    while time.process_time() - t0 < 0.15:
        pass
    time.sleep(0.3)
    (folder / "x.txt").write_text(payload["name"])


def test_record_separates_cpu_from_wall_time(tmp_path):
    ledger = StudyLedger(tmp_path / "work")
    with LocalExecutor(1) as ex:
        ledger.run(_tasks([{"name": "s1"}]), _busy_then_idle, ex, progress=False)
    rec = json.loads((tmp_path / "work" / "ledger" / "s1.json").read_text())
    assert 0.14 <= rec["cpu_seconds"] <= rec["seconds"] - 0.25  # the sleep is wall time, not CPU
