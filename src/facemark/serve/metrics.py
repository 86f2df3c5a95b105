"""Request counts and latencies in Prometheus' text format (no client library needed for a few
counters): `GET /metrics`."""

from __future__ import annotations

import threading
from collections import defaultdict

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)  # seconds


class Metrics:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: dict[tuple[str, int], int] = defaultdict(int)
        self.latency: dict[str, list[float]] = {}  # route -> bucket counts..., sum, count
        self.counters: dict[str, int] = defaultdict(int)

    def observe(self, route: str, status: int, seconds: float) -> None:
        with self._lock:
            self.requests[(route, status)] += 1
            row = self.latency.setdefault(route, [0.0] * (len(BUCKETS) + 2))
            for i, edge in enumerate(BUCKETS):
                if seconds <= edge:
                    row[i] += 1
            row[-2] += seconds
            row[-1] += 1

    def count(self, name: str, by: int = 1) -> None:
        with self._lock:
            self.counters[name] += by

    def text(self, gauges: dict[str, float]) -> str:
        """The Prometheus exposition text; `gauges` are read at the time of the scrape."""
        out = ["# TYPE facemark_requests_total counter"]
        with self._lock:
            for (route, status), n in sorted(self.requests.items()):
                out.append(f'facemark_requests_total{{route="{route}",status="{status}"}} {n}')
            out.append("# TYPE facemark_request_seconds histogram")
            for route, row in sorted(self.latency.items()):
                for edge, n in zip(BUCKETS, row):
                    out.append(f'facemark_request_seconds_bucket{{route="{route}",le="{edge}"}} {n:.0f}')
                out.append(f'facemark_request_seconds_bucket{{route="{route}",le="+Inf"}} {row[-1]:.0f}')
                out.append(f'facemark_request_seconds_sum{{route="{route}"}} {row[-2]:.6f}')
                out.append(f'facemark_request_seconds_count{{route="{route}"}} {row[-1]:.0f}')
            for name, n in sorted(self.counters.items()):
                out += [f"# TYPE facemark_{name}_total counter", f"facemark_{name}_total {n}"]
        for name, value in sorted(gauges.items()):
            out += [f"# TYPE facemark_{name} gauge", f"facemark_{name} {value:g}"]
        return "\n".join(out) + "\n"
