"""Subcommand ``serve`` (argparse only; FastAPI, uvicorn and the models are imported when it runs)."""

from __future__ import annotations

import argparse

from yolo_spine._cli_common import add_command, add_config, add_inference, stage_options


def _serve(args: argparse.Namespace) -> int:
    from yolo_spine.serve.options import ServeOptions

    same = ("host", "port", "threads", "device", "max_upload_mb")
    opts = stage_options(ServeOptions, args, same=same, default_conf=args.conf)
    from yolo_spine.errors import MissingDependencyError
    from yolo_spine.serve.server import check_host, resolve_token

    token = resolve_token(args.token)
    check_host(opts.host, token)  # before the models load: a refused address costs nothing
    import importlib.util

    # python-multipart is FastAPI's form parser (module `multipart`)
    missing = [m for m in ("fastapi", "uvicorn", "multipart") if importlib.util.find_spec(m) is None]
    if missing:
        raise MissingDependencyError(
            f"serve needs FastAPI, uvicorn and python-multipart ({', '.join(missing)} missing): "
            "pip install 'yolo_spine[clinic]'"
        )
    from yolo_spine.serve.server import serve

    serve(args.weights, opts, token)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``serve``."""
    p = add_command(
        sub,
        "serve",
        "serve models over HTTP: JSON and overlay for radiographs, MONAI Label's API, a review page",
        _serve,
        description="Load models once and answer HTTP requests: POST /v1/radiographs (JSON instances), "
        "/v1/radiographs/overlay.png, /v1/radiographs/preview.png, GET /v1/models, and MONAI Label's GET /info/ and "
        "POST /infer/{model}. Binds 127.0.0.1 unless --host is given (then --token is required). Needs the clinic "
        "extra: pip install 'yolo_spine[clinic]'. Research software, not for clinical use. Defaults: "
        "configs/serve/default.yaml.",
    )
    p.add_argument(
        "--weights",
        action="append",
        required=True,
        metavar="[NAME=]PATH",
        help="model to serve (.pt, .onnx or OpenVINO folder); repeat for several; NAME defaults to the file stem "
        "(the run folder for runs/NAME/weights/best.pt)",
    )
    p.add_argument("--host", default=None, help="address to bind (default 127.0.0.1; others need --token)")
    p.add_argument("--port", type=int, default=None, help="TCP port (default 8000)")
    p.add_argument(
        "--token",
        default=None,
        help="bearer token every API request must carry (or set YOLO_SPINE_SERVE_TOKEN, which keeps it out of "
        "process listings); at least 16 characters",
    )
    add_inference(
        p,
        conf_help="default confidence threshold, or 'auto' (review best F1)",
        threads_help="CPU threads for inference (default: every core)",
    )
    p.add_argument("--max-upload-mb", type=float, default=None, help="largest upload in MiB (default 64)")
    add_config(p, "serve")
