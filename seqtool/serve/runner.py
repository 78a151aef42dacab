"""Running the application on uvicorn: the socket is bound first (port 0 picks a
free one), so the address printed is the one that answers; then uvicorn serves
until Ctrl-C or SIGTERM."""

from __future__ import annotations

import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from seqtool.errors import ConfigError

LOOPBACK = ("127.0.0.1", "localhost", "::1")


@dataclass
class Bound:
    sock: socket.socket
    host: str
    port: int

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"


def bind(host: str, port: int) -> Bound:
    """A listening socket on host:port; a port in use or a bad host is a ConfigError."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{port} ({exc.strerror or exc})",
                          "pick another --port (0 = any free one) or --host") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return Bound(sock, host, sock.getsockname()[1])


def run(app: Any, bound: Bound, on_ready: Callable[[], None] | None = None) -> None:
    """Serve `app` on the bound socket until stopped (uvicorn handles the signals and
    re-raises Ctrl-C once the connections are closed)."""
    import uvicorn

    # proxy_headers off: no X-Forwarded-For rewriting (nothing here reads the client's
    # address, and it spares every request uvicorn's proxy-headers middleware)
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off",
                            timeout_graceful_shutdown=5, proxy_headers=False)
    server = uvicorn.Server(config)
    if on_ready is not None:
        on_ready()
    server.run(sockets=[bound.sock])
