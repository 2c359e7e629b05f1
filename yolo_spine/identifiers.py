"""What run records may say about their inputs: no folders, no credentials, no secrets, no patient names.

Folder names are where identifiers hide (``/data/Doe_Janet_19710203/``), and stream URLs and option values
carry credentials. Every run record and manifest passes through :func:`sanitize` (``run_manifest`` does it for
``argv``, ``options``, ``inputs`` and ``extra``), which

* reduces a path to its base file name, and a folder to ``<folder>`` (its name is dropped too: a folder named
  after a patient is the common case this guards against);
* masks the user information of URLs (``rtsp://user:password@host/x`` → ``rtsp://***@host/x``) and the values
  of secret-named query parameters (``?token=…``);
* masks the value of every option whose name says it holds a secret (``token``, ``api_key``, ``password`` …).

``--record-paths`` (:func:`recording_paths`, set by the CLI for one command) keeps full paths for users who want
them; credentials and secrets stay masked even then.

:func:`pseudonym` derives ``ct2yolo``'s study ids from an input's content, so the same study gets the same id on
every node, shard and re-run, whatever its path.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
from collections.abc import Collection, Iterator, Mapping, Sequence
from contextvars import ContextVar
from pathlib import Path, PurePath
from typing import Any, NotRequired, TypedDict

#: What a folder is recorded as (its own name can be the identifier).
FOLDER = "<folder>"
#: What a credential or secret is recorded as.
MASK = "***"
#: What a file name the caller asked to hide is recorded as (``ct2yolo``: the inputs of a pseudonymous study).
HIDDEN = "<hidden>"
#: Name parts that mark an option, flag or query parameter as holding a secret.
SECRET_WORDS = frozenset(
    {"token", "key", "apikey", "password", "passwd", "pwd", "secret", "credential", "credentials", "auth"}
)

_RECORD_PATHS: ContextVar[bool] = ContextVar("yolo_spine_record_paths", default=False)
# scheme://userinfo@ — greedy up to the last '@' before the path, query or fragment
_URL_USERINFO = re.compile(r"\b([A-Za-z][A-Za-z0-9+.\-]*://)[^/?#\s]*@")
_URL_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://")
_QUERY_PARAM = re.compile(r"([?&;])([^=&#\s?;]+)=([^&#\s;]*)")
_WINDOWS_ABS = re.compile(r"^(?:[A-Za-z]:[\\/]|\\\\)")


@contextlib.contextmanager
def recording_paths(enabled: bool = True) -> Iterator[None]:
    """Keep full paths in the run records written inside this block (the CLI's ``--record-paths``)."""
    token = _RECORD_PATHS.set(bool(enabled))
    try:
        yield
    finally:
        _RECORD_PATHS.reset(token)


def records_paths() -> bool:
    """Whether run records written now keep full paths (see :func:`recording_paths`)."""
    return _RECORD_PATHS.get()


def _keep(record_paths: bool | None) -> bool:
    return records_paths() if record_paths is None else bool(record_paths)


def is_secret_key(key: object) -> bool:
    """Whether an option, flag or query parameter name says its value is a secret (``--api-key``, ``token``)."""
    text = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", str(key)).lstrip("-").lower()
    parts = [p for p in re.split(r"[^a-z0-9]+", text) if p]
    return any(p in SECRET_WORDS for p in parts) or "".join(parts) in SECRET_WORDS


def mask_credentials(text: str) -> str:
    """Mask every URL's user and password and the values of secret-named query parameters in ``text``."""
    text = _URL_USERINFO.sub(lambda m: f"{m.group(1)}{MASK}@", text)
    if "://" not in text:
        return text
    return _QUERY_PARAM.sub(
        lambda m: f"{m.group(1)}{m.group(2)}={MASK}" if is_secret_key(m.group(2)) else m.group(0), text
    )


def path_name(value: str | os.PathLike[str]) -> str:
    """A path's base file name, or :data:`FOLDER` when it names a folder (``/a/Doe_J/`` → ``<folder>``).

    A path that does not exist counts as a folder unless its name has a suffix (``runs/exp`` → ``<folder>``,
    ``out/seg.nii.gz`` → ``seg.nii.gz``), so a record does not depend on whether the output existed yet.
    """
    text = os.fspath(value)
    stripped = text.rstrip("/\\")
    name = re.split(r"[\\/]", stripped)[-1] if stripped else ""
    if not name or text != stripped or name in (".", "..", "~"):
        return FOLDER
    path = Path(text).expanduser()
    try:
        if path.is_dir():
            return FOLDER
        if path.is_file():
            return name
    except OSError:
        pass
    return name if PurePath(name).suffix else FOLDER


def _is_url(text: str) -> bool:
    return bool(_URL_SCHEME.match(text))


def _looks_like_path(text: str, relative: bool) -> bool:
    if not text or "\n" in text or len(text) > 4096 or _is_url(text):
        return False
    if text.startswith(("/", "~")) or _WINDOWS_ABS.match(text):
        return True
    if not relative:
        return False
    if "/" in text or "\\" in text:
        return True
    try:
        return os.path.lexists(text)  # a bare name of something in the working folder
    except (OSError, ValueError):
        return False


def _mask_value(value: Any) -> Any:
    return value if value is None or isinstance(value, bool) or value == "" else MASK


def sanitize(
    obj: Any, *, record_paths: bool | None = None, relative_paths: bool = True, hidden_names: Collection[str] = ()
) -> Any:
    """Return ``obj`` fit for a run record: paths reduced to base names, credentials and secrets masked.

    Args:
        obj: Options, a manifest part, a path, a string … (mappings, lists, tuples and sets are walked).
        record_paths: Keep full paths (``None``: as :func:`recording_paths` says). Secrets are masked anyway.
        relative_paths: Also treat relative strings (``data/x.yaml``, a bare name that exists) as paths. Set it
            false for fields that hold paths inside an output (``images/train/a.png``); ``Path`` objects and
            absolute strings are always paths.
        hidden_names: Base names recorded as :data:`HIDDEN` (file names that would identify a study).

    Returns:
        A copy with the same shape; other values are returned unchanged.
    """
    keep = _keep(record_paths)

    def name(x: str | PurePath) -> str:
        n = path_name(x)
        return HIDDEN if n in hidden_names else n

    def walk(x: Any) -> Any:
        if isinstance(x, Mapping):
            return {k: _mask_value(v) if is_secret_key(k) else walk(v) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return [walk(v) for v in x]
        if isinstance(x, (set, frozenset)):
            return sorted((walk(v) for v in x), key=str)
        if isinstance(x, PurePath):
            return str(x) if keep else name(x)
        if isinstance(x, str):
            masked = mask_credentials(x)
            if keep or _is_url(masked) or not _looks_like_path(masked, relative_paths):
                return masked
            return name(masked)
        return x

    return walk(obj)


def sanitize_argv(
    argv: Sequence[str], *, record_paths: bool | None = None, hidden_names: Collection[str] = ()
) -> list[str]:
    """Sanitise a command line: each path argument as :func:`sanitize` does, secret flags' values masked.

    ``argv[0]`` (the program) and the first word after it that is not a flag (the subcommand) stay as they
    are; ``--api-key VALUE`` and ``--api-key=VALUE`` both become ``--api-key ***``; URLs lose their credentials.
    """
    out: list[str] = [str(a) for a in argv[:1]]
    mask_next = False
    command_seen = False
    for arg in argv[1:]:
        arg = str(arg)
        if not command_seen and not arg.startswith("-"):
            command_seen = True  # the subcommand, even when a folder of that name exists here
            out.append(arg)
            continue
        if mask_next and not arg.startswith("--"):
            out.append(MASK)
            mask_next = False
            continue
        mask_next = False
        if arg.startswith("-") and "=" in arg:
            flag, value = arg.split("=", 1)
            value = (
                MASK if is_secret_key(flag) else sanitize(value, record_paths=record_paths, hidden_names=hidden_names)
            )
            out.append(f"{flag}={value}")
        elif arg.startswith("-") and not _looks_numeric(arg):
            mask_next = is_secret_key(arg)
            out.append(arg)
        else:
            out.append(sanitize(arg, record_paths=record_paths, hidden_names=hidden_names))
    return out


def _looks_numeric(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


class InputRecord(TypedDict):
    """One input file in a run record (:func:`input_record`)."""

    name: str | None  # base name; a folder: FOLDER; hidden: HIDDEN (run_manifest) or None (ct2yolo study reports)
    sha256: str | None  # None for a folder
    path: NotRequired[str]  # only with --record-paths


def input_record(
    path: str | os.PathLike[str], *, record_paths: bool | None = None, sha256: str | None = None
) -> InputRecord:
    """Describe one input file for a run record: ``{"name", "sha256"}`` (and ``"path"`` with record_paths).

    A folder's ``name`` is :data:`FOLDER` and its ``sha256`` ``None``. ``sha256``: the file's hash when the
    caller has it already (a large CT is read once).
    """
    from yolo_spine.provenance import sha256_file

    p = Path(path)
    digest = sha256 or (sha256_file(p) if p.is_file() else None)
    record: InputRecord = {"name": path_name(p), "sha256": digest}
    if _keep(record_paths):
        record["path"] = mask_credentials(str(p))
    return record


def pseudonym(identity: str, salt: str = "", prefix: str = "s-", n_hex: int = 10) -> str:
    """A pseudonymous id from an input's identity (a content hash) and a salt: ``s-<10 hex>``.

    The same identity and salt give the same id on every machine; another salt gives unrelated ids. With 40
    bits, ten thousand studies collide with odds of about 1 in 20,000; callers refuse a collision.
    """
    h = hashlib.sha256(b"yolo_spine/pseudonym@1\0" + str(salt).encode() + b"\0" + identity.encode())
    return f"{prefix}{h.hexdigest()[:n_hex]}"
