"""What a server is allowed to do: one typed options object, shared by the CLI and `create_app`."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from facemark.defaults import DEFAULT_DETECTOR, DEFAULT_MODEL


@dataclass(frozen=True)
class ServeOptions:
    """Limits and defaults of `facemark serve`. Every limit has a test; none is unbounded.

    `workers` inference threads (one ONNX Runtime session and detector each) run at once; at most
    `queue` more requests wait for one, and the rest are answered 503 with Retry-After at once.
    """

    model: str = DEFAULT_MODEL
    detector: str = DEFAULT_DETECTOR
    workers: int = field(default_factory=lambda: os.cpu_count() or 1)
    queue: int = 64  # requests waiting for a worker beyond those running
    max_upload_bytes: int = 20 << 20
    max_pixels: int = 50_000_000  # a decoded image's limit (a 50-MP RGB photo is 150 MB)
    timeout_s: float = 10.0  # a request's whole time in the server, waiting included
    max_streams: int = 8  # live WebSocket streams at once
    cors_origins: tuple[str, ...] = ()  # none: browsers' same-origin policy holds
