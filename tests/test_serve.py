"""`facemark serve`'s HTTP API through FastAPI's test client: the same results as the Python API,
JSON errors with 4xx for every bad input, bounded work, and the live stream's latest-wins rule."""

import asyncio
import threading

import cv2
import numpy as np
import pytest

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from facemark import Landmarker  # noqa: E402
from facemark.serve import ServeOptions, create_app  # noqa: E402
from facemark.serve.workers import Overloaded, TimedOut, Workers  # noqa: E402

from conftest import face_photo, png_claiming  # noqa: E402

PHOTO = face_photo([(40, 60), (380, 90)])  # two faces
JPEG = cv2.imencode(".jpg", PHOTO)[1].tobytes()


@pytest.fixture(scope="module")
def client():
    with TestClient(create_app(ServeOptions(max_upload_bytes=2 << 20, max_pixels=4_000_000))) as c:
        yield c


def test_detect_gives_the_python_apis_faces_raw_or_multipart(client):
    expected = [f.to_dict() for f in Landmarker("kaggle15").detect(cv2.imdecode(np.frombuffer(JPEG, np.uint8), 0))]
    raw = client.post("/v1/detect", content=JPEG, headers={"content-type": "image/jpeg"})
    form = client.post("/v1/detect", files={"image": ("two.jpg", JPEG, "image/jpeg")})
    assert raw.status_code == form.status_code == 200
    assert raw.json()["faces"] == form.json()["faces"] == expected and len(expected) == 2
    assert form.json()["image"] == "two.jpg" and (raw.json()["width"], raw.json()["height"]) == (560, 320)


def test_options_pick_the_model(client):
    r = client.post("/v1/detect?model=ibug68&mirror=true", content=JPEG)
    assert r.status_code == 200 and len(r.json()["faces"][0]["points"]) == 68


@pytest.mark.parametrize("overlay, fmt", [("sunglasses", "png"), ("moustache", "jpeg"), ("points", "png")])
def test_filter_returns_the_drawn_image(client, overlay, fmt):
    r = client.post(f"/v1/filter?overlay={overlay}&format={fmt}", content=JPEG)
    assert r.status_code == 200 and r.headers["content-type"] == f"image/{fmt}"
    drawn = cv2.imdecode(np.frombuffer(r.content, np.uint8), cv2.IMREAD_COLOR)
    changed = np.abs(drawn.astype(int) - PHOTO).max(axis=2) > 60
    assert drawn.shape == PHOTO.shape and 0.002 < changed.mean() < 0.2  # on the faces, not everywhere


def test_models_health_metrics_and_schema(client):
    models = {m["name"]: m for m in client.get("/v1/models").json()}
    assert models["kaggle15"]["default"] and models["ibug68"]["scheme"] == "ibug68"
    assert len(models["ibug68"]["points"]) == 68 and models["kaggle15"]["files"]["model.onnx"] > 100_000
    assert client.get("/healthz").json()["status"] == "ok"
    client.post("/v1/detect", content=b"not an image")
    text = client.get("/metrics").text
    assert 'facemark_requests_total{route="/v1/detect",status="400"}' in text
    assert 'facemark_request_seconds_count{route="/v1/detect"}' in text and "facemark_workers_busy" in text
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/v1/detect", "/v1/filter", "/v1/models", "/healthz", "/metrics"} <= set(paths)
    assert "multipart/form-data" in paths["/v1/detect"]["post"]["requestBody"]["content"]


BAD_REQUESTS = [
    ("post", "/v1/detect", {"content": b""}, 400, "empty body"),
    ("post", "/v1/detect", {"content": b"GIF89a not really"}, 400, "not a readable image"),
    ("post", "/v1/detect", {"content": JPEG[: len(JPEG) // 2]}, 400, "truncated"),
    ("post", "/v1/detect", {"content": png_claiming(3000, 3000)}, 400, "MP limit"),
    ("post", "/v1/detect", {"content": b"\0" * (3 << 20)}, 413, "limit"),
    ("post", "/v1/detect", {"content": JPEG, "headers": {"content-length": "x"}}, 400, "Content-Length"),
    ("post", "/v1/detect", {"files": {"other": ("a.txt", b"", "text/plain")}}, 400, ""),
    ("post", "/v1/detect", {"data": {"field": "value"}}, 400, "no file"),
    ("post", "/v1/detect", {"content": b"--x\r\nbroken", "headers": {"content-type": "multipart/form-data"}}, 400, ""),
    ("post", "/v1/detect?model=/etc/passwd", {"content": JPEG}, 400, "unknown model"),
    ("post", "/v1/detect?detector=haar", {"content": JPEG}, 400, "unknown detector"),
    ("post", "/v1/detect?mirror=maybe", {"content": JPEG}, 400, "mirror"),
    ("post", "/v1/filter?overlay=/etc/hosts", {"content": JPEG}, 400, "unknown overlay"),
    ("post", "/v1/filter?format=gif", {"content": JPEG}, 400, "unknown format"),
    ("get", "/v1/detect", {}, 405, ""),
    ("get", "/static/../serve/app.py", {}, 404, ""),
    ("get", "/no/such/page", {}, 404, ""),
]


@pytest.mark.parametrize("method, path, kwargs, status, needle", BAD_REQUESTS)
def test_every_bad_request_is_a_json_4xx(client, method, path, kwargs, status, needle):
    r = getattr(client, method)(path, **kwargs)
    assert r.status_code == status and needle in r.json()["error"], (r.status_code, r.text[:200])
    assert client.get("/healthz").status_code == 200  # and the server is still there


def test_cors_is_off_unless_asked_for():
    origin = {"origin": "https://example.org"}
    with TestClient(create_app()) as closed:
        assert "access-control-allow-origin" not in closed.get("/healthz", headers=origin).headers
    with TestClient(create_app(ServeOptions(cors_origins=("https://example.org",)))) as open_:
        assert open_.get("/healthz", headers=origin).headers["access-control-allow-origin"] == "https://example.org"


def test_the_server_binds_this_machine_only_by_default():
    from facemark.cli import build_parser

    assert build_parser().parse_args(["serve"]).host == "127.0.0.1"


def test_a_full_server_answers_503_and_a_slow_request_504():
    async def scenario():
        workers = Workers(1, queue=0, timeout_s=0.3)
        release = threading.Event()
        busy = asyncio.ensure_future(workers.run(lambda _: release.wait(5)))
        await asyncio.sleep(0.05)
        with pytest.raises(Overloaded):  # one running, no room to wait: refused at once
            await workers.run(lambda _: None)
        with pytest.raises(TimedOut):
            await busy
        assert workers.busy == 1  # the timed-out work still holds its thread, so its slot stays taken
        release.set()
        for _ in range(100):
            if not workers.busy:
                break
            await asyncio.sleep(0.01)
        assert await workers.run(lambda _: 42) == 42
        workers.close()

    asyncio.run(scenario())


def test_503_reaches_the_client_with_retry_after(monkeypatch):
    app = create_app(ServeOptions(workers=1, queue=0))
    monkeypatch.setattr(Workers, "run", _raise_overloaded)
    with TestClient(app) as c:
        r = c.post("/v1/detect", content=JPEG)
    assert r.status_code == 503 and r.headers["retry-after"] == "1" and "busy" in r.json()["error"]


async def _raise_overloaded(self, fn, *args):
    raise Overloaded


def test_the_stream_tracks_faces_and_the_latest_frame_wins(client):
    frame = cv2.imencode(".jpg", face_photo([(200, 80)], size=(480, 640), face=200))[1].tobytes()
    with client.websocket_connect("/v1/stream") as ws:
        ws.send_bytes(frame)
        first = ws.receive_json()
        assert first["frame"] == 0 and len(first["faces"]) == 1 and len(first["faces"][0]["points"]) == 15
        for _ in range(30):  # far faster than frames are processed
            ws.send_bytes(frame)
        replies = [ws.receive_json()]
        while replies[-1]["frame"] != 30:
            replies.append(ws.receive_json())
        assert len(replies) < 30 and replies[-1]["dropped"] == 30 - len(replies) > 0
        assert all(len(r["faces"]) == 1 for r in replies)
        ws.send_bytes(b"not a jpeg")
        assert "not a readable image" in ws.receive_json()["error"]  # an error reply, the stream goes on
        ws.send_text("hello")
        assert "binary" in ws.receive_json()["error"]
        ws.send_bytes(frame)
        assert len(ws.receive_json()["faces"]) == 1


def test_streams_beyond_the_limit_are_told_to_come_back():
    with TestClient(create_app(ServeOptions(max_streams=1))) as c:
        with c.websocket_connect("/v1/stream") as first:
            first.send_bytes(JPEG)
            first.receive_json()
            with c.websocket_connect("/v1/stream") as second:
                assert "streams are open" in second.receive_json()["error"]
        with c.websocket_connect("/v1/stream?model=nope") as bad:
            assert "unknown model" in bad.receive_json()["error"]


def test_bad_server_options_fail_before_it_starts():
    from facemark import FacemarkError

    with pytest.raises(FacemarkError, match="no such model"):
        create_app(ServeOptions(model="nope"))
    with pytest.raises(FacemarkError, match="not available"):
        create_app(ServeOptions(detector="haar"))


def test_the_listening_socket_gets_tcp_nodelay_on_every_connection():
    """Without TCP_NODELAY a keep-alive client waits 40 ms per answer for a delayed ACK."""
    import socket

    from facemark.serve.server import listening_socket

    async def scenario():
        sock = listening_socket("127.0.0.1", 0)
        seen = asyncio.get_running_loop().create_future()

        async def accepted(reader, writer):
            seen.set_result(writer.get_extra_info("socket").getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            writer.close()

        server = await asyncio.start_server(accepted, sock=sock)
        _, writer = await asyncio.open_connection(*sock.getsockname()[:2])
        assert await asyncio.wait_for(seen, 5) == 1
        writer.close()
        server.close()

    asyncio.run(scenario())


def test_a_port_in_use_is_one_error_line(capsys):
    from facemark.cli import main
    from facemark.serve.server import listening_socket

    taken = listening_socket("127.0.0.1", 0)
    taken.listen()
    rc = main(["serve", "--port", str(taken.getsockname()[1])])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "cannot listen" in err[0], err
    taken.close()


def test_a_stream_that_cannot_start_says_why(monkeypatch):
    import facemark.serve.stream as stream
    from facemark import FacemarkError

    def no_tracking(*args, **kwargs):
        raise FacemarkError("video tracking needs a model whose facemark.json has a box_regressor")

    monkeypatch.setattr(stream, "FaceTracker", no_tracking)
    with TestClient(create_app()) as c, c.websocket_connect("/v1/stream") as ws:
        assert "box_regressor" in ws.receive_json()["error"]
