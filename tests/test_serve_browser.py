"""The live face-filter page end to end: the real `facemark serve` on a free port, headless
Chromium (Debian's package, driven by Playwright) with a fake camera that plays a video made
from a real face photo. The page must report landmarks on the face and draw the overlay there.
A screenshot is written to build/e2e/serve-page.png for a person to look at.

CI installs chromium (.ci/run); elsewhere the test skips when it is missing, never in CI.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import face_photo

pytest.importorskip("fastapi")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SCREENSHOT = Path(__file__).resolve().parents[1] / "build" / "e2e" / "serve-page.png"
if not CHROMIUM or not __import__("importlib").util.find_spec("playwright"):
    if os.environ.get("CI"):
        raise RuntimeError("CI must run the browser test: install Debian's chromium and playwright (.ci/run)")
    pytest.skip("needs Debian's chromium and the playwright package", allow_module_level=True)

FACE_AT, FACE_SIDE = (220, 110), 220  # where the face sits in the fake camera's 640x480 frames


def _write_y4m(path: Path, frame_bgr: np.ndarray, frames: int = 30) -> None:
    """A raw YUV 4:2:0 video Chromium's fake camera plays (and loops)."""
    h, w = frame_bgr.shape[:2]
    planes = cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2YUV_I420).tobytes()  # Y, then U, then V
    with open(path, "wb") as f:
        f.write(f"YUV4MPEG2 W{w} H{h} F30:1 Ip A1:1 C420jpeg\n".encode())
        for _ in range(frames):
            f.write(b"FRAME\n" + planes)


@pytest.fixture(scope="module")
def server():
    """`facemark serve --port 0` as a user starts it; the port comes from its first line."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "facemark.cli", "serve", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    line = proc.stdout.readline()
    if "serving on" not in line:
        proc.kill()
        pytest.fail(f"the server did not start: {line}{proc.stderr.read()}")
    yield line.split("serving on ")[1].split()[0]
    proc.terminate()
    proc.wait(timeout=20)


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    from playwright.sync_api import sync_playwright

    video = tmp_path_factory.mktemp("camera") / "face.y4m"
    _write_y4m(video, face_photo([FACE_AT], size=(480, 640), face=FACE_SIDE))
    args = [
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-video-capture={video}",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
    ]
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=args)
        yield b
        b.close()


def test_the_live_page_puts_landmarks_and_the_overlay_on_the_camera_face(server, browser):
    page = browser.new_page(viewport={"width": 1000, "height": 1400})
    page.goto(server)
    page.get_by_role("button", name="Start camera").click()
    page.wait_for_function("window.facemark.frames >= 5", timeout=60_000)
    reply = page.evaluate("window.facemark.lastReply")
    assert len(reply["faces"]) == 1, reply
    points = {p["name"]: (p["x"], p["y"]) for p in reply["faces"][0]["points"]}
    x0, y0 = FACE_AT
    for name in ("left_eye_center", "right_eye_center", "nose_tip", "mouth_center_bottom_lip"):
        x, y = points[name]
        assert x0 < x < x0 + FACE_SIDE and y0 < y < y0 + FACE_SIDE, (name, x, y)
    assert page.locator("#faces").inner_text() == "1"
    assert float(page.locator("#fps").inner_text()) > 0 and page.locator("#latency").inner_text().endswith("ms")
    # The sunglasses are drawn where the eyes are: the canvas is near-black there.
    x, y = points["left_eye_center"]
    pixel = page.evaluate(
        f"Array.from(document.getElementById('view').getContext('2d').getImageData({x}, {y}, 1, 1).data)"
    )
    assert max(pixel[:3]) < 60, pixel
    assert page.evaluate("window.facemark.overlaysDrawn") > 0
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOT))
    assert SCREENSHOT.stat().st_size > 10_000
    page.get_by_role("button", name="Stop camera").click()
    assert "Camera off" in page.get_by_role("status").first.inner_text()


def test_the_photo_path_shows_the_drawn_result_and_the_json(server, browser, tmp_path):
    photo = tmp_path / "two.jpg"
    cv2.imwrite(str(photo), face_photo([(40, 60), (380, 90)]))
    page = browser.new_page()
    page.goto(server)
    page.get_by_label("Choose a photo").set_input_files(str(photo))
    page.wait_for_function("document.getElementById('photo-status').textContent.includes('faces in')", timeout=30_000)
    assert page.locator("#photo-status").inner_text() == "2 faces in two.jpg."
    assert page.locator("#result").is_visible()
    assert '"faces"' in page.locator("#json").text_content()
