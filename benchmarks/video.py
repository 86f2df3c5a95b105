"""Video figures: jitter on a still face, lag on a moving one, tracking speed; ours and MediaPipe.

    python benchmarks/video.py [--model kaggle15] [--mediapipe-python PATH] [--frames 150]

The face is the shipped real photo pasted into 640x480 frames. Still: the same frame repeated
with fresh sensor noise each frame; jitter is the per-point standard deviation over frames, as %
of the inter-ocular distance. Moving: the face slides at constant speed (default 8 px/frame,
walking pace across a 640 px frame); lag is how many frames the points trail the true motion.
Tracking speed is frames per second on one thread with decoding excluded (frames in memory).
MediaPipe face mesh runs in video mode (its own tracking and smoothing) in its own venv.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from facemark.bundle import example_image
from facemark.inference import Landmarker
from facemark.schemes import KAGGLE15, convert_points
from facemark.tracking import FaceTracker, SmoothingConfig

PEERS = Path(__file__).resolve().parent / "peers.py"
FACE = 160  # px, the face photo's side in the frame
REST = 20  # frames the moving face first stands still: its resting points are the reference


def make_frames(n: int, speed: float, noise: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Frames (n, 480, 640, 3) and each frame's face offset (n, 2): at rest, then sliding right
    at `speed` px per frame until the frame's edge."""
    rng = np.random.default_rng(seed)
    face = cv2.resize(cv2.imread(str(example_image())), (FACE, FACE), interpolation=cv2.INTER_AREA)
    frames, offsets = [], []
    if speed:
        n = min(n, REST + int((640 - FACE - 20) / speed))
    for i in range(n):
        x = 10 + speed * max(0, i - REST)
        frame = np.full((480, 640, 3), 110, np.float32)
        m = np.array([[1.0, 0.0, x], [0.0, 1.0, 140.0]])
        warped = cv2.warpAffine(face, m, (640, 480), flags=cv2.INTER_LINEAR, borderValue=(0, 0, 0))
        mask = cv2.warpAffine(np.ones((FACE, FACE), np.float32), m, (640, 480))[..., None]
        frame = frame * (1 - mask) + warped * mask + rng.normal(0, noise, frame.shape)
        frames.append(np.clip(frame, 0, 255).astype(np.uint8))
        offsets.append([x, 140.0])
    return np.stack(frames), np.array(offsets)


def ours(landmarker: Landmarker, frames: np.ndarray, smoothing: SmoothingConfig | None) -> tuple[np.ndarray, float]:
    """kaggle15 points per frame (NaN when no face) and frames per second."""
    tracker = FaceTracker(landmarker, fps=30, smoothing=smoothing)
    out = np.full((len(frames), 15, 2), np.nan)
    t = time.perf_counter()
    for i, frame in enumerate(frames):
        faces = tracker.update(frame)
        if faces:
            out[i], _ = convert_points(faces[0].points, np.ones(len(faces[0].points), bool), faces[0].scheme, KAGGLE15)
    return out, len(frames) / (time.perf_counter() - t)


def mediapipe(python: str, frames: np.ndarray) -> tuple[np.ndarray, float]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "frames.npy"
        np.save(path, frames)
        run = subprocess.run([python, str(PEERS), "video", str(path)], capture_output=True, text=True, check=True)
    result = json.loads(run.stdout)
    pts = np.array([p if p is not None else np.full((15, 2), np.nan) for p in result["points"]], dtype=np.float64)
    return pts, result["fps"]


def jitter(points: np.ndarray, settle: int) -> float:
    """Mean per-point standard deviation over frames, % of the inter-ocular distance."""
    p = points[settle:]
    iod = np.linalg.norm(np.nanmean(p[:, 3] - p[:, 5], axis=0))
    return float(np.nanmean(np.nanstd(p, axis=0)) / iod * 100)


def lag(points: np.ndarray, offsets: np.ndarray, speed: float, settle: int = 10) -> float:
    """Frames the points trail the face once it moves steadily, against where they sat at rest."""
    rel = points[:, :, 0] - offsets[:, None, 0]  # x in the face's own frame: constant if no lag
    base = np.nanmedian(rel[settle:REST], axis=0)
    return float(np.nanmean(base - rel[REST + settle :]) / speed)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="kaggle15")
    ap.add_argument("--mediapipe-python", default=None, help="python of a venv with mediapipe==0.10.21")
    ap.add_argument("--frames", type=int, default=150)
    ap.add_argument("--speed", type=float, default=8.0, help="px per frame of the moving face")
    ap.add_argument("--noise", type=float, default=4.0, help="sensor noise, grey levels (sd)")
    a = ap.parse_args()
    cv2.setNumThreads(1)
    landmarker = Landmarker(a.model, threads=1)
    still, _ = make_frames(a.frames, 0.0, a.noise)
    moving, offsets = make_frames(a.frames, a.speed, a.noise, seed=1)
    settle = 15
    rows = []
    for name, smoothing in [("facemark, raw", None), ("facemark, One Euro", SmoothingConfig())]:
        s_pts, _ = ours(landmarker, still, smoothing)
        m_pts, fps = ours(landmarker, moving, smoothing)
        rows.append((name, jitter(s_pts, settle), lag(m_pts, offsets, a.speed), fps, np.isnan(m_pts[:, 0, 0]).sum()))
    if a.mediapipe_python:
        s_pts, _ = mediapipe(a.mediapipe_python, still)
        m_pts, fps = mediapipe(a.mediapipe_python, moving)
        rows.append(("MediaPipe face mesh", jitter(s_pts, settle), lag(m_pts, offsets, a.speed), fps,
                     np.isnan(m_pts[:, 0, 0]).sum()))  # fmt: skip
    print(f"640x480 frames, face {FACE} px, noise sd {a.noise}: {a.frames} still; {len(moving)} moving "
          f"({REST} at rest, then {a.speed} px/frame)")  # fmt: skip
    print(f"{'':24} {'jitter %IOD':>12} {'lag frames':>11} {'fps (1 thread)':>15} {'frames w/o face':>16}")
    for name, j, lg, fps, miss in rows:
        print(f"{name:24} {j:12.3f} {lg:11.2f} {fps:15.0f} {miss:16d}")


if __name__ == "__main__":
    main()
