"""Run the service: load the models once, check the network options, hand the app to uvicorn.

A service reachable from other machines must authenticate its callers: :func:`check_host` refuses any address
that is not loopback unless a bearer token is given. uvicorn's own access log is switched off (its lines carry the
raw path with its query string); :mod:`yolo_spine.serve.app` logs one sanitised line per request instead.
"""

from __future__ import annotations

import ipaddress
import logging
import os
from pathlib import Path

from yolo_spine.errors import UserError
from yolo_spine.serve.options import ServeOptions

log = logging.getLogger("yolo_spine")

#: Environment variable read for the token when ``--token`` is not given (keeps it out of ``ps`` listings).
TOKEN_ENV = "YOLO_SPINE_SERVE_TOKEN"
#: Shortest token accepted (a guessable token is no protection).
MIN_TOKEN_CHARS = 16


def is_loopback(host: str) -> bool:
    """Whether ``host`` is a loopback address (``127.0.0.0/8``, ``::1``) or ``localhost``."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_host(host: str, token: str | None) -> None:
    """Refuse a non-loopback address without a token, and a token too short to protect anything.

    Raises:
        UserError: With the sentence to show.
    """
    if token is not None and len(token) < MIN_TOKEN_CHARS:
        raise UserError(f"the token must have at least {MIN_TOKEN_CHARS} characters")
    if not is_loopback(host) and token is None:
        raise UserError(
            f"--host {host} makes the service reachable from other machines: give --token (or set {TOKEN_ENV}) "
            "so that every request must carry 'Authorization: Bearer TOKEN'"
        )


def resolve_token(token: str | None) -> str | None:
    """``--token`` if given, else ``$YOLO_SPINE_SERVE_TOKEN``, else ``None``."""
    if token:
        return token
    return os.environ.get(TOKEN_ENV) or None


def serve(weights: list[str | Path], options: ServeOptions, token: str | None = None) -> None:
    """Load the models and serve them until interrupted (Ctrl-C or SIGTERM end it cleanly).

    Args:
        weights: ``[NAME=]PATH`` of each model (``.pt``, ``.onnx`` or an OpenVINO folder).
        options: The service's options (``configs/serve/default.yaml``).
        token: Bearer token (required off loopback).

    Raises:
        UserError: A refused address or token, a model that cannot be loaded, a port already in use.
    """
    import uvicorn

    from yolo_spine.serve.app import create_app
    from yolo_spine.serve.models import load_served_models

    check_host(options.host, token)
    models = load_served_models(list(weights), options)
    app = create_app(models, options, token)
    log.info(
        "serving %s on http://%s:%d%s (research software, not for clinical use)",
        ", ".join(m.name for m in models),
        options.host,
        options.port,
        " with bearer authentication" if token else "",
    )
    config = uvicorn.Config(
        app, host=options.host, port=options.port, access_log=False, log_level="info", server_header=False
    )
    server = uvicorn.Server(config)
    server.run()
    if not server.started:
        raise UserError(
            f"could not listen on {options.host}:{options.port} (in use, or not an address of this machine)"
        )
