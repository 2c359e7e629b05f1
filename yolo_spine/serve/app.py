"""The inference service: a FastAPI app over models loaded once (``yolo_spine serve``).

Endpoints (``/v1`` is this package's own API; the page at ``/`` and MONAI Label's API are mounted beside it):

* ``GET /v1/models`` → ``[{"name", "anatomy", "classes", "default_conf", "sha256_12"}]`` (classes in registry
  order);
* ``POST /v1/radiographs?model=NAME&conf=FLOAT`` with a multipart field ``file`` (PNG, JPEG, TIFF or DICOM, 8 or
  16 bits) → ``{"width", "height", "model", "not_for_clinical_use": true, "instances": [{"class_id", "name",
  "confidence", "box_xyxy", "polygon_xy"}]}`` in pixels of the uploaded image (``model`` may be left out when
  one model is served; ``conf`` defaults to the model's ``default_conf``);
* ``POST /v1/radiographs/overlay.png`` (same inputs): the instances drawn over the image;
  ``POST /v1/radiographs/preview.png``: the 8-bit image the model saw (how a browser shows a DICOM);
  ``POST /v1/radiographs/seg.dcm``: a DICOM Segmentation of a DICOM upload;
* ``GET /info/``, ``POST /infer/{model}``: MONAI Label's automatic segmentation (:mod:`yolo_spine.serve.monai`).

Guarantees: one request is inferred at a time, the others wait their turn in arrival order (never refused for
being busy); a body over ``max_upload_mb`` is refused with 413 before it is read; every error is a 4xx with one
sentence in ``{"detail": …}`` (an unexpected fault is a 500 with one sentence; its traceback goes to the server
log only); with a token, every API route needs ``Authorization: Bearer TOKEN`` (401 otherwise); the access log
names the method, the route template, the status and the time — never a query string, a file name or a UID; every
response carries ``Cache-Control: no-store``.
"""

from __future__ import annotations

import hmac
import importlib.util
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, File, HTTPException, Query, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response

from yolo_spine import __version__
from yolo_spine.serve.models import ServedModel
from yolo_spine.serve.options import ServeOptions
from yolo_spine.serve.uploads import Radiograph, UploadError, decode_radiograph

log = logging.getLogger("yolo_spine")
#: The access log: one sanitised line per request (uvicorn's own access log is switched off).
access_log = logging.getLogger("yolo_spine.serve.access")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

NOT_FOR_CLINICAL_USE = "research software, not for clinical use"

#: Query and form parameters of the radiograph routes.
ModelName = Annotated[str | None, Query(description="model name (GET /v1/models); optional when one model is served")]
Conf = Annotated[float | None, Query(ge=0.0, le=1.0, description="confidence threshold (default: the model's)")]
Upload = Annotated[UploadFile | None, File(description="the radiograph: PNG, JPEG, TIFF or DICOM")]


class FifoLock:
    """A lock granted in arrival order (``threading.Lock`` is not fair: a busy client could starve the others)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._next_ticket = 0
        self._serving = 0

    @property
    def waiting(self) -> int:
        """Requests holding or waiting for the lock."""
        return self._next_ticket - self._serving

    @contextmanager
    def hold(self) -> Iterator[None]:
        """Wait for this caller's turn, hold the lock for the block, then pass it to the next in line."""
        with self._cond:
            ticket = self._next_ticket
            self._next_ticket += 1
            self._cond.wait_for(lambda: self._serving == ticket)
        try:
            yield
        finally:
            with self._cond:
                self._serving += 1
                self._cond.notify_all()


@dataclass
class Service:
    """What the routes share: the models by name, the options, the token and the inference lock."""

    models: dict[str, ServedModel]
    options: ServeOptions
    token: str | None = None
    lock: FifoLock = field(default_factory=FifoLock)

    def model(self, name: str | None) -> ServedModel:
        """The model a request names (the only one when it names none).

        Raises:
            HTTPException: 404 for an unknown name, 400 when several models are served and none is named.
        """
        if name is None:
            if len(self.models) == 1:
                return next(iter(self.models.values()))
            raise HTTPException(400, f"several models are served; name one with ?model= ({self.model_list()}).")
        served = self.models.get(name)
        if served is None:
            raise HTTPException(404, f"no model named '{name[:64]}' is served here (available: {self.model_list()}).")
        return served

    def model_list(self) -> str:
        """The served model names, comma-separated."""
        return ", ".join(self.models)

    async def decode(self, file: UploadFile | None) -> Radiograph:
        """Read and decode an uploaded radiograph (off the event loop)."""
        if file is None:
            raise HTTPException(422, "the request needs the image as a multipart field named 'file'.")
        data = await file.read()
        return await run_in_threadpool(decode_radiograph, data, tuple(self.options.allowed_types))

    async def predict(self, served: ServedModel, radiograph: Radiograph, conf: float | None) -> list[dict[str, Any]]:
        """Run the model on the radiograph when its turn comes (one inference at a time, in arrival order)."""
        threshold = served.default_conf if conf is None else conf

        def run() -> list[dict[str, Any]]:
            with self.lock.hold():
                return served.predict(radiograph.image_bgr, threshold)

        return await run_in_threadpool(run)


def seg_bytes(served: ServedModel, image: Radiograph, instances: list[dict[str, Any]]) -> bytes:
    """A DICOM Segmentation of a DICOM upload: one segment per instance, referencing the upload's instance.

    Raises:
        UploadError: 422 when the writer refuses (a multi-frame source, no instance with pixels).
    """
    import io
    import tempfile
    from pathlib import Path

    import pydicom

    from yolo_spine.errors import UserError
    from yolo_spine.io.dicom_seg import algorithm_for, write_radiograph_seg
    from yolo_spine.registry import load_registry
    from yolo_spine.serve.render import instance_masks

    source = pydicom.dcmread(io.BytesIO(image.data), stop_before_pixels=True)
    masks = instance_masks(instances, image.height, image.width)
    try:
        with tempfile.TemporaryDirectory(prefix="yolo_spine_seg_") as tmp:
            out = Path(tmp) / "seg.dcm"
            write_radiograph_seg(
                masks,
                [i["class_id"] for i in instances],
                source,
                load_registry(served.anatomy or ""),
                out,
                algorithm_for(served.weights),
            )
            return out.read_bytes()
    except UserError as exc:
        raise UploadError(422, f"no DICOM Segmentation for this upload: {str(exc).rstrip('.')}.") from None


# ------------------------------------------------------------------------------------------------ middleware


class GuardMiddleware:
    """Body-size limit, ``Cache-Control: no-store`` and the sanitised access log, for every HTTP request."""

    def __init__(self, app: ASGIApp, max_body: int) -> None:
        self.app = app
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one ASGI connection (HTTP requests guarded; other kinds passed through)."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        state = {"status": 0, "received": 0, "gone": 0}
        try:
            length = int(dict(scope.get("headers") or []).get(b"content-length", b"0") or 0)
        except ValueError:
            length = 0
        if length > self.max_body:
            response = JSONResponse({"detail": self._too_large()}, status_code=413, headers={"Connection": "close"})
            await response(scope, receive, self._sending(send, state))
            self._log(scope, state, t0)
            return

        async def limited_receive() -> Message:
            message = await receive()
            if message["type"] == "http.disconnect" and not state["status"]:  # gone before any answer
                state["gone"] = 1
            if message["type"] == "http.request":
                state["received"] += len(message.get("body", b""))
                if state["received"] > self.max_body:  # a body without Content-Length (chunked)
                    raise HTTPException(413, self._too_large())
            return message

        try:
            await self.app(scope, limited_receive, self._sending(send, state))
        except Exception:
            state["status"] = state["status"] or 500  # the error middleware outside answers with one sentence
            raise
        finally:
            self._log(scope, state, t0)

    def _too_large(self) -> str:
        size = f"{self.max_body / 2**20:g} MiB" if self.max_body >= 2**20 else f"{self.max_body / 1024:.0f} KiB"
        return f"the upload is larger than this service accepts ({size})."

    @staticmethod
    def _sending(send: Send, state: dict[str, int]) -> Send:
        async def wrapped(message: Message) -> None:
            if message["type"] == "http.response.start":
                state["status"] = int(message["status"])
                headers = list(message.get("headers") or [])
                if not any(k.lower() == b"cache-control" for k, _ in headers):  # the page sets its own
                    headers.append((b"cache-control", b"no-store"))
                    message = {**message, "headers": headers}
            await send(message)

        return wrapped

    def _log(self, scope: Scope, state: dict[str, int], t0: float) -> None:
        # The route template, never the raw path or query string: both can carry names, UIDs or file names.
        access_log.info(
            "%s %s %s %.0f ms",
            scope.get("method", "?"),
            route_template(scope),
            # 499 (nginx's "client closed request"): the answer, if any, never reached the client
            499 if state["gone"] else state["status"] or "-",
            (time.perf_counter() - t0) * 1000.0,
        )


def route_template(scope: Scope) -> str:
    """The template of the route that handled a request (``/infer/{model}``), as the router left it in the scope."""
    route = scope.get("route")
    if route is None:
        return "<no route>"
    path = getattr(route, "path", None)
    return (path or "/") if isinstance(path, str) else "<route>"


# ------------------------------------------------------------------------------------------------ errors


def _one_sentence(exc: RequestValidationError) -> str:
    errors = exc.errors()
    if not errors:
        return "the request is not valid."
    first = errors[0]
    where = ".".join(str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path"))
    if first.get("loc", ("",))[0] == "body" and where == "file":
        return "the request needs the image as a multipart field named 'file'."
    return f"'{where}': {str(first.get('msg', 'is not valid')).rstrip('.')}." if where else "the request is not valid."


def _install_error_handlers(app: FastAPI) -> None:
    async def upload_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, UploadError)
        return JSONResponse({"detail": str(exc)}, status_code=exc.status)

    async def validation_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        return JSONResponse({"detail": _one_sentence(exc)}, status_code=422)

    async def unexpected(_: Request, exc: Exception) -> Response:
        log.error("unexpected %s while handling a request", type(exc).__name__, exc_info=exc)
        return JSONResponse(
            {"detail": "the service failed on this request (an internal error; the server log has the details)."},
            status_code=500,
        )

    app.add_exception_handler(UploadError, upload_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(Exception, unexpected)


def _bearer_dependency(token: str | None) -> Callable[[Request], None]:
    def require_token(request: Request) -> None:
        if token is None:
            return
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token.encode()):
            raise HTTPException(
                401, "this service needs 'Authorization: Bearer TOKEN'.", headers={"WWW-Authenticate": "Bearer"}
            )

    return require_token


# ------------------------------------------------------------------------------------------------ routes


def _radiograph_router(service: Service) -> APIRouter:
    router = APIRouter(prefix="/v1")

    @router.get("/models")
    def models() -> list[dict[str, Any]]:
        return [m.describe() for m in service.models.values()]

    @router.post("/radiographs")
    async def radiograph(model: ModelName = None, conf: Conf = None, file: Upload = None) -> dict[str, Any]:
        served = service.model(model)
        image = await service.decode(file)
        instances = await service.predict(served, image, conf)
        return {
            "width": image.width,
            "height": image.height,
            "model": served.describe(),
            "not_for_clinical_use": True,
            "instances": instances,
        }

    @router.post("/radiographs/overlay.png")
    async def overlay(model: ModelName = None, conf: Conf = None, file: Upload = None) -> Response:
        from yolo_spine.serve.render import overlay_png

        served = service.model(model)
        image = await service.decode(file)
        instances = await service.predict(served, image, conf)
        png = await run_in_threadpool(
            overlay_png, image.image_bgr, instances, len(served.classes), service.options.mask_alpha
        )
        return Response(png, media_type="image/png")

    @router.post("/radiographs/preview.png")
    async def preview(file: Upload = None) -> Response:
        from yolo_spine.serve.render import encode_png

        image = await service.decode(file)
        return Response(await run_in_threadpool(encode_png, image.image_bgr), media_type="image/png")

    @router.post("/radiographs/seg.dcm")
    async def seg(model: ModelName = None, conf: Conf = None, file: Upload = None) -> Response:
        served = service.model(model)
        image = await service.decode(file)
        if image.kind != "dicom":
            raise HTTPException(415, "a DICOM Segmentation needs a DICOM upload (it references the source image).")
        if importlib.util.find_spec("highdicom") is None:
            raise HTTPException(
                501, "DICOM-SEG output needs highdicom on the server: pip install 'yolo_spine[clinic]'."
            )
        if served.anatomy is None:
            raise HTTPException(422, "a DICOM Segmentation needs a model of a shipped anatomy (coded segments).")
        instances = await service.predict(served, image, conf)
        if not instances:
            raise HTTPException(
                422, "the model found nothing at this confidence: a DICOM Segmentation needs a segment."
            )
        data = await run_in_threadpool(seg_bytes, served, image, instances)
        return Response(data, media_type="application/dicom")

    return router


def create_app(models: list[ServedModel], options: ServeOptions, token: str | None = None) -> FastAPI:
    """Build the service over models already loaded (:func:`yolo_spine.serve.models.load_served_models`).

    Args:
        models: The models, each under its unique ``name``.
        options: The service's options (upload limits, default confidence, overlay opacity).
        token: Bearer token every API route requires (``None``: none; the command requires one off loopback).

    Returns:
        The FastAPI app (run it with uvicorn, or test it with ``fastapi.testclient.TestClient``).
    """
    from yolo_spine.serve.monai import monai_router
    from yolo_spine.serve.page import add_page

    service = Service({m.name: m for m in models}, options, token)
    app = FastAPI(
        title="yolo_spine",
        version=__version__,
        description=f"Instance segmentation of radiographs with YOLO ({NOT_FOR_CLINICAL_USE}).",
        docs_url=None,  # the interactive docs load scripts from a CDN; this service reaches nothing outside
        redoc_url=None,
    )
    app.state.service = service
    guard = [Depends(_bearer_dependency(token))]
    app.include_router(_radiograph_router(service), dependencies=guard)
    app.include_router(monai_router(service), dependencies=guard)
    add_page(app)  # the review page at /
    _install_error_handlers(app)
    app.add_middleware(GuardMiddleware, max_body=options.max_upload_bytes)
    return app
