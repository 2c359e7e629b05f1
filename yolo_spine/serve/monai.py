"""The part of MONAI Label's REST API its client uses for automatic segmentation: ``GET /info/``, ``POST /infer/``.

So ``monailabel.client.MONAILabelClient(url).info()`` and ``.infer(model, image_id, params, file=PATH)`` (and 3D
Slicer's MONAI Label module, which calls the same endpoints) can run a YOLO model. The wire format follows MONAI
Label's server (``monailabel/endpoints/infer.py``):

* ``GET /info/`` → ``{"name", "description", "version", "labels", "models": {NAME: {"type": "segmentation",
  "dimension": 2, "labels": {class: id}, "description", "config"}}, …}``; label ids are ``class_id + 1`` in registry
  order (0 is background);
* ``POST /infer/{model}?image=ID[&output=image|json|all]`` with the multipart fields ``params`` (JSON) and ``file``
  (the radiograph: PNG, JPEG, TIFF or DICOM) → by default (``all``) a ``multipart/form-data`` answer with the
  field ``params`` (JSON: ``label_names``, ``instances`` as ``/v1/radiographs`` gives them, ``latencies``) and the
  label image as a file part (``image``); ``output=image`` sends the label image alone, ``output=json`` the JSON.
  The label image has the upload's rows and columns, one value per pixel (``class_id + 1``, the more confident
  instance where two overlap); ``params.result_extension`` picks ``.nii.gz`` (default, as MONAI Label), ``.nii``
  or ``.png`` (16-bit).

Not served, each answered with a 4xx and one sentence: sessions (``session_id``, ``/session/``), interactive models
(an input ``label``, clicks in ``params``), images by datastore id without an upload (this service keeps no
datastore), DICOM-SEG output, and CT volumes (NIfTI, NRRD): the volume path (slices → predict → lift) is not
served yet.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import numpy as np
from fastapi import APIRouter, File, Form, HTTPException, Query, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response

from yolo_spine import __version__

if TYPE_CHECKING:
    from yolo_spine.serve.app import Service
    from yolo_spine.serve.models import ServedModel

#: Label image formats ``params.result_extension`` may ask for.
RESULT_EXTENSIONS = (".nii.gz", ".nii", ".png")
#: ``params`` keys of MONAI Label's interactive models (clicks, scribbles); automatic segmentation has none.
INTERACTIVE_KEYS = ("foreground", "background", "roi", "guidance")


def info(service: Service) -> dict[str, Any]:
    """MONAI Label's ``/info/`` for the served models."""
    labels: list[str] = []
    models = {}
    for m in service.models.values():
        labels += [c for c in m.classes if c not in labels]
        models[m.name] = {
            "type": "segmentation",
            "dimension": 2,
            "labels": {c: i + 1 for i, c in enumerate(m.classes)},
            "description": f"YOLO instance segmentation of radiographs ({m.anatomy or 'custom classes'}; weights "
            f"sha256 {m.sha256_12}); research software, not for clinical use",
            "config": {"conf": m.default_conf},
        }
    return {
        "name": "yolo_spine",
        "description": "YOLO instance segmentation of radiographs; research software, not for clinical use",
        "version": __version__,
        "labels": labels,
        "models": models,
        "trainers": {},
        "strategies": {},
        "scoring": {},
        "train_stats": {},
        "datastore": {"total": 0, "completed": 0},
    }


def encode_label_image(labels: np.ndarray, extension: str) -> bytes:
    """Encode a ``(rows, columns)`` label image as NIfTI (``.nii.gz``/``.nii``) or 16-bit PNG bytes."""
    if extension == ".png":
        from yolo_spine.serve.render import encode_png

        return encode_png(labels.astype(np.uint16))
    import SimpleITK as sitk

    image = sitk.GetImageFromArray(labels.astype(np.uint16))  # x = column, y = row, as the radiograph
    fd, tmp = tempfile.mkstemp(suffix=extension)
    os.close(fd)
    try:
        sitk.WriteImage(image, tmp, useCompression=extension == ".nii.gz")
        return Path(tmp).read_bytes()
    finally:
        Path(tmp).unlink(missing_ok=True)


def multipart_answer(params: dict[str, Any], filename: str, data: bytes, media_type: str) -> Response:
    """MONAI Label's ``all`` answer: a ``multipart/form-data`` body with ``params`` (JSON) and the label file."""
    boundary = uuid.uuid4().hex
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="params"\r\n'
        f"Content-Type: application/json\r\n\r\n{json.dumps(params)}\r\n".encode(),
        f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="{filename}"\r\n'
        f"Content-Type: {media_type}\r\n\r\n".encode()
        + data
        + b"\r\n",
        f"--{boundary}--\r\n".encode(),
    ]
    return Response(b"".join(parts), media_type=f"multipart/form-data; boundary={boundary}")


def _checked_params(text: str) -> dict[str, Any]:
    try:
        params = json.loads(text or "{}")
    except ValueError:
        raise HTTPException(422, "'params' is not JSON.") from None
    if not isinstance(params, dict):
        raise HTTPException(422, "'params' must be a JSON object.")
    if any(params.get(k) for k in INTERACTIVE_KEYS):
        raise HTTPException(
            400, "interactive segmentation (clicks, ROIs) is not served here; only automatic segmentation is."
        )
    return params


def _checked_conf(params: dict[str, Any], served: ServedModel) -> float:
    conf = params.get("conf", served.default_conf)
    if isinstance(conf, bool) or not isinstance(conf, int | float) or not 0.0 <= float(conf) <= 1.0:
        raise HTTPException(422, "params 'conf' must be a number between 0 and 1.")
    return float(conf)


def monai_router(service: Service) -> APIRouter:
    """The MONAI Label routes over ``service`` (the app adds its token check to them)."""
    router = APIRouter()

    @router.get("/info/")
    def get_info() -> dict[str, Any]:
        return info(service)

    @router.api_route("/session/{rest:path}", methods=["GET", "PUT", "POST", "DELETE"])
    def session(rest: str = "") -> None:
        raise HTTPException(400, "sessions are not supported by this service; send the image with each request.")

    @router.post("/infer/{model}", response_model=None)
    async def infer(
        model: str,
        image: Annotated[str, Query(description="MONAI Label's image id (ignored: no datastore)")] = "",
        session_id: Annotated[str, Query()] = "",
        output: Annotated[str | None, Query(description="image, json or all (default)")] = None,
        params: Annotated[str, Form()] = "{}",
        file: Annotated[UploadFile | None, File()] = None,
        label: Annotated[UploadFile | None, File()] = None,
    ) -> Response | dict[str, Any]:
        t0 = time.perf_counter()
        served = service.model(model)
        if session_id:
            raise HTTPException(400, "sessions are not supported by this service; upload the image as 'file'.")
        if label is not None:
            raise HTTPException(400, "interactive models (an input label) are not served; only automatic ones.")
        if output not in (None, "all", "image", "json"):
            what = "DICOM-SEG output" if output == "dicom_seg" else f"output '{output[:32]}'"
            raise HTTPException(400, f"{what} is not served on /infer; use image, json or all.")
        p = _checked_params(params)
        conf = _checked_conf(p, served)
        extension = str(p.get("result_extension") or ".nii.gz")
        if extension not in RESULT_EXTENSIONS:
            raise HTTPException(422, f"params 'result_extension' must be one of {', '.join(RESULT_EXTENSIONS)}.")
        if file is None:
            raise HTTPException(400, "this service keeps no datastore: upload the image as the multipart field 'file'.")
        data = await file.read()
        from yolo_spine.serve.uploads import UploadError, decode_radiograph, sniff_kind
        from yolo_spine.serve.volumes import segment_volume, volume_suffix

        suffix = volume_suffix(data) if sniff_kind(data) is None else None
        if suffix is not None:  # a CT volume: slices → predict → lift, answered as a label volume
            if extension != ".nii.gz":
                raise UploadError(422, "a CT volume's labels come back as a volume: use result_extension .nii.gz.")

            def run_volume() -> tuple[bytes, dict[str, Any]]:
                with service.lock.hold():  # one inference at a time, in arrival order, as for radiographs
                    return segment_volume(served, data, suffix, conf)

            volume_bytes, summary = await run_in_threadpool(run_volume)
            answer = {
                "label_names": {c: i + 1 for i, c in enumerate(served.classes)},
                "model": served.describe(),
                "not_for_clinical_use": True,
                "volume": summary,
                "latencies": {"total": round(time.perf_counter() - t0, 3)},
            }
            return _answer(answer, output, volume_bytes, extension)
        radiograph = await run_in_threadpool(decode_radiograph, data, tuple(service.options.allowed_types))
        t1 = time.perf_counter()
        instances = await service.predict(served, radiograph, conf)
        t2 = time.perf_counter()

        def encode() -> bytes:
            from yolo_spine.serve.render import label_image

            return encode_label_image(label_image(instances, radiograph.height, radiograph.width), extension)

        label_bytes = await run_in_threadpool(encode)
        t3 = time.perf_counter()
        result = {
            "label_names": {c: i + 1 for i, c in enumerate(served.classes)},
            "model": served.describe(),
            "width": radiograph.width,
            "height": radiograph.height,
            "not_for_clinical_use": True,
            "instances": instances,
            "latencies": {
                "pre": round(t1 - t0, 3),
                "infer": round(t2 - t1, 3),
                "post": round(t3 - t2, 3),
                "total": round(t3 - t0, 3),
            },
        }
        return _answer(result, output, label_bytes, extension)

    return router


def _answer(result: dict[str, Any], output: str | None, label_bytes: bytes, extension: str) -> Response:
    """MONAI Label's answer: the JSON, the label image, or both in one multipart body (``output``)."""
    if output == "json":
        return JSONResponse(result)
    media = "image/png" if extension == ".png" else "application/octet-stream"
    if output == "image":
        return Response(
            label_bytes,
            media_type=media,
            headers={"Content-Disposition": f'attachment; filename="label{extension}"'},
        )
    return multipart_answer(result, f"label{extension}", label_bytes, media)
