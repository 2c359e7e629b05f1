"""The ``pacs`` subcommand (argparse only; the DICOMweb client and the model are imported when it runs)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from yolo_spine._cli_common import (
    MODEL_ANATOMY_HELP,
    add_anatomy,
    add_command,
    add_config,
    add_device,
    add_record_paths,
    add_weights,
    say,
    stage_options,
)
from yolo_spine.errors import UserError

#: Environment variables that hold the credentials (a value on the command line is visible to every local user).
TOKEN_ENV = "YOLO_SPINE_PACS_TOKEN"
PASSWORD_ENV = "YOLO_SPINE_PACS_PASSWORD"


def _password(user: str | None) -> str | None:
    if not user:
        return None
    password = os.environ.get(PASSWORD_ENV)
    if password is not None:
        return password
    if not sys.stdin.isatty():
        raise UserError(f"--user needs the password in {PASSWORD_ENV} (no terminal to ask for it)")
    import getpass

    return getpass.getpass(f"password of {user} on the DICOMweb server: ")


def _pacs(args: argparse.Namespace) -> int:
    from yolo_spine.pacs.options import PacsOptions

    opts = stage_options(PacsOptions, args, same=("conf", "device"))
    token = args.token or os.environ.get(TOKEN_ENV) or None
    if token and args.user:
        raise UserError("give --token or --user, not both")
    password = _password(args.user)
    from yolo_spine.pacs.run import run_pacs

    run = run_pacs(
        args.url,
        args.study,
        args.weights,
        opts,
        anatomy=args.anatomy,
        force=args.force,
        token=token,
        user=args.user,
        password=password,
        runs=args.runs,
    )
    for outcome in run.series:
        say(outcome.sentence())
    exists = sum(o.status == "exists" for o in run.series)
    say(
        f"study {run.study}: {run.stored} DICOM-SEG stored, {exists} already there, {run.failed} failed; "
        f"run record: {run.record_path}"
    )
    return 6 if run.failed else 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``pacs``."""
    p = add_command(
        sub,
        "pacs",
        "segment a study on a PACS over DICOMweb and store the result back as DICOM-SEG (not for clinical use)",
        _pacs,
        description="Find the study's series (QIDO-RS), download each CT, CR or DX series (WADO-RS) into a "
        "private temporary folder, segment it (radiograph: predict; CT: slices, predict, lift) and store a "
        "DICOM-SEG referencing it in the same study (STOW-RS). A series that already has a SEG of this model is "
        "skipped unless --force. The Study Instance UID is never logged nor recorded: run records name the study "
        "by a pseudonym. Needs the clinic extra: pip install -e .[clinic]. Defaults: configs/pacs/default.yaml.",
    )
    p.add_argument("--url", required=True, help="DICOMweb root of the server, e.g. http://localhost:8042/dicom-web")
    p.add_argument("--study", required=True, metavar="UID", help="Study Instance UID of the study to segment")
    add_weights(p)
    add_anatomy(p, default=None, help=MODEL_ANATOMY_HELP)
    p.add_argument(
        "--force", action="store_true", help="store a new SEG even when one of this model for the series is there"
    )
    p.add_argument("--conf", type=float, default=None, help="confidence threshold (configs/pacs/default.yaml: 0.25)")
    add_device(p)
    auth = p.add_argument_group("credentials (the server's own; never recorded)")
    auth.add_argument("--token", help=f"bearer token (or set {TOKEN_ENV}, which other local users cannot read)")
    auth.add_argument("--user", help=f"HTTP basic-auth user; the password comes from {PASSWORD_ENV} or a prompt")
    p.add_argument(
        "--runs",
        type=Path,
        default=Path("pacs-runs"),
        help="folder of the run records, one JSON per run named by time and study pseudonym",
    )
    add_config(p, "pacs")
    add_record_paths(p)
