"""An `address=` of a Ray cluster checked before any work: where nothing listens, `ray.init` would wait for minutes."""

from __future__ import annotations

import socket

from ..errors import OptimError


def check_address(address: str) -> None:
    """A host:port (or ray://host:port) where nothing listens is a one-line error within seconds, not a hang."""
    if address in ("auto", "local"):
        return  # Ray finds (or fails to find) the local cluster itself, quickly
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise OptimError(f"address={address} is not understood; use auto, HOST:PORT (the head's GCS port, "
                         "usually 6379) or ray://HOST:10001")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=3).close()
    except OSError as e:
        why = e.strerror or type(e).__name__ if not isinstance(e, TimeoutError) else "no answer in 3 s"
        raise OptimError(f"address={address}: nothing answers at {host}:{port} ({why}); start the cluster with "
                         "`ray start --head` there, or fix address=") from None
