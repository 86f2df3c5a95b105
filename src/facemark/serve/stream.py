"""Live video over a WebSocket: JPEG frames in, each processed frame's faces out, latest wins.

A receiving task keeps only the newest frame that has not been processed yet; the processing
loop takes it, runs the connection's own `FaceTracker` (detect once, then follow and smooth, as
`facemark video` does) on a worker thread, and answers. A client that sends faster than the
server can follow loses frames, never memory: at most one frame waits.
"""

from __future__ import annotations

import asyncio
import json
import time

import numpy as np
from starlette.websockets import WebSocket, WebSocketDisconnect

from facemark.errors import FacemarkError
from facemark.imaging import decode_image
from facemark.inference import Landmarker
from facemark.serve.metrics import Metrics
from facemark.serve.workers import Overloaded, TimedOut, Workers
from facemark.tracking import FaceTracker


async def stream_faces(
    websocket: WebSocket, workers: Workers, metrics: Metrics, model: str, detector: str, max_pixels: int
) -> None:
    """Serve one accepted connection until the client goes."""
    try:
        tracker = await workers.run(lambda _: FaceTracker(Landmarker(model, threads=1, detector=detector)))
    except (FacemarkError, Overloaded, TimedOut) as exc:
        await websocket.send_text(json.dumps({"error": str(exc) or "the server is busy; retry later"}))
        return await websocket.close(1013)
    latest: list = [None]  # (index, jpeg bytes, arrival time) of the newest unprocessed frame
    arrived = asyncio.Event()
    state = {"received": 0, "dropped": 0, "closed": False, "notes": []}

    async def receive() -> None:
        try:
            while True:
                message = await websocket.receive()
                if message["type"] == "websocket.disconnect":
                    break
                data = message.get("bytes")
                if data is None:
                    state["notes"].append("send each frame as a binary message holding a JPEG")
                else:
                    if latest[0] is not None:
                        state["dropped"] += 1
                        metrics.count("stream_frames_dropped")
                    latest[0] = (state["received"], data, time.monotonic())
                    state["received"] += 1
                arrived.set()
        finally:
            state["closed"] = True
            arrived.set()

    def track(_: Workers, data: bytes, dt: float | None):
        frame = decode_image(np.frombuffer(data, np.uint8), gray=True, max_pixels=max_pixels)
        return frame.shape, tracker.update(frame, dt=dt)

    receiver = asyncio.create_task(receive())
    last_arrival = None
    try:
        while True:
            await arrived.wait()
            arrived.clear()
            while state["notes"]:
                await websocket.send_text(json.dumps({"error": state["notes"].pop(0)}))
            if state["closed"]:
                break
            item, latest[0] = latest[0], None
            if item is None:
                continue
            index, data, t = item
            start = time.perf_counter()
            try:
                (h, w), faces = await workers.run(track, data, None if last_arrival is None else t - last_arrival)
                last_arrival = t
                reply = {"frame": index, "width": w, "height": h, "faces": [f.to_dict() for f in faces]}
                metrics.count("stream_frames")
            except FacemarkError as exc:
                reply = {"frame": index, "error": str(exc)}
            except (Overloaded, TimedOut):
                reply = {"frame": index, "error": "the server is busy; frame skipped"}
            reply.update(dropped=state["dropped"], ms=round(1000 * (time.perf_counter() - start), 2))
            await websocket.send_text(json.dumps(reply, allow_nan=False))
    except (WebSocketDisconnect, RuntimeError):  # the client went while we answered
        pass
    finally:
        receiver.cancel()
