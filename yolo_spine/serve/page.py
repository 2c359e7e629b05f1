"""The review page that ``yolo_spine serve`` shows at ``/``: drop a radiograph, see and filter its instances.

The page is static (``static/``: one HTML file, one script, one style sheet; no framework, no CDN, nothing
fetched from outside the server) and talks only to the server's JSON API: ``GET v1/models``,
``POST v1/radiographs`` (instances at a low confidence, filtered in the browser by the slider and the class boxes),
``POST v1/radiographs/preview.png`` (the 8-bit image the model saw, since a browser cannot show DICOM) and
``POST v1/radiographs/seg.dcm`` (the DICOM-SEG download, DICOM uploads only). URLs are relative, so the page also
works behind a reverse proxy under a path prefix.

The page and its assets carry no data, so they need no token; the API routes the page calls keep whatever
protection the server gives them, and the page sends the token its user enters as a bearer token.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fastapi import FastAPI

#: Where the page's files live (inside the package, so wheels carry them).
STATIC_DIR = Path(__file__).with_name("static")

#: Media types of the files the page is made of; any other file in ``static/`` is not served.
MEDIA_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8", ".css": "text/css"}

#: Only this server's own scripts, styles and API; images from the API as blobs; no frames, forms or plugins.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; connect-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)

_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",  # revalidate, so a new version of the package shows at once
}


def page_files() -> dict[str, Path]:
    """Return the page's assets served under ``/static/``: file name → path (``index.html`` is served at ``/``)."""
    return {
        p.name: p
        for p in sorted(STATIC_DIR.iterdir())
        if p.is_file() and p.suffix in MEDIA_TYPES and p.name != "index.html"
    }


def add_page(app: FastAPI) -> None:
    """Serve the review page at ``/`` and its assets at ``/static/<name>`` on ``app``.

    Args:
        app: The ``yolo_spine serve`` application (any FastAPI app with the ``/v1`` API the page calls).
    """
    from fastapi.responses import FileResponse, Response

    index = STATIC_DIR / "index.html"
    assets = page_files()

    def _file(path: Path) -> Response:
        return FileResponse(path, media_type=MEDIA_TYPES[path.suffix], headers=_HEADERS)

    @app.get("/", include_in_schema=False)
    def review_page() -> Response:
        return _file(index)

    @app.get("/static/{name}", include_in_schema=False)
    def review_asset(name: str) -> Response:
        path = assets.get(name)  # a fixed list: no path from the request ever reaches the file system
        if path is None:
            return Response("Not found.", status_code=404, media_type="text/plain", headers=_HEADERS)
        return _file(path)
