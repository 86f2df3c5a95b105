"""Running the app: a listening socket of our own (so a bad address is one error line and port 0
picks a free port), then uvicorn on it."""

from __future__ import annotations

import socket
from collections.abc import Callable

from facemark.errors import FacemarkError
from facemark.serve.app import create_app
from facemark.serve.options import ServeOptions


def listening_socket(host: str, port: int) -> socket.socket:
    """A bound TCP socket for the server, or one error line (a port in use, a foreign address)."""
    # proto named: asyncio sets TCP_NODELAY only on sockets whose proto is IPPROTO_TCP, and without
    # it a keep-alive client's next answer waits 40 ms for the delayed ACK of the last one.
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise FacemarkError(f"cannot listen on {host}:{port} ({exc.strerror or exc})") from None
    return sock


def serve(options: ServeOptions, host: str = "127.0.0.1", port: int = 8000, ready: Callable[[str], None] | None = None):
    """Serve until interrupted; `ready(url)` is called once the socket listens."""
    import uvicorn

    app = create_app(options)
    sock = listening_socket(host, port)
    bound_host, bound_port = sock.getsockname()[:2]
    config = uvicorn.Config(
        app, log_level="warning", ws_max_size=options.max_upload_bytes, access_log=False, lifespan="on"
    )
    if ready:
        ready(f"http://{bound_host}:{bound_port}")
    uvicorn.Server(config).run(sockets=[sock])
