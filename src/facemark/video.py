"""Video in, landmarks out: files or a camera, frame by frame through a `FaceTracker`.

Output files are written under a temporary name and renamed at the end, so a failed or
interrupted run leaves no half-written video or JSON behind.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facemark.errors import FacemarkError
from facemark.imaging import cv2, write_bytes_atomic
from facemark.inference import FaceLandmarks

FOURCC = {".mp4": "mp4v", ".avi": "MJPG", ".mkv": "mp4v", ".mov": "mp4v"}


@dataclass
class VideoInfo:
    fps: float
    width: int
    height: int
    frames: int  # as the container reports it; 0 when unknown (cameras)


def open_video(source: str | Path | int) -> tuple[cv2.VideoCapture, VideoInfo]:
    """A capture for a file (or a camera index) that has at least one readable frame."""
    if isinstance(source, int):
        cap = cv2.VideoCapture(source)
        if not cap.isOpened():
            raise FacemarkError(f"camera {source} does not open")
    else:
        path = Path(source)
        if not path.is_file():
            raise FacemarkError(f"{path}: no such video file")
        if path.stat().st_size == 0:
            raise FacemarkError(f"{path}: empty file, not a video")
        cap = cv2.VideoCapture(str(path))
        if not cap.isOpened():
            raise FacemarkError(f"{path}: not a readable video (corrupt or unsupported format)")
    fps = cap.get(cv2.CAP_PROP_FPS)
    info = VideoInfo(
        fps if 0 < fps < 1000 else 30.0,
        int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)),
        int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)),
        max(0, int(cap.get(cv2.CAP_PROP_FRAME_COUNT))),
    )
    return cap, info


def frames(cap: cv2.VideoCapture, name: str) -> Iterator[np.ndarray]:
    """BGR frames until the end; a video with no decodable frame is an error, not empty output."""
    count = 0
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        count += 1
        yield frame
    if count == 0:
        raise FacemarkError(f"{name}: no decodable frames (zero-length, corrupt or unsupported video)")


def check_video_output(path: str | Path) -> Path:
    """A video output path this writer can fill: a known extension in an existing folder."""
    path = Path(path)
    if path.suffix.lower() not in FOURCC:
        raise FacemarkError(f"{path}: unsupported video extension (use {', '.join(FOURCC)})")
    if not path.parent.is_dir():
        raise FacemarkError(f"{path}: the folder does not exist")
    return path


class AtomicVideoWriter:
    """cv2.VideoWriter into a temporary file, renamed over `path` by `commit()`."""

    def __init__(self, path: str | Path, fps: float, width: int, height: int):
        self.path = check_video_output(path)
        suffix = self.path.suffix.lower()
        self.tmp = self.path.with_name(f".{self.path.stem}.tmp{os.getpid()}{suffix}")
        self.writer = cv2.VideoWriter(str(self.tmp), cv2.VideoWriter_fourcc(*FOURCC[suffix]), fps, (width, height))
        if not self.writer.isOpened():
            self.tmp.unlink(missing_ok=True)
            raise FacemarkError(f"{path}: cannot write a video here")

    def write(self, frame: np.ndarray) -> None:
        self.writer.write(frame)

    def commit(self) -> None:
        self.writer.release()
        os.replace(self.tmp, self.path)

    def discard(self) -> None:
        self.writer.release()
        self.tmp.unlink(missing_ok=True)


def frame_entry(index: int, faces: list[FaceLandmarks]) -> dict:
    """One frame in the JSON output: shaped like `detect`'s entry for one image."""
    return {"frame": index, "faces": [f.to_dict() for f in faces]}


def process_video(
    video: tuple[cv2.VideoCapture, VideoInfo],
    name: str,
    track: Callable[[np.ndarray], list[FaceLandmarks]],
    render: Callable[[np.ndarray, list[FaceLandmarks]], np.ndarray] | None = None,
    output: str | Path | None = None,
    json_path: str | Path | None = None,
    on_frame: Callable[[int, int], None] | None = None,
    max_frames: int | None = None,
) -> list[dict]:
    """Run `track` on every frame of an `open_video` capture (`name` for messages); write the
    `render`ed frames and/or the per-frame JSON."""
    cap, info = video
    writer = None
    entries = []
    try:
        writer = AtomicVideoWriter(output, info.fps, info.width, info.height) if output else None
        for i, frame in enumerate(frames(cap, name)):
            faces = track(frame)
            entries.append(frame_entry(i, faces))
            if writer:
                writer.write(render(frame, faces) if render else frame)
            if on_frame:
                on_frame(i, info.frames)
            if max_frames and i + 1 >= max_frames:
                break
        if json_path:
            write_bytes_atomic(json_path, json.dumps(entries, allow_nan=False).encode())
        if writer:
            writer.commit()
    except BaseException:
        if writer:
            writer.discard()
        raise
    finally:
        cap.release()
    return entries
