"""`facemark serve` under load on localhost: HTTP and WebSocket figures beside the in-process API.

    python benchmarks/serve.py [--seconds 5] [--workers N]

One run prints:
- in-process `Landmarker.detect` on the 640x480 two-face photo, one thread (the reference);
- `POST /v1/detect` with 1, 4 and 16 clients (keep-alive connections, closed loop): requests/s,
  p50 and p99 latency;
- `/v1/stream` with 1 and 4 streams, each sending 640x480 JPEG frames of a moving face and waiting
  for each answer (as the web page does): frames/s per stream and p50 end-to-end latency;
- a burst: 200 bad requests (empty, truncated, not an image, a pixel bomb, too large, bad
  options) together with 16 good clients: status counts (no 5xx expected), then the server's
  memory at idle, at its peak and 10 s after the burst;
- overload: 128 clients at once against the default wait line: how many got 503 + Retry-After.
The server is a real `facemark serve` process on a free port; its memory is read from /proc.
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import struct
import subprocess
import sys
import threading
import time
import zlib
from collections import Counter
from pathlib import Path

import cv2
import httpx
import numpy as np
from websockets.sync.client import connect

from facemark.bundle import example_image
from facemark.inference import Landmarker


def _face_photo(positions: list[tuple[int, int]], side: int = 150) -> np.ndarray:
    face = cv2.resize(cv2.imread(str(example_image())), (side, side), interpolation=cv2.INTER_AREA)
    photo = np.full((480, 640, 3), 110, np.uint8)
    for x, y in positions:
        photo[y : y + side, x : x + side] = face
    return photo


PHOTO = _face_photo([(60, 120), (400, 160)])
JPEG = cv2.imencode(".jpg", PHOTO)[1].tobytes()


def _start_server(workers: int | None) -> tuple[subprocess.Popen, str]:
    cmd = [sys.executable, "-m", "facemark.cli", "serve", "--port", "0"]
    cmd += ["--workers", str(workers)] if workers else []
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    if "serving on" not in line:
        sys.exit(f"the server did not start: {line}{proc.stderr.read()}")
    url = line.split("serving on ")[1].split()[0]
    httpx.post(f"{url}/v1/detect", content=JPEG)  # warm: models load on first use
    return proc, url


def _memory_mb(pid: int) -> tuple[float, float]:
    """(current, peak) resident memory of a process, MB."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def _in_process_ms(repeats: int = 60) -> float:
    lm = Landmarker("kaggle15", threads=1)
    gray = cv2.cvtColor(PHOTO, cv2.COLOR_BGR2GRAY)
    lm.detect(gray)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        faces = lm.detect(gray)
        times.append(time.perf_counter() - t0)
    assert len(faces) == 2, "the benchmark photo must show two faces"
    return 1000 * statistics.median(times)


def _client(url: str) -> httpx.Client:
    """An HTTP client as browsers and curl are: TCP_NODELAY set. (Without it the body waits for
    the server's delayed ACK of the headers, 40 ms a request on Linux, whatever the server.)"""
    nodelay = [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]
    return httpx.Client(base_url=url, timeout=30, transport=httpx.HTTPTransport(socket_options=nodelay))


def _together(fn, n: int) -> None:
    """fn(0) ... fn(n - 1), each on its own thread, all at once; returns when all are done."""
    threads = [threading.Thread(target=fn, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def _clients(url: str, n: int, seconds: float, body: bytes = JPEG, path: str = "/v1/detect"):
    """n closed-loop clients for `seconds`: (latencies s, status counts)."""
    latencies: list[float] = []
    statuses: Counter = Counter()
    lock = threading.Lock()
    stop = time.perf_counter() + seconds

    def client(_: int):
        with _client(url) as c:
            while time.perf_counter() < stop:
                t0 = time.perf_counter()
                r = c.post(path, content=body)
                with lock:
                    latencies.append(time.perf_counter() - t0)
                    statuses[r.status_code] += 1

    _together(client, n)
    return latencies, statuses


def _stream_frames(n: int = 60) -> list[bytes]:
    """JPEG frames of one face sliding right and back, 640x480."""
    xs = np.concatenate([np.linspace(100, 400, n // 2), np.linspace(400, 100, n - n // 2)])
    return [cv2.imencode(".jpg", _face_photo([(int(x), 150)], 160))[1].tobytes() for x in xs]


def _streams(url: str, n: int, seconds: float) -> tuple[list[float], list[float], float]:
    """n WebSocket streams for `seconds`, each waiting for every answer: (frames/s per stream,
    end-to-end latencies in s, share of answers with the face)."""
    frames = _stream_frames()
    rates, latencies, with_face, lock = [], [], [], threading.Lock()
    ws_url = url.replace("http://", "ws://") + "/v1/stream"

    def stream(_: int):
        done, mine = 0, []
        with connect(ws_url, max_size=None) as ws:
            stop = time.perf_counter() + seconds
            start = time.perf_counter()
            while time.perf_counter() < stop:
                t0 = time.perf_counter()
                ws.send(frames[done % len(frames)])
                found = len(json.loads(ws.recv()).get("faces", ())) == 1
                mine.append(time.perf_counter() - t0)
                with lock:
                    with_face.append(found)
                done += 1
            elapsed = time.perf_counter() - start
        with lock:
            rates.append(done / elapsed)
            latencies.extend(mine)

    _together(stream, n)
    return rates, latencies, sum(with_face) / max(1, len(with_face))


def _png_claiming(width: int, height: int) -> bytes:
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


BAD = [
    ("/v1/detect", b""),
    ("/v1/detect", JPEG[: len(JPEG) // 2]),
    ("/v1/detect", b"<html>not an image</html>"),
    ("/v1/detect", _png_claiming(60_000, 60_000)),
    ("/v1/detect", b"\0" * (21 << 20)),
    ("/v1/detect?model=/etc/passwd", JPEG),
    ("/v1/detect?mirror=maybe", JPEG),
    ("/v1/filter?overlay=../../x", JPEG),
]


def _burst(url: str, pid: int) -> None:
    idle, _ = _memory_mb(pid)
    statuses: Counter = Counter()
    lock = threading.Lock()

    def bad(i: int):
        path, body = BAD[i % len(BAD)]
        try:
            with _client(url) as c:
                code = c.post(path, content=body).status_code
        except httpx.HTTPError as exc:  # the server may close a too-large upload early
            code = type(exc).__name__
        with lock:
            statuses[code] += 1

    good = threading.Thread(target=lambda: statuses.update(_clients(url, 16, 3.0)[1]))
    good.start()
    _together(bad, 200)
    good.join()
    _, peak = _memory_mb(pid)
    time.sleep(10)
    after, _ = _memory_mb(pid)
    fives = sum(n for code, n in statuses.items() if isinstance(code, int) and code >= 500)
    alive = httpx.get(url + "/healthz").status_code == 200
    print(f"burst: 200 bad requests + 16 clients: {dict(sorted(statuses.items(), key=str))}; 5xx: {fives}")
    print(f"       server memory idle {idle:.0f} MB, peak {peak:.0f} MB, 10 s later {after:.0f} MB; alive: {alive}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=5.0, help="per load step")
    ap.add_argument("--workers", type=int, default=None, help="server inference threads (default: all cores)")
    a = ap.parse_args()
    ref = _in_process_ms()
    print(f"in-process Landmarker.detect, 640x480, 2 faces, one thread: {ref:.1f} ms (median)")
    proc, url = _start_server(a.workers)
    try:
        print(f"\n{'POST /v1/detect':<18} {'req/s':>7} {'p50 ms':>8} {'p99 ms':>8} {'p50 / in-process':>17}")
        rates = {}
        for n in (1, 4, 16):
            lat, statuses = _clients(url, n, a.seconds)
            rates[n] = len(lat) / a.seconds
            p50, p99 = 1000 * np.percentile(lat, 50), 1000 * np.percentile(lat, 99)
            print(f"{n:>3} client{'s' * (n > 1):<11} {rates[n]:>7.1f} {p50:>8.1f} {p99:>8.1f} {p50 / ref:>16.2f}x")
            assert set(statuses) == {200}, statuses
        print(f"throughput 4 clients / 1 client: {rates[4] / rates[1]:.2f}x")
        print(f"\n{'/v1/stream':<18} {'frames/s each':>14} {'p50 ms':>8} {'face found':>11}")
        for n in (1, 4):
            per, lat, found = _streams(url, n, a.seconds)
            p50 = 1000 * np.percentile(lat, 50)
            print(f"{n:>3} stream{'s' * (n > 1):<11} {min(per):>14.1f} {p50:>8.1f} {100 * found:>10.1f}%")
        print()
        _burst(url, proc.pid)
        lat, statuses = _clients(url, 128, 3.0)
        print(f"overload: 128 clients for 3 s: {dict(statuses)}; p99 {1000 * np.percentile(lat, 99):.0f} ms")
        health, peak = httpx.get(url + "/healthz").status_code, _memory_mb(proc.pid)[1]
        print(f"          then /healthz {health}; peak memory {peak:.0f} MB")
    finally:
        proc.terminate()
        proc.wait(timeout=20)


if __name__ == "__main__":
    main()
