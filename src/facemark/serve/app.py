"""The HTTP API and the web page: `create_app(ServeOptions())` is an ASGI app (FastAPI).

Every answer to a bad request is JSON `{"error": "..."}` with a 4xx status; a full server says
503 with Retry-After rather than queueing without bound. Clients name shipped models and
detectors only, never a file path.
"""

from __future__ import annotations

import contextlib
import json
import time
from importlib import resources
from typing import Any

import numpy as np
from fastapi import FastAPI, Query, Request, WebSocket
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException

from facemark.bundle import ModelConfig, resolve_model, shipped_models
from facemark.detection import available_detectors
from facemark.errors import FacemarkError
from facemark.imaging import cv2, decode_image
from facemark.serve.metrics import Metrics
from facemark.serve.options import ServeOptions
from facemark.serve.stream import stream_faces
from facemark.serve.workers import Overloaded, TimedOut, Workers

API_ROUTES = ("/v1/detect", "/v1/filter", "/v1/models", "/v1/stream", "/healthz", "/metrics", "/")
OVERLAYS = ("sunglasses", "moustache", "points")


class Point(BaseModel):
    name: str
    x: float
    y: float


class Face(BaseModel):
    box: list[float]
    score: float
    points: list[Point]


class DetectResult(BaseModel):
    """The entry `facemark detect --json` gives for one image, plus its size."""

    image: str | None
    width: int
    height: int
    faces: list[Face]


class ModelInfo(BaseModel):
    name: str
    scheme: str
    points: list[str]
    input_size: int
    files: dict[str, int]  # file name -> bytes
    default: bool


class Error(BaseModel):
    error: str


class _TooLarge(Exception):
    pass


class _BadRequest(Exception):
    pass


_IMAGE_BODY = {
    "requestBody": {
        "required": True,
        "description": "the image: raw bytes (image/jpeg, image/png, ...) or a multipart form with a file field",
        "content": {
            "image/*": {"schema": {"type": "string", "format": "binary"}},
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
            "multipart/form-data": {
                "schema": {"type": "object", "properties": {"image": {"type": "string", "format": "binary"}}}
            },
        },
    }
}
_ERRORS = {code: {"model": Error} for code in (400, 404, 413, 503, 504)}


class _LimitBody:
    """ASGI middleware: refuse a body over `limit` bytes from its Content-Length before reading
    it, and stop reading one that grows past it (chunked uploads)."""

    def __init__(self, app, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            bad = not declared.isdigit()
            message = "Content-Length is not a number" if bad else f"the upload is over the {self.limit >> 20} MB limit"
            return await JSONResponse({"error": message}, 400 if bad else 413)(scope, receive, send)
        seen = 0

        async def limited():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise _TooLarge
            return message

        return await self.app(scope, limited, send)


class _TimeRequests:
    """ASGI middleware: count every answer by route and status, with its latency."""

    def __init__(self, app, metrics: Metrics):
        self.app, self.metrics = app, metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        route = scope["path"] if scope["path"] in API_ROUTES else "other"
        start, status = time.perf_counter(), [500]

        async def send_status(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            self.metrics.observe(route, status[0], time.perf_counter() - start)


async def _image_bytes(request: Request) -> tuple[bytes, str | None]:
    """The uploaded image's bytes and name: a multipart form's file field, or the raw body."""
    kind = request.headers.get("content-type", "")
    if kind.startswith("application/x-www-form-urlencoded"):
        raise _BadRequest("a url-encoded form holds no file: send the image raw, or as the multipart field 'image'")
    if kind.startswith("multipart/form-data"):
        try:
            form = await request.form(max_files=1, max_fields=8)
        except _TooLarge:
            raise
        except Exception as exc:  # Starlette raises several types for malformed forms
            raise _BadRequest(f"malformed multipart body ({exc})") from None
        upload = form.get("image")
        upload = (
            upload
            if isinstance(upload, UploadFile)
            else next((v for v in form.values() if isinstance(v, UploadFile)), None)
        )
        if upload is None:
            raise _BadRequest("the multipart body has no file: send the image as the field 'image'")
        data, name = await upload.read(), upload.filename
    else:
        data, name = await request.body(), None
    if not data:
        raise _BadRequest("empty body: send an image (raw bytes, or a multipart field 'image')")
    return data, name


def _model_info(name: str, default: str) -> dict[str, Any]:
    folder = resolve_model(name)
    config = ModelConfig.load(folder)
    files = {p.name: p.stat().st_size for p in sorted(folder.iterdir()) if p.suffix in (".onnx", ".keras", ".json")}
    return {
        "name": name,
        "scheme": config.scheme,
        "points": list(config.scheme_obj.point_names),
        "input_size": config.crop.size,
        "files": files,
        "default": name == default,
    }


def create_app(options: ServeOptions | None = None) -> FastAPI:
    """The facemark server: API under /v1, the live-filter page at /, metrics at /metrics."""
    from facemark import __version__

    options = options or ServeOptions()
    resolve_model(options.model)  # a bad default model fails here, before the server starts
    detectors = available_detectors()
    if options.detector not in detectors:
        raise FacemarkError(f"detector {options.detector!r} is not available here; available: {', '.join(detectors)}")
    models = shipped_models()
    workers = Workers(options.workers, options.queue, options.timeout_s)
    metrics = Metrics()
    streams = {"open": 0}

    @contextlib.asynccontextmanager
    async def lifespan(_app):
        yield
        workers.close()

    app = FastAPI(
        lifespan=lifespan,
        title="facemark",
        version=__version__,
        description="Facial landmarks over HTTP: the same results as facemark's Python API and CLI.",
        docs_url=None,  # the interactive docs load from a CDN; the schema itself is served
        redoc_url=None,
        openapi_url="/openapi.json",
    )

    def error(status: int, message: str, headers: dict | None = None) -> JSONResponse:
        return JSONResponse({"error": message}, status, headers=headers)

    @app.exception_handler(HTTPException)
    async def http_error(request, exc: HTTPException):
        return error(exc.status_code, str(exc.detail), getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def bad_options(request, exc: RequestValidationError):
        parts = [f"{'.'.join(str(v) for v in e['loc'][1:])}: {e['msg']}" for e in exc.errors()]
        return error(400, "; ".join(parts) or "bad request")

    @app.exception_handler(_BadRequest)
    async def bad_request(request, exc: _BadRequest):
        return error(400, str(exc))

    @app.exception_handler(FacemarkError)
    async def bad_image(request, exc: FacemarkError):
        return error(400, str(exc))

    @app.exception_handler(_TooLarge)
    async def too_large(request, exc: _TooLarge):
        return error(413, f"the upload is over the {options.max_upload_bytes >> 20} MB limit")

    @app.exception_handler(Overloaded)
    async def overloaded(request, exc: Overloaded):
        return error(503, "the server is busy; retry in a moment", {"Retry-After": "1"})

    @app.exception_handler(TimedOut)
    async def timed_out(request, exc: TimedOut):
        return error(504, f"the request took longer than the {options.timeout_s:g} s limit")

    @app.exception_handler(Exception)
    async def internal(request, exc: Exception):  # a bug, never a client's doing: say so, stay up
        return error(500, f"internal error ({type(exc).__name__})")

    def choose(model: str | None, detector: str | None) -> tuple[str, str]:
        model, detector = model or options.model, detector or options.detector
        if model not in models and model != options.model:
            raise _BadRequest(f"unknown model {model!r}; shipped: {', '.join(models)}")
        if detector not in detectors:
            raise _BadRequest(f"unknown detector {detector!r}; available: {', '.join(detectors)}")
        return model, detector

    def detect_job(w: Workers, data: bytes, model: str, detector: str, mirror: bool, colour: bool):
        image = decode_image(np.frombuffer(data, np.uint8), gray=not colour, max_pixels=options.max_pixels)
        landmarker = w.landmarker(model, detector, mirror)
        return image, landmarker.detect_working([landmarker.working_copy(image)])[0]

    @app.post("/v1/detect", response_model=DetectResult, responses=_ERRORS, openapi_extra=_IMAGE_BODY)
    async def detect(
        request: Request,
        model: str | None = Query(None, description="a shipped model (GET /v1/models)"),
        detector: str | None = Query(None, description="facemark, opencv, dlib or mediapipe (those installed)"),
        mirror: bool = Query(False, description="average each face with its mirror image"),
    ):
        """Every face in the image: boxes and landmarks in its pixels, left to right."""
        model, detector = choose(model, detector)
        data, name = await _image_bytes(request)
        image, faces = await workers.run(detect_job, data, model, detector, mirror, False)
        h, w = image.shape[:2]
        return {"image": name, "width": w, "height": h, "faces": [f.to_dict() for f in faces]}

    def filter_job(w: Workers, data: bytes, model: str, detector: str, overlay: str, fmt: str) -> bytes:
        from facemark.imaging import draw_faces
        from facemark.overlay import apply_overlay, load_overlay

        image, faces = detect_job(w, data, model, detector, False, True)
        out = draw_faces(image, faces) if overlay == "points" else apply_overlay(image, faces, load_overlay(overlay))
        ok, buf = cv2.imencode(".png" if fmt == "png" else ".jpg", out)
        return buf.tobytes()

    @app.post(
        "/v1/filter",
        responses={**_ERRORS, 200: {"content": {"image/png": {}, "image/jpeg": {}}}},
        response_class=Response,
        openapi_extra=_IMAGE_BODY,
    )
    async def filter_(
        request: Request,
        overlay: str = Query("sunglasses", description="sunglasses, moustache or points"),
        format: str = Query("png", description="png or jpeg"),
        model: str | None = Query(None),
        detector: str | None = Query(None),
    ):
        """The image with the overlay on every face."""
        if overlay not in OVERLAYS:
            raise _BadRequest(f"unknown overlay {overlay!r}; known: {', '.join(OVERLAYS)}")
        if format not in ("png", "jpeg"):
            raise _BadRequest(f"unknown format {format!r}; known: png, jpeg")
        model, detector = choose(model, detector)
        data, _ = await _image_bytes(request)
        encoded = await workers.run(filter_job, data, model, detector, overlay, format)
        return Response(encoded, media_type=f"image/{format}")

    @app.get("/v1/models", response_model=list[ModelInfo])
    async def list_models():
        """The shipped models: scheme, point names, input size, file sizes."""
        return [_model_info(m, options.model) for m in models]

    @app.get("/healthz")
    async def healthz():
        return {"status": "ok", "workers": workers.n, "busy": workers.busy, "streams": streams["open"]}

    @app.get("/metrics", response_class=PlainTextResponse)
    async def prometheus():
        gauges = {"workers_busy": workers.busy, "requests_waiting": workers.waiting, "streams_open": streams["open"]}
        return PlainTextResponse(metrics.text(gauges), media_type="text/plain; version=0.0.4")

    @app.websocket("/v1/stream")
    async def stream(websocket: WebSocket, model: str | None = None, detector: str | None = None):
        """Live video: send JPEG frames (binary messages), get each processed frame's faces back
        as JSON, tracked and smoothed as `facemark video` does. Frames that arrive while one is
        being processed are dropped: the latest wins."""
        await websocket.accept()
        try:
            model, detector = choose(model, detector)
        except _BadRequest as exc:
            await websocket.send_text(json.dumps({"error": str(exc)}))
            return await websocket.close(1008)
        if streams["open"] >= options.max_streams:
            await websocket.send_text(json.dumps({"error": f"{options.max_streams} streams are open; retry later"}))
            return await websocket.close(1013)
        streams["open"] += 1
        try:
            await stream_faces(websocket, workers, metrics, model, detector, options.max_pixels)
        finally:
            streams["open"] -= 1

    static = resources.files("facemark") / "serve" / "static"

    @app.get("/", include_in_schema=False)
    async def page():
        return FileResponse(str(static / "index.html"), media_type="text/html")

    app.mount("/static", StaticFiles(directory=str(static)), name="static")
    app.state.options, app.state.workers, app.state.metrics = options, workers, metrics

    # Added last = outermost: timing sees every answer, the CORS layer's included.
    app.add_middleware(_LimitBody, limit=options.max_upload_bytes)
    if options.cors_origins:
        from starlette.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=list(options.cors_origins), allow_methods=["GET", "POST"])
    app.add_middleware(_TimeRequests, metrics=metrics)
    return app
