"""Loaded by ``run_cli(..., offline=True)`` subprocesses: any connection beyond loopback raises at once.

This makes "works with no network" a test that fails when code reaches out (a hidden download, a hub check,
a font fetch), instead of one that passes because the network happened to be down.
"""

import socket

_LOCAL = ("127.", "::1", "localhost", "0.0.0.0")
_real_connect = socket.socket.connect
_real_getaddrinfo = socket.getaddrinfo


class NetworkBlockedError(OSError):
    """Raised instead of opening a connection beyond loopback."""


def _is_local(host: object) -> bool:
    return isinstance(host, str) and host.startswith(_LOCAL)


def _connect(self, address):  # type: ignore[no-untyped-def]
    host = address[0] if isinstance(address, tuple) else address
    if self.family in (socket.AF_INET, socket.AF_INET6) and not _is_local(host):
        raise NetworkBlockedError(f"network access blocked in an offline test: {address!r}")
    return _real_connect(self, address)


def _getaddrinfo(host, *args, **kwargs):  # type: ignore[no-untyped-def]
    if host is not None and not _is_local(host):
        raise socket.gaierror(f"name resolution blocked in an offline test: {host!r}")
    return _real_getaddrinfo(host, *args, **kwargs)


socket.socket.connect = _connect  # type: ignore[method-assign]
socket.getaddrinfo = _getaddrinfo  # type: ignore[assignment]
