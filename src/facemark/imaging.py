"""Image decoding and the face-crop geometry shared by training, evaluation and inference.

Coordinates are in pixels with the origin at the top-left pixel's centre. A crop is a square of
`size` pixels; `crop_face` returns it with the 2x3 affine matrix that maps original pixels into
it, so `to_original` is the exact inverse used to report points in the caller's pixels.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

# Decompression-bomb guard: OpenCV refuses images larger than this before allocating them.
MAX_IMAGE_PIXELS = 64_000_000
os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", str(MAX_IMAGE_PIXELS))

import cv2  # noqa: E402  (the limit above must be set before OpenCV is imported)

from facemark.errors import FacemarkError  # noqa: E402

cv2.setNumThreads(1)  # OpenCV's own pool fights the model's threads for 2 cores.


def read_image(path: str | Path, gray: bool = True) -> np.ndarray:
    """Decode an image file (uint8, HxW gray or HxWx3 BGR), or fail with one clear line."""
    path = Path(path)
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except (FileNotFoundError, IsADirectoryError):
        raise FacemarkError(f"{path}: no such image file") from None
    except OSError as exc:
        raise FacemarkError(f"{path}: cannot read ({exc.strerror})") from None
    if data.size == 0:
        raise FacemarkError(f"{path}: empty file, not an image")
    image = decode_image(data, gray)
    if image is None:
        raise FacemarkError(f"{path}: not a readable image (corrupt, truncated or unsupported format)")
    return image


def decode_image(data: np.ndarray, gray: bool = True) -> np.ndarray | None:
    """Decode bytes; None when OpenCV cannot (it logs, never raises, on most bad input)."""
    flags = cv2.IMREAD_GRAYSCALE if gray else cv2.IMREAD_COLOR
    try:
        image = cv2.imdecode(data, flags)
    except cv2.error:
        return None
    if image is None or image.size == 0 or _is_truncated(data):
        return None
    return image


def _is_truncated(data: np.ndarray) -> bool:
    """OpenCV decodes cut-off JPEGs and PNGs silently (grey fill); catch the two common cases."""
    head = data[:8].tobytes()
    tail = data[-16:].tobytes()
    if head.startswith(b"\xff\xd8"):
        return b"\xff\xd9" not in tail
    if head.startswith(b"\x89PNG"):
        return b"IEND" not in tail
    return False


def to_gray(image: np.ndarray) -> np.ndarray:
    return image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)


@dataclass(frozen=True)
class CropSpec:
    """How a face box becomes the model's square input: the timm-style preprocessing config.

    The crop is centred on the box centre moved by `shift` (fractions of the box side) and is
    `scale` times the box side (the larger of width and height).
    """

    size: int = 96
    scale: float = 1.0
    shift: tuple[float, float] = (0.0, 0.0)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> CropSpec:
        return cls(size=int(d["size"]), scale=float(d["scale"]), shift=tuple(float(v) for v in d["shift"]))


def points_box(points: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Bounding box (x0, y0, x1, y1) of the present points: the 'GT box' protocol."""
    pts = points if mask is None else points[mask]
    if len(pts) == 0:
        raise FacemarkError("cannot build a face box: the sample has no labelled points")
    return np.array([*pts.min(axis=0), *pts.max(axis=0)], dtype=np.float64)


def crop_matrix(box: np.ndarray, spec: CropSpec) -> np.ndarray:
    """2x3 matrix mapping original pixels into the spec's crop of this box."""
    x0, y0, x1, y1 = (float(v) for v in box)
    side = max(x1 - x0, y1 - y0, 1.0)
    cx = (x0 + x1) / 2 + spec.shift[0] * side
    cy = (y0 + y1) / 2 + spec.shift[1] * side
    crop_side = side * spec.scale
    k = spec.size / crop_side
    # Pixel centres sit at integers, so the crop's centre is at (size - 1) / 2.
    c = (spec.size - 1) / 2
    return np.array([[k, 0.0, c - k * cx], [0.0, k, c - k * cy]])


def whole_image_box(image: np.ndarray) -> np.ndarray:
    """The article's flow: the whole image is the face crop (non-square images are padded)."""
    h, w = image.shape[:2]
    # Pixel centres are integers, so the image's edges are half a pixel beyond them.
    return np.array([-0.5, -0.5, w - 0.5, h - 0.5])


def warp(image: np.ndarray, matrix: np.ndarray, size: int) -> np.ndarray:
    """Resample `image` through `matrix`; shrinks first with area averaging to avoid aliasing.

    Only the part of the image the crop covers is touched, so a face in a large frame costs
    what a face in a small one does.
    """
    image, matrix = _covered_part(image, matrix, size)
    k = float(np.sqrt(abs(np.linalg.det(matrix[:, :2]))))
    if k < 0.5:
        h, w = image.shape[:2]
        new_w, new_h = max(1, round(w * 2 * k)), max(1, round(h * 2 * k))
        image = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_AREA)
        fx, fy = new_w / w, new_h / h
        # Area resize maps pixel centres as x' = f * x + (f - 1) / 2.
        pre = np.array([[fx, 0.0, (fx - 1) / 2], [0.0, fy, (fy - 1) / 2]])
        matrix = compose(matrix, invert(pre))
    return cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def _covered_part(image: np.ndarray, matrix: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """The image region under the crop (a view; clipped at the image's edges) and its matrix."""
    corners = apply(invert(matrix), np.array([[-1.0, -1.0], [size, -1.0], [-1.0, size], [size, size]]))
    h, w = image.shape[:2]
    x0, y0 = (max(0, int(np.floor(v)) - 2) for v in corners.min(axis=0))
    x1, y1 = min(w, int(np.ceil(corners[:, 0].max())) + 3), min(h, int(np.ceil(corners[:, 1].max())) + 3)
    if x1 <= x0 or y1 <= y0:  # the crop lies wholly outside: keep the nearest edge pixels
        x0, y0 = min(max(x0, 0), w - 1), min(max(y0, 0), h - 1)
        x1, y1 = x0 + 1, y0 + 1
    shifted = matrix.copy()
    shifted[:, 2] += matrix[:, :2] @ np.array([x0, y0], dtype=np.float64)
    return image[y0:y1, x0:x1], shifted


def crop_face(image: np.ndarray, box: np.ndarray, spec: CropSpec) -> tuple[np.ndarray, np.ndarray]:
    """Gray crop (uint8, size x size) of the face in `box`, and the matrix original -> crop."""
    matrix = crop_matrix(box, spec)
    return warp(to_gray(image), matrix, spec.size), matrix


def compose(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Affine `a` after `b` (both 2x3)."""
    a3 = np.vstack([a, [0, 0, 1]])
    b3 = np.vstack([b, [0, 0, 1]])
    return (a3 @ b3)[:2]


def invert(matrix: np.ndarray) -> np.ndarray:
    return cv2.invertAffineTransform(np.asarray(matrix, dtype=np.float64))


def apply(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply a 2x3 affine to (..., 2) points; NaN (missing) points stay NaN."""
    return points @ matrix[:, :2].T + matrix[:, 2]


def to_original(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Map crop-frame points back to original pixels: the exact inverse of the crop."""
    return apply(invert(matrix), points)


def draw_points(
    image: np.ndarray, points: np.ndarray, color: tuple[int, int, int] = (0, 255, 0), radius: int | None = None
) -> np.ndarray:
    """A BGR copy of the image with the points drawn, sized to stay visible on any resolution."""
    out = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR) if image.ndim == 2 else image.copy()
    radius = radius or max(1, round(max(out.shape[:2]) / 150))
    for x, y in points:
        if np.isfinite(x) and np.isfinite(y):
            cv2.circle(out, (round(float(x)), round(float(y))), radius, color, -1, cv2.LINE_AA)
    return out


def draw_faces(image: np.ndarray, faces: list) -> np.ndarray:
    """A BGR copy with each face's box and points drawn (faces: `FaceLandmarks`)."""
    out = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR) if image.ndim == 2 else image.copy()
    thickness = max(1, round(max(out.shape[:2]) / 400))
    for face in faces:
        x0, y0, x1, y1 = (round(float(v)) for v in face.box)
        cv2.rectangle(out, (x0, y0), (x1, y1), (255, 160, 0), thickness, cv2.LINE_AA)
        out = draw_points(out, face.points, radius=max(1, round((x1 - x0) / 40)))
    return out


def write_image_atomic(path: str | Path, image: np.ndarray) -> None:
    """Encode fully in memory, then rename into place: no half-written output files."""
    path = Path(path)
    ok, buf = cv2.imencode(path.suffix or ".png", image)
    if not ok:
        raise FacemarkError(f"{path}: cannot encode an image with this extension")
    write_bytes_atomic(path, buf.tobytes())


def write_bytes_atomic(path: str | Path, data: bytes) -> None:
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise FacemarkError(f"{path}: cannot write ({exc.strerror})") from None
