"""A DICOMweb server as ``pacs`` uses it: QIDO-RS to find series, WADO-RS to download them, STOW-RS to store.

A thin layer over ``dicomweb-client`` (the ``clinic`` extra) that turns every failure into one sentence a user
can act on: a URL that is not http(s), a server that does not answer, refused credentials, an unknown study.
Those sentences never quote a request URL (DICOMweb URLs carry the Study and Series Instance UIDs), and
``dicomweb-client``'s own log lines, which do, are kept below warnings while this module works.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from yolo_spine.errors import MissingDependencyError, UserError

if TYPE_CHECKING:
    import pydicom
    import requests

log = logging.getLogger("yolo_spine")

CLINIC_HINT = 'pip install -e ".[clinic]"'
#: Attempts per request (the waits between them double from 1 s).
RETRY_ATTEMPTS = 3
#: DICOM JSON tags (group+element) QIDO-RS answers with.
_MODALITY, _SERIES_UID, _SERIES_NUMBER, _N_INSTANCES = "00080060", "0020000E", "00200011", "00201209"


class PacsError(UserError):
    """The DICOMweb server could not be used (unreachable, refused, answered with an error)."""

    exit_code = 5


@dataclass(frozen=True)
class SeriesInfo:
    """One series of the study as QIDO-RS lists it (the UID stays in memory; messages use ``number``).

    Attributes:
        uid: Series Instance UID.
        modality: ``CT``, ``CR``, ``DX``, ``SEG`` …
        number: Series Number (``None`` when the server does not give one).
        n_instances: Number of Series Related Instances (``None`` when the server does not give it).
    """

    uid: str
    modality: str
    number: int | None
    n_instances: int | None


@dataclass(frozen=True)
class ExistingSeg:
    """A DICOM-SEG already in the study: what it was made by and from.

    Attributes:
        series_uid: The SEG's own Series Instance UID.
        referenced_series: Series Instance UIDs its Referenced Series Sequence names (its sources).
        referenced_instances: SOP Instance UIDs that sequence names (the images segmented).
        algorithms: ``(name, version, parameters)`` of each algorithm identification in its segments.
    """

    series_uid: str
    referenced_series: frozenset[str]
    referenced_instances: frozenset[str] = field(default_factory=frozenset)
    algorithms: frozenset[tuple[str, str, str]] = field(default_factory=frozenset)


def check_url(url: str) -> str:
    """Return the DICOMweb base URL without a trailing slash.

    Raises:
        UserError: Not an http(s) URL with a host, or credentials written into it (use ``--user``/``--token``).
    """
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UserError("--url must be the DICOMweb root of the server, such as http://pacs.example.org/dicom-web")
    if parts.username or parts.password:
        raise UserError(
            "--url must not carry a user or password; give --user (password in YOLO_SPINE_PACS_PASSWORD) or --token"
        )
    if parts.query or parts.fragment:
        raise UserError("--url must be the DICOMweb root without a query string")
    return url.strip().rstrip("/")


def _clinic_import() -> Any:
    try:
        from dicomweb_client.api import DICOMwebClient
    except ImportError:
        raise MissingDependencyError(
            f"yolo_spine pacs needs dicomweb-client; install the clinic extra: {CLINIC_HINT}"
        ) from None
    return DICOMwebClient


def _session(timeout_s: float, token: str | None, user: str | None, password: str | None) -> requests.Session:
    import requests

    class _TimeoutSession(requests.Session):
        """A session whose requests time out (``requests`` waits forever by default)."""

        def request(self, *args: Any, **kwargs: Any) -> Any:
            kwargs.setdefault("timeout", timeout_s)
            return super().request(*args, **kwargs)

    session = _TimeoutSession()
    if token:
        session.headers["Authorization"] = f"Bearer {token}"
    elif user:
        session.auth = (user, password or "")
    return session


@contextlib.contextmanager
def _quiet_client_logs() -> Iterator[None]:
    """Keep ``dicomweb-client``'s and ``urllib3``'s log lines (they quote URLs with UIDs) below warnings."""
    loggers = [logging.getLogger(n) for n in ("dicomweb_client", "urllib3")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


class Server:
    """A DICOMweb server: the few QIDO-RS, WADO-RS and STOW-RS calls ``pacs`` makes, with errors in one sentence.

    Args:
        url: The DICOMweb root (``http://host:8042/dicom-web`` for Orthanc).
        timeout_s: Seconds to wait for a connection and for each read.
        token: A bearer token (``Authorization: Bearer …``).
        user: HTTP basic-auth user (with ``password``).
        password: HTTP basic-auth password.
    """

    def __init__(
        self,
        url: str,
        timeout_s: float = 120.0,
        token: str | None = None,
        user: str | None = None,
        password: str | None = None,
    ) -> None:
        self.url = check_url(url)  # a malformed URL is refused before the clinic extra is needed
        client_cls = _clinic_import()
        parts = urlsplit(self.url)
        self.host = f"{parts.hostname}" + (f":{parts.port}" if parts.port else "")
        self._client = client_cls(url=self.url, session=_session(timeout_s, token, user, password))
        # dicomweb-client retries every failed request, a refused connection too, 5 times with waits of 2-16 s
        # (30 s before "cannot reach"); busy answers (429, 503 …) still get retried, briefly.
        self._client.set_http_retry_params(retry=True, max_attempts=RETRY_ATTEMPTS, wait_exponential_multiplier=500)

    @contextlib.contextmanager
    def _call(self, what: str) -> Iterator[None]:
        """Turn the failures of one request into a :class:`PacsError` naming ``what`` and the host, never the URL."""
        import requests

        with _quiet_client_logs():
            try:
                yield
            except requests.exceptions.HTTPError as exc:
                status = exc.response.status_code if exc.response is not None else None
                if status in (401, 403):
                    raise PacsError(
                        f"the DICOMweb server at {self.host} refused to {what} (HTTP {status}): check --user/--token"
                    ) from None
                raise PacsError(
                    f"the DICOMweb server at {self.host} answered HTTP {status} when asked to {what}"
                ) from None
            except requests.exceptions.Timeout:
                raise PacsError(
                    f"the DICOMweb server at {self.host} did not answer in time when asked to {what}"
                ) from None
            except requests.exceptions.ConnectionError:
                raise PacsError(
                    f"cannot reach a DICOMweb server at {self.host} (connection failed); check --url"
                ) from None
            except requests.exceptions.RequestException as exc:
                raise PacsError(f"the request to {what} at {self.host} failed ({type(exc).__name__})") from None
            except ValueError as exc:  # dicomweb-client: an answer that is not DICOM JSON or multipart DICOM
                raise PacsError(
                    f"the server at {self.host} gave an answer that is not DICOMweb when asked to {what} "
                    f"({type(exc).__name__}); check that --url is its DICOMweb root"
                ) from None

    def study_series(self, study_uid: str) -> list[SeriesInfo]:
        """Every series of a study (QIDO-RS), in the server's order.

        Raises:
            PacsError: The server cannot be used.
            UserError: The server knows no such study.
        """
        with self._call("list the study's series"):
            found = self._client.search_for_series(
                study_instance_uid=study_uid, fields=["Modality", "SeriesNumber", "NumberOfSeriesRelatedInstances"]
            )
        if not found:
            raise UserError(f"the DICOMweb server at {self.host} has no study with this Study Instance UID")
        return [_series_info(item) for item in found if _value(item, _SERIES_UID)]

    def download_series(self, study_uid: str, series_uid: str, folder: Path) -> list[Path]:
        """Download every instance of a series (WADO-RS) into ``folder`` (``0000.dcm``, ``0001.dcm`` …).

        File names are counters: names made of UIDs would put identifiers on disk.
        """
        folder.mkdir(parents=True, exist_ok=True)
        paths: list[Path] = []
        with self._call("send the series' images"):
            for ds in self._client.iter_series(study_instance_uid=study_uid, series_instance_uid=series_uid):
                path = folder / f"{len(paths):04d}.dcm"
                ds.save_as(path, enforce_file_format=True)
                paths.append(path)
        return paths

    def existing_segs(self, study_uid: str) -> list[ExistingSeg]:
        """The DICOM-SEG series already in the study, with their sources and algorithms (QIDO-RS, then metadata)."""
        with self._call("list the study's segmentations"):
            found = self._client.search_for_series(study_instance_uid=study_uid, search_filters={"Modality": "SEG"})
        out = []
        for item in found:
            uid = _value(item, _SERIES_UID)
            if not uid or _value(item, _MODALITY) not in (None, "SEG"):
                continue
            with self._call("describe a segmentation series"):
                metadata = self._client.retrieve_series_metadata(study_instance_uid=study_uid, series_instance_uid=uid)
            refs: set[str] = set()
            instances: set[str] = set()
            algorithms: set[tuple[str, str, str]] = set()
            for meta in metadata:
                ds = _dataset_from_json(meta)
                refs |= referenced_series(ds)
                instances |= referenced_instances(ds)
                algorithms |= seg_algorithms(ds)
            out.append(ExistingSeg(str(uid), frozenset(refs), frozenset(instances), frozenset(algorithms)))
        return out

    def store(self, paths: list[Path]) -> None:
        """Store DICOM files in the server (STOW-RS); refused or failed instances are an error."""
        import pydicom

        datasets = [pydicom.dcmread(p) for p in paths]
        with self._call("store the segmentation"):
            response = self._client.store_instances(datasets=datasets)
        failed = getattr(response, "FailedSOPSequence", None)
        if failed:
            raise PacsError(f"the DICOMweb server at {self.host} refused to store {len(failed)} instance(s)")


def _value(item: dict[str, Any], tag: str) -> Any:
    """The first value of a DICOM JSON attribute (``None`` when absent or empty)."""
    values = (item.get(tag) or {}).get("Value") or []
    return values[0] if values else None


def _series_info(item: dict[str, Any]) -> SeriesInfo:
    number, count = _value(item, _SERIES_NUMBER), _value(item, _N_INSTANCES)
    return SeriesInfo(
        uid=str(_value(item, _SERIES_UID)),
        modality=str(_value(item, _MODALITY) or "").upper(),
        number=int(number) if number is not None else None,
        n_instances=int(count) if count is not None else None,
    )


def _dataset_from_json(meta: dict[str, Any]) -> pydicom.Dataset:
    """A pydicom dataset from DICOM JSON metadata; bulk data (pixel data) is left out, never fetched."""
    import pydicom

    return pydicom.Dataset.from_json(meta, bulk_data_uri_handler=lambda *_args: b"")


def referenced_series(ds: pydicom.Dataset) -> set[str]:
    """The Series Instance UIDs a SEG's Referenced Series Sequence names."""
    items = ds.get("ReferencedSeriesSequence", [])
    return {str(item.SeriesInstanceUID) for item in items if "SeriesInstanceUID" in item}


def referenced_instances(ds: pydicom.Dataset) -> set[str]:
    """The SOP Instance UIDs a SEG's Referenced Series Sequence names."""
    return {
        str(ref.ReferencedSOPInstanceUID)
        for item in ds.get("ReferencedSeriesSequence", [])
        for ref in item.get("ReferencedInstanceSequence", [])
        if "ReferencedSOPInstanceUID" in ref
    }


def seg_algorithms(ds: pydicom.Dataset) -> set[tuple[str, str, str]]:
    """``(name, version, parameters)`` of every algorithm identification in a SEG's segments."""
    out = set()
    for segment in ds.get("SegmentSequence", []):
        for alg in segment.get("SegmentationAlgorithmIdentificationSequence", []):
            out.add(
                (
                    str(alg.get("AlgorithmName", "")),
                    str(alg.get("AlgorithmVersion", "")),
                    str(alg.get("AlgorithmParameters", "")),
                )
            )
    return out
