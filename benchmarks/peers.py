"""Peer landmarkers for side-by-side benchmarks, each with its own face detector.

dlib (`dlib-bin` + `face-recognition-models`) runs in this interpreter when installed.
MediaPipe face mesh needs a venv of its own (numpy<2, protobuf<5): this file, run with that
venv's python, reads image paths as JSON on stdin and prints kaggle15 points as JSON.
"""

from __future__ import annotations

import json
import sys

import numpy as np

# MediaPipe face-mesh indices for each kaggle15 point (subject's left/right), averaged when several.
MESH_TO_KAGGLE15 = {
    "left_eye_center": [263, 249, 390, 373, 374, 380, 381, 382, 362, 398, 384, 385, 386, 387, 388, 466],
    "right_eye_center": [33, 7, 163, 144, 145, 153, 154, 155, 133, 173, 157, 158, 159, 160, 161, 246],
    "left_eye_inner_corner": [362],
    "left_eye_outer_corner": [263],
    "right_eye_inner_corner": [133],
    "right_eye_outer_corner": [33],
    "left_eyebrow_inner_end": [336, 285],
    "left_eyebrow_outer_end": [300, 276],
    "right_eyebrow_inner_end": [107, 55],
    "right_eyebrow_outer_end": [70, 46],
    "nose_tip": [1],
    "mouth_left_corner": [291],
    "mouth_right_corner": [61],
    "mouth_center_top_lip": [0],
    "mouth_center_bottom_lip": [17],
}


def _overlap(a, b) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


class Dlib:
    """dlib's HOG detector + 68-point shape predictor; the detection nearest the GT box is used."""

    name = "dlib 68 (HOG detector)"

    def __init__(self):
        import dlib
        import face_recognition_models

        self.detector = dlib.get_frontal_face_detector()
        self.predictor = dlib.shape_predictor(face_recognition_models.pose_predictor_model_location())
        self.dlib = dlib

    def detect(self, rgb: np.ndarray, gt_box) -> np.ndarray | None:
        """(68, 2) points of the detected face that best overlaps `gt_box`, or None if none found."""
        rects = self.detector(rgb, 1)
        if not rects:
            return None
        rect = max(rects, key=lambda r: _overlap((r.left(), r.top(), r.right(), r.bottom()), gt_box))
        return self.landmarks(rgb, rect)

    def faces(self, bgr: np.ndarray) -> list[np.ndarray]:
        """(68, 2) points of every face dlib's detector finds in a BGR photo (upsampled once)."""
        import cv2

        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        return [self.landmarks(rgb, r) for r in self.detector(rgb, 1)]

    def landmarks(self, rgb: np.ndarray, rect) -> np.ndarray:
        shape = self.predictor(rgb, rect)
        return np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float64)


def dlib_or_none() -> Dlib | None:
    """dlib's detector and predictor, or None when `dlib-bin` or its models are not installed."""
    try:
        return Dlib()
    except ImportError:
        return None


def mediapipe_main() -> None:
    """Run inside the MediaPipe venv: stdin JSON list of paths -> stdout JSON list of points|null."""
    import cv2
    import mediapipe as mp

    names = list(MESH_TO_KAGGLE15)
    out = []
    with mp.solutions.face_mesh.FaceMesh(static_image_mode=True, max_num_faces=1) as mesh:
        for path in json.load(sys.stdin):
            bgr = cv2.imread(path)
            h, w = bgr.shape[:2]
            result = mesh.process(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
            if not result.multi_face_landmarks:
                out.append(None)
                continue
            lm = result.multi_face_landmarks[0].landmark
            pts = np.array([[p.x * w, p.y * h] for p in lm]) - 0.5  # to pixel-centre coordinates
            out.append([pts[MESH_TO_KAGGLE15[n]].mean(axis=0).tolist() for n in names])
    json.dump(out, sys.stdout)


def mediapipe_video_main(frames_path: str) -> None:
    """In the MediaPipe venv: face mesh in video mode over frames (.npy, N x H x W x 3 BGR);
    prints {"points": [[15 x 2] | null per frame], "fps": frames per second}."""
    import time

    import cv2
    import mediapipe as mp

    frames = np.load(frames_path)
    names = list(MESH_TO_KAGGLE15)
    h, w = frames.shape[1:3]
    out = []
    with mp.solutions.face_mesh.FaceMesh(static_image_mode=False, max_num_faces=1) as mesh:
        t = time.perf_counter()
        for bgr in frames:
            result = mesh.process(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
            if not result.multi_face_landmarks:
                out.append(None)
                continue
            lm = result.multi_face_landmarks[0].landmark
            pts = np.array([[p.x * w, p.y * h] for p in lm]) - 0.5
            out.append([pts[MESH_TO_KAGGLE15[n]].mean(axis=0).tolist() for n in names])
        fps = len(frames) / (time.perf_counter() - t)
    json.dump({"points": out, "fps": fps}, sys.stdout)


# Face-mesh indices of the five points facemark's detector gives (subject's right eye first).
MESH_TO_FIVE = [
    MESH_TO_KAGGLE15["right_eye_center"],
    MESH_TO_KAGGLE15["left_eye_center"],
    [1],
    [61],
    [291],
]


def mediapipe_scan_main() -> None:
    """In the MediaPipe venv: stdin JSON list of paths -> stdout JSON, per image, every face of
    face detection (full range: eye centres) and of face mesh (5 points), each with its ms."""
    import time

    import cv2
    import mediapipe as mp

    out = []
    det = mp.solutions.face_detection.FaceDetection(model_selection=1, min_detection_confidence=0.5)
    with mp.solutions.face_mesh.FaceMesh(static_image_mode=True, max_num_faces=10) as mesh:
        for path in json.load(sys.stdin):
            rgb = cv2.cvtColor(cv2.imread(path), cv2.COLOR_BGR2RGB)
            h, w = rgb.shape[:2]
            t = time.perf_counter()
            found = det.process(rgb).detections or []
            t_det = (time.perf_counter() - t) * 1000
            eyes = []
            for d in found:
                k = d.location_data.relative_keypoints  # 0: the subject's right eye (image left), 1: left
                eyes.append([[k[0].x * w - 0.5, k[0].y * h - 0.5], [k[1].x * w - 0.5, k[1].y * h - 0.5]])
            t = time.perf_counter()
            result = mesh.process(rgb)
            t_mesh = (time.perf_counter() - t) * 1000
            faces = []
            for face in result.multi_face_landmarks or []:
                pts = np.array([[p.x * w, p.y * h] for p in face.landmark]) - 0.5
                faces.append([pts[i].mean(axis=0).tolist() for i in MESH_TO_FIVE])
            out.append({"detection": eyes, "detection_ms": t_det, "mesh": faces, "mesh_ms": t_mesh})
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "scan":
        mediapipe_scan_main()
    elif len(sys.argv) > 2 and sys.argv[1] == "video":
        mediapipe_video_main(sys.argv[2])
    else:
        mediapipe_main()
