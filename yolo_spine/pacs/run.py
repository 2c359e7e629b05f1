"""``yolo_spine pacs``: a study from a PACS over DICOMweb, segmented by a YOLO model, stored back as DICOM-SEG.

For each series of the study that a pipeline supports (radiographs: CR, DX; volumes: CT):

1. skip it when the study already holds a DICOM-SEG of the same model (algorithm name and model SHA-256 in the
   SEG's algorithm identification) that references it, unless ``force`` (so re-running is idempotent): a CT
   series by its Series Instance UID, a radiograph series image by image (an image added later gets its SEG);
2. download it (WADO-RS) into a private temporary folder (mode 0700, removed at the end, file names counters);
3. run the pipeline (:mod:`yolo_spine.pacs.pipeline`): ``predict`` for a radiograph; slices → ``predict`` →
   ``lift`` for a CT;
4. write a DICOM-SEG that references the series (:mod:`yolo_spine.io.dicom_seg`; a radiograph series: one per
   image) and store it (STOW-RS).

A series where the model finds nothing gets no SEG (DICOM has no empty segmentation); the run says so.

The Study Instance UID is never written anywhere of ours: run records, log lines and messages name the study by
a pseudonym (:func:`yolo_spine.identifiers.pseudonym` of the UID with ``study_id_salt``: ``s-<hex>``) and series
by their position in the study and their Series Number. The run record (``<runs>/<UTC time>_<pseudonym>.json``)
holds the options, the model's hash, and per series what was done and found.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from yolo_spine.errors import DataError, UserError
from yolo_spine.options import resolve_options
from yolo_spine.pacs.options import PacsOptions

if TYPE_CHECKING:
    from yolo_spine.pacs.dicomweb import ExistingSeg, SeriesInfo, Server
    from yolo_spine.registry import AnatomyRegistry

log = logging.getLogger("yolo_spine")

#: Modalities segmented as one 2D image per instance.
RADIOGRAPH_MODALITIES = frozenset({"CR", "DX"})
#: Modalities segmented as a volume.
VOLUME_MODALITIES = frozenset({"CT"})
#: Why a series is skipped.
EXISTS = "a DICOM-SEG of this model for this series is already stored (--force stores another)"
#: Where run records go by default (relative to the working folder).
DEFAULT_RUNS = Path("pacs-runs")


@dataclass
class SeriesOutcome:
    """What happened to one series (the record's ``series`` entries; no UID).

    Attributes:
        position: 1-based position among the study's series, as the server lists them.
        number: Series Number (``None`` when the server gives none).
        modality: The series' modality.
        status: ``stored``, ``exists`` (a SEG of this model is there), ``nothing found``, ``unsupported``,
            ``failed``.
        images: Instances downloaded.
        segments: Class name of each segment stored.
        segs_stored: DICOM-SEGs stored (a radiograph series: one per image with instances; a CT: one).
        images_done_before: Radiographs of the series that a SEG of this model already references (skipped).
        images_empty: Radiographs where the model found nothing.
        instances: Instances the model found (radiograph: masks; CT: 2D instances over the slices).
        reason: Why a series was skipped or failed (one sentence).
        seconds: Wall time of the series.
        details: Per pipeline: the confidences (radiograph) or slices predicted per plane (CT).
    """

    position: int
    number: int | None
    modality: str
    status: str = ""
    images: int = 0
    segments: list[str] = field(default_factory=list)
    segs_stored: int = 0
    images_done_before: int = 0
    images_empty: int = 0
    instances: int = 0
    reason: str | None = None
    seconds: float = 0.0
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """``series 2 (CT, number 3)``: how messages name the series."""
        number = f", number {self.number}" if self.number is not None else ""
        return f"series {self.position} ({self.modality}{number})"

    def sentence(self) -> str:
        """One line for the user."""
        if self.status == "stored":
            also = [
                *([f"{self.images_done_before} image(s) already had one"] if self.images_done_before else []),
                *([f"{self.images_empty} image(s) without an instance"] if self.images_empty else []),
            ]
            return (
                f"{self.label}: {len(self.segments)} segment(s) ({', '.join(self.segments)}) stored in "
                f"{self.segs_stored} DICOM-SEG(s)" + (f"; {', '.join(also)}" if also else "")
            )
        return f"{self.label}: {self.reason}"


@dataclass
class PacsRun:
    """The outcome of :func:`run_pacs`.

    Attributes:
        study: The study's pseudonym.
        series: One outcome per series of the study.
        record: The run record (as written).
        record_path: Where it was written.
    """

    study: str
    series: list[SeriesOutcome]
    record: dict[str, Any]
    record_path: Path

    @property
    def stored(self) -> int:
        """SEGs stored by this run."""
        return sum(s.segs_stored for s in self.series)

    @property
    def failed(self) -> int:
        """Series that failed."""
        return sum(s.status == "failed" for s in self.series)


def run_pacs(
    url: str,
    study_uid: str,
    weights: str | Path,
    options: PacsOptions | None = None,
    *,
    anatomy: str | Path | None = None,
    force: bool = False,
    token: str | None = None,
    user: str | None = None,
    password: str | None = None,
    runs: str | Path = DEFAULT_RUNS,
    **option_values: Any,
) -> PacsRun:
    """Segment every supported series of a study on a DICOMweb server and store the results there as DICOM-SEG.

    Args:
        url: The server's DICOMweb root (``http://host:8042/dicom-web`` for Orthanc).
        study_uid: Study Instance UID (kept in memory only).
        weights: The YOLO segmentation model (``.pt``, ``.onnx`` or an OpenVINO folder).
        options: The ``pacs`` options; ``None``: ``configs/pacs/default.yaml``.
        anatomy: Registry of the model's classes (default: the shipped one with the model's class names).
        force: Store a new SEG even when one of this model for the series is there.
        token: Bearer token for the server.
        user: HTTP basic-auth user (with ``password``).
        password: HTTP basic-auth password.
        runs: Folder of the run records.
        **option_values: Option values replacing those of ``options`` (``conf=0.1``, ``planes=["axial"]``).

    Returns:
        What was done per series, and the run record.

    Raises:
        UserError: Bad options or URL, an unreachable server, refused credentials, an unknown study, a study
            without a CT, CR or DX series, a model whose classes fit no anatomy.
    """
    from yolo_spine.identifiers import pseudonym
    from yolo_spine.pacs.dicomweb import Server
    from yolo_spine.predict.model import model_format

    t0 = time.perf_counter()
    opts = resolve_options(PacsOptions, options, option_values)
    study_uid = study_uid.strip()
    if not study_uid:
        raise UserError("--study must be a Study Instance UID")
    model_format(weights)  # a missing model is refused before the server is asked anything
    study = pseudonym(study_uid, opts.study_id_salt)
    server = Server(url, opts.timeout_s, token=token, user=user, password=password)
    everything = server.study_series(study_uid)
    listed = [s for s in everything if s.modality != "SEG"]  # segmentations (ours among them) are no input
    outcomes = [SeriesOutcome(i + 1, s.number, s.modality or "?") for i, s in enumerate(listed)]
    todo = [
        (s, o) for s, o in zip(listed, outcomes, strict=True) if s.modality in RADIOGRAPH_MODALITIES | VOLUME_MODALITIES
    ]
    if not todo:
        found = ", ".join(sorted({s.modality or "?" for s in everything})) or "none"
        raise UserError(
            f"study {study} has no series this command segments (CT, CR or DX); its series' modalities: {found}"
        )
    for o in outcomes:
        if o.modality not in RADIOGRAPH_MODALITIES | VOLUME_MODALITIES:
            o.status, o.reason = "unsupported", f"{o.modality} is not segmented (CT, CR and DX are)"
    model = _model(weights, anatomy, opts)
    registry, algorithm = model.registry, model.algorithm
    existing = server.existing_segs(study_uid)
    with tempfile.TemporaryDirectory(prefix="yolo_spine_pacs_") as tmp:  # mkdtemp: owner-only (0700)
        for k, (info, outcome) in enumerate(todo):
            t = time.perf_counter()
            # a CT series is known by its UID before download; a radiograph series image by image, after
            if not force and info.modality in VOLUME_MODALITIES and _already_segmented(existing, info.uid, algorithm):
                outcome.status, outcome.reason = "exists", EXISTS
            else:
                work = Path(tmp) / f"series{k:03d}"
                skip = [] if force else [seg for seg in existing if made_by(seg, algorithm)]
                try:
                    _segment_series(server, study_uid, info, outcome, work, model, skip)
                except DataError as exc:
                    outcome.status, outcome.reason = "failed", str(exc).replace(tmp, "<temporary folder>")
            outcome.seconds = round(time.perf_counter() - t, 3)
            log.debug("%s", outcome.sentence())  # the command prints it; this is for library callers
    record = _record(study, study_uid, opts, weights, registry, algorithm, outcomes, force, url, t0)
    record["counts"]["segmentations_before"] = len(everything) - len(listed)
    path = _write_record(Path(runs), study, record, study_uid)
    return PacsRun(study, outcomes, record, path)


@dataclass(frozen=True)
class _Model:
    """What every series of a study is segmented with.

    Attributes:
        weights: The YOLO segmentation model.
        options: The ``pacs`` options.
        registry: The anatomy registry of the model's classes.
        algorithm: The model's algorithm identification, written into each SEG.
    """

    weights: Path
    options: PacsOptions
    registry: AnatomyRegistry
    algorithm: Any


def _model(weights: str | Path, anatomy: str | Path | None, options: PacsOptions) -> _Model:
    """The model with its anatomy registry (by its class names, or the one given) and algorithm identification."""
    from yolo_spine.io.dicom_seg import algorithm_for
    from yolo_spine.predict.model import class_names, load_model
    from yolo_spine.predict.run import registry_for_names

    names = class_names(load_model(weights, threads=1))
    registry = registry_for_names(names, str(anatomy) if anatomy is not None else None)
    if registry is None:
        raise UserError(
            f"the model's {len(names)} classes ({', '.join(names[:4])}…) are no shipped anatomy's; give --anatomy"
        )
    return _Model(Path(weights), options, registry, algorithm_for(weights))


def made_by(seg: ExistingSeg, algorithm: Any) -> bool:
    """Whether an existing SEG was made by this model: the same algorithm name and the model's SHA-256.

    The yolo_spine version is not compared: the same model on the same series is the same result to a reader, and
    a new release should not fill the PACS with copies (``--force`` stores one anyway).
    """
    digest = algorithm.model_sha256
    return bool(digest) and any(name == algorithm.name[:64] and digest in params for name, _v, params in seg.algorithms)


def _already_segmented(existing: list[ExistingSeg], series_uid: str, algorithm: Any) -> bool:
    return any(series_uid in seg.referenced_series and made_by(seg, algorithm) for seg in existing)


def _segment_series(
    server: Server,
    study_uid: str,
    info: SeriesInfo,
    outcome: SeriesOutcome,
    work: Path,
    model: _Model,
    ours: list[ExistingSeg],
) -> None:
    """Download one series, run its pipeline, and store its SEGs (or say why not) into ``outcome``.

    ``ours``: the SEGs of this model already in the study (empty with ``--force``); a radiograph they reference
    is not segmented again.
    """
    files = server.download_series(study_uid, info.uid, work / "dicom")
    outcome.images = len(files)
    if not files:
        outcome.status, outcome.reason = "failed", "the server sent no image of this series"
        return
    if info.modality in RADIOGRAPH_MODALITIES:
        segs = _radiographs(files, outcome, work, model, ours)
        if outcome.images_done_before == len(files):
            outcome.status, outcome.reason = "exists", EXISTS
            return
    else:
        segs = [work / "seg.dcm"] if _ct(work / "dicom", outcome, work, model) else []
    if not segs:
        outcome.status = "nothing found"
        outcome.reason = f"the model found no instance at confidence {model.options.conf:g}; nothing stored"
        return
    server.store(segs)
    outcome.status, outcome.segs_stored = "stored", len(segs)


def _radiographs(
    files: list[Path], outcome: SeriesOutcome, work: Path, model: _Model, ours: list[ExistingSeg]
) -> list[Path]:
    """Predict each radiograph of a series and write one SEG per image with instances; return the SEGs written."""
    import pydicom

    from yolo_spine.io.dicom_seg import write_radiograph_seg
    from yolo_spine.pacs.pipeline import segment_radiograph

    segs: list[Path] = []
    confidences: list[float] = []
    for k, path in enumerate(files):
        header = pydicom.dcmread(path, stop_before_pixels=True)
        if any(str(header.SOPInstanceUID) in seg.referenced_instances for seg in ours):
            outcome.images_done_before += 1
            continue
        if int(header.get("NumberOfFrames", 1) or 1) != 1:
            raise DataError("a multi-frame radiograph is not segmented (one frame per image is supported)")
        result = segment_radiograph(model.weights, path, work / f"image{k:04d}", model.options, model.registry)
        outcome.instances += len(result.class_ids)
        confidences += [round(float(c), 4) for c in result.confidences]
        if not len(result.class_ids):
            outcome.images_empty += 1
            continue
        seg = work / f"seg{k:04d}.dcm"
        write_radiograph_seg(result.masks, result.class_ids.tolist(), header, model.registry, seg, model.algorithm)
        outcome.segments += [model.registry.names[int(c)] for c in result.class_ids]
        segs.append(seg)
    outcome.details = {"confidences": confidences}
    return segs


def _ct(folder: Path, outcome: SeriesOutcome, work: Path, model: _Model) -> bool:
    """Slices → predict → lift for a CT series and write ``work/seg.dcm``; ``False`` when nothing was found."""
    from yolo_spine.io.dicom_seg import read_series, write_volume_seg
    from yolo_spine.io.volume import read_image
    from yolo_spine.pacs.pipeline import segment_ct

    datasets = read_series(folder, pixels=False)  # sorted as read_image sorts: index k of both is slice k
    image = read_image(folder)
    result = segment_ct(model.weights, image, work, model.options, model.registry)
    outcome.instances = result.instances
    outcome.details = {"slices": result.slices}
    present = [int(v) for v in np.unique(result.labels_zyx) if v > 0]
    if not present:
        return False
    write_volume_seg(result.labels_zyx, datasets, model.registry, work / "seg.dcm", model.algorithm)
    outcome.segments = [model.registry.names[v - 1] for v in present]
    return True


def _record(
    study: str,
    study_uid: str,
    opts: PacsOptions,
    weights: str | Path,
    registry: AnatomyRegistry,
    algorithm: Any,
    outcomes: list[SeriesOutcome],
    force: bool,
    url: str,
    t0: float,
) -> dict[str, Any]:
    """The sanitised run record: options, model, and per series what was done (the UID replaced by the pseudonym)."""
    from dataclasses import asdict

    from yolo_spine.identifiers import MASK
    from yolo_spine.provenance import run_manifest

    options = opts.record()
    if opts.study_id_salt:  # with the salt, anyone holding UIDs could match them to the pseudonym
        options["study_id_salt"] = MASK
    record = run_manifest(
        "pacs",
        {**options, "url": url, "study": study, "weights": Path(weights), "force": force},
        inputs={"weights": weights},
        extra={
            "study": study,
            "study_id": "pseudonym of the Study Instance UID (study_id_salt)",
            "anatomy": registry.name,
            "algorithm": {
                "name": algorithm.name,
                "version": algorithm.version,
                "model_sha256": algorithm.model_sha256,
            },
            "series": [{**asdict(o), "label": o.label} for o in outcomes],
            "counts": {
                status: sum(o.status == status for o in outcomes)
                for status in ("stored", "exists", "nothing found", "unsupported", "failed")
            },
            "seconds": round(time.perf_counter() - t0, 3),
        },
    )
    record = _without(record, study_uid, study)
    return _without(record, opts.study_id_salt, MASK) if opts.study_id_salt else record


def _without(obj: Any, secret: str, replacement: str) -> Any:
    """``obj`` with every occurrence of ``secret`` in its strings replaced (the UID in ``argv``, a message …)."""
    if isinstance(obj, dict):
        return {k: _without(v, secret, replacement) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_without(v, secret, replacement) for v in obj]
    if isinstance(obj, str):
        return obj.replace(secret, replacement)
    return obj


def _write_record(runs: Path, study: str, record: dict[str, Any], study_uid: str) -> Path:
    """Write the run record as ``<runs>/<UTC time>_<pseudonym>.json`` (never over another)."""
    import json

    from yolo_spine.io.atomic import write_json_atomic

    text = json.dumps(record)
    if study_uid in text:  # _without replaced every string; this guards the guarantee against a future field
        raise RuntimeError("the run record would hold the Study Instance UID")
    runs.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    path = runs / f"{stamp}_{study}.json"
    n = 1
    while path.exists():
        n += 1
        path = runs / f"{stamp}_{study}_{n}.json"
    write_json_atomic(path, record)
    os.chmod(path, 0o600)  # who ran what on which (pseudonymous) study: the owner's business
    return path
