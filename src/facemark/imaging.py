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

# Decompression-bomb guard: what real cameras produce (phones take 50-200 MP) is accepted; a file
# whose header claims more is refused before any pixel is allocated. OpenCV enforces the same
# limit for the formats whose headers are not read here.
MAX_IMAGE_PIXELS = 250_000_000
os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", str(MAX_IMAGE_PIXELS))

import cv2  # noqa: E402  (the limit above must be set before OpenCV is imported)

from facemark.errors import FacemarkError  # noqa: E402

cv2.setNumThreads(1)  # OpenCV's own pool fights the model's threads for 2 cores.

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}  # what OpenCV reads and writes


def read_image(path: str | Path, gray: bool = True, unchanged: bool = False) -> np.ndarray:
    """Decode an image file (uint8, HxW gray or HxWx3 BGR; `unchanged`: as stored, alpha
    included), or fail with one clear line."""
    try:
        return decode_image(read_bytes(path), gray, unchanged)
    except FacemarkError as exc:
        raise FacemarkError(f"{path}: {exc}") from None


def read_bytes(path: str | Path) -> np.ndarray:
    """A file's bytes, or a FacemarkError that says why not (the caller adds the path)."""
    try:
        return np.fromfile(Path(path), dtype=np.uint8)
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        raise FacemarkError("no such image file") from None
    except OSError as exc:
        raise FacemarkError(f"cannot read ({exc.strerror})") from None


def decode_image(
    data: np.ndarray | bytes, gray: bool = True, unchanged: bool = False, max_pixels: int = MAX_IMAGE_PIXELS
) -> np.ndarray:
    """Decode image bytes; FacemarkError says why not (empty, truncated, too large, unreadable).

    Bytes after a JPEG's or PNG's end marker (Motion Photos, some cameras and editors) are
    ignored; a file cut off before its end marker is refused rather than decoded with grey fill.
    `unchanged` keeps the alpha channel and bit depth (overlay pictures); `max_pixels` may set a
    lower limit than the default (a server's).
    """
    data = np.frombuffer(data, np.uint8) if isinstance(data, bytes) else data
    if data.size == 0:
        raise FacemarkError("empty file, not an image")
    size, complete = image_header(data)
    if size and size[0] * size[1] > max_pixels:
        w, h = size
        raise FacemarkError(
            f"{w}x{h} pixels ({w * h / 1e6:.0f} MP) is over the {max_pixels / 1e6:.0f} MP limit "
            "(a decompression-bomb guard)"
        )
    if not complete:
        raise FacemarkError("not a readable image (truncated: the file ends before its end marker)")
    flags = cv2.IMREAD_UNCHANGED if unchanged else cv2.IMREAD_GRAYSCALE if gray else cv2.IMREAD_COLOR
    try:
        image = cv2.imdecode(data, flags)
    except cv2.error:
        image = None
    if image is None or image.size == 0:
        raise FacemarkError("not a readable image (corrupt, truncated or unsupported format)")
    if image.shape[0] * image.shape[1] > max_pixels:  # a format whose header is not read here
        raise FacemarkError(f"{image.shape[1]}x{image.shape[0]} pixels is over the {max_pixels / 1e6:.0f} MP limit")
    return image


def image_header(data: np.ndarray) -> tuple[tuple[int, int] | None, bool]:
    """(width, height) from a JPEG's or PNG's header (None for other formats), and whether the
    file reaches its end marker. Other formats are left to the decoder: (None, True)."""
    raw = data.tobytes() if data.size < 1 << 16 else memoryview(data)
    if bytes(raw[:2]) == b"\xff\xd8":
        return _jpeg_header(data)
    if bytes(raw[:8]) == b"\x89PNG\r\n\x1a\n":
        return _png_header(bytes(data))
    return None, True


_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def _jpeg_header(data: np.ndarray) -> tuple[tuple[int, int] | None, bool]:
    """Walk a JPEG's segments to its end-of-image marker; scans are skipped to their next marker."""
    n = len(data)
    after = data[1:]
    # Markers inside entropy-coded data: 0xFF not followed by 0x00 (stuffing), 0xFF (fill) or RSTn.
    markers = np.flatnonzero((data[:-1] == 0xFF) & (after != 0) & (after != 0xFF) & ((after < 0xD0) | (after > 0xD7)))
    size, pos = None, 2
    while pos + 2 <= n:
        if data[pos] != 0xFF:
            return size, False
        marker = int(data[pos + 1])
        if marker == 0xFF:  # fill byte before a marker
            pos += 1
            continue
        if marker == 0xD9:
            return size, True
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:
            pos += 2
            continue
        if pos + 4 > n:
            return size, False
        length = int(data[pos + 2]) << 8 | int(data[pos + 3])
        if marker in _SOF and pos + 9 <= n:
            h = int(data[pos + 5]) << 8 | int(data[pos + 6])
            w = int(data[pos + 7]) << 8 | int(data[pos + 8])
            size = (w, h)
        pos += 2 + length
        if marker == 0xDA:  # a scan: its data runs to the next marker
            i = int(np.searchsorted(markers, pos))
            if i == len(markers):
                return size, False
            pos = int(markers[i])
    return size, False


def _png_header(data: bytes) -> tuple[tuple[int, int] | None, bool]:
    """Walk a PNG's chunks to IEND."""
    size, pos, n = None, 8, len(data)
    while pos + 8 <= n:
        length = int.from_bytes(data[pos : pos + 4], "big")
        kind = data[pos + 4 : pos + 8]
        if kind == b"IHDR" and pos + 16 <= n:
            size = (int.from_bytes(data[pos + 8 : pos + 12], "big"), int.from_bytes(data[pos + 12 : pos + 16], "big"))
        pos += 12 + length
        if kind == b"IEND":
            return size, pos <= n
    return size, False


def as_image(image: np.ndarray) -> np.ndarray:
    """A caller's array as the uint8 gray or BGR image the pipeline works on, or one clear error.

    uint16 images keep their top 8 bits; floats are read as 0-1 when they stay within it (else
    0-255); an alpha channel is dropped.
    """
    if not isinstance(image, np.ndarray):
        raise FacemarkError(f"an image must be a numpy array or a file path, got {type(image).__name__}")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[..., 0]
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (3, 4)):
        raise FacemarkError(f"an image must be HxW, HxWx3 or HxWx4, got shape {image.shape}")
    if image.size == 0:
        raise FacemarkError(f"the image is empty (shape {image.shape})")
    if image.dtype == np.uint8:
        pass
    elif image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    elif image.dtype == np.bool_:
        image = image.astype(np.uint8) * 255
    elif np.issubdtype(image.dtype, np.number) and not np.issubdtype(image.dtype, np.complexfloating):
        if not np.isfinite(image).all():
            raise FacemarkError("the image holds NaN or infinite values")
        top = 1.0 if np.issubdtype(image.dtype, np.floating) and image.max() <= 1.0 else 255.0
        image = np.clip(np.rint(image.astype(np.float64) * (255.0 / top)), 0, 255).astype(np.uint8)
    else:
        raise FacemarkError(f"an image must hold numbers, got dtype {image.dtype}")
    if image.ndim == 3 and image.shape[2] == 4:
        image = np.ascontiguousarray(image[..., :3])
    return image


# Detection works on a copy of at most this many pixels: the cascade's smallest face is a fixed
# share of the image, so larger copies find the same faces, slower and in more memory.
WORKING_PIXELS = 2_000_000
MIN_DETECTABLE = 24  # px: the smallest face box the detectors' windows find


def working_copy(
    image: np.ndarray, max_pixels: int = WORKING_PIXELS, min_face: float | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The gray copy detection runs on (area-shrunk to at most `max_pixels`, or less shrunk when
    faces down to `min_face` px must stay findable) and the 2x3 matrix from its pixels to the
    image's, so a caller can drop a large decoded photo at once."""
    gray = to_gray(as_image(image))
    h, w = gray.shape
    k = (max_pixels / (h * w)) ** 0.5
    if min_face:  # a face of min_face px must keep the detectors' smallest window, 24 px
        k = max(k, MIN_DETECTABLE / min_face)
    if k >= 1:
        return gray, np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    new_w, new_h = max(1, round(w * k)), max(1, round(h * k))
    small = cv2.resize(gray, (new_w, new_h), interpolation=cv2.INTER_AREA)
    fx, fy = w / new_w, h / new_h  # area resize maps pixel centres as x = f * x' + (f - 1) / 2
    return small, np.array([[fx, 0.0, (fx - 1) / 2], [0.0, fy, (fy - 1) / 2]])


def to_gray(image: np.ndarray) -> np.ndarray:
    return image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)


def to_bgr(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR) if image.ndim == 2 else image


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


def points_box(points: np.ndarray, mask: np.ndarray | None = None, frame: np.ndarray | None = None) -> np.ndarray:
    """The face box (x0, y0, x1, y1) of the present points: the 'GT box' protocol. Without a
    `frame` it is their bounding box; with one (where each point sits in a unit face box, for
    sparse schemes) it is that box carried onto the points by a least-squares similarity."""
    mask = np.ones(len(points), bool) if mask is None else mask
    pts = points[mask]
    if len(pts) == 0:
        raise FacemarkError("cannot build a face box: the sample has no labelled points")
    if frame is None:
        return np.array([*pts.min(axis=0), *pts.max(axis=0)], dtype=np.float64)
    if len(pts) < 2:
        raise FacemarkError("cannot frame a face from fewer than two labelled points")
    m = similarity(np.asarray(frame, np.float64)[mask], pts.astype(np.float64))
    (cx, cy), half = m[:, 2], float(np.hypot(m[0, 0], m[1, 0])) / 2
    return np.array([cx - half, cy - half, cx + half, cy + half])


def similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """2x3 least-squares similarity (scale, roll, shift) taking points src (N, 2) onto dst."""
    zs = src[:, 0] + 1j * src[:, 1]
    zd = dst[:, 0] + 1j * dst[:, 1]
    ms, md = zs.mean(), zd.mean()
    a = ((zd - md) * np.conj(zs - ms)).sum() / (np.abs(zs - ms) ** 2).sum()
    b = md - a * ms
    return np.array([[a.real, -a.imag, b.real], [a.imag, a.real, b.imag]])


def crop_matrix(box: np.ndarray, spec: CropSpec, roll: float = 0.0) -> np.ndarray:
    """2x3 matrix mapping original pixels into the spec's crop of this box; `roll` (degrees,
    clockwise as seen) turns the crop with the face, so a tilted face comes out upright."""
    x0, y0, x1, y1 = (float(v) for v in box)
    side = max(x1 - x0, y1 - y0, 1.0)
    t = np.radians(roll)
    cos, sin = np.cos(t), np.sin(t)
    dx, dy = spec.shift[0] * side, spec.shift[1] * side  # the shift is in the face's own frame
    cx = (x0 + x1) / 2 + cos * dx - sin * dy
    cy = (y0 + y1) / 2 + sin * dx + cos * dy
    k = spec.size / (side * spec.scale)
    # Pixel centres sit at integers, so the crop's centre is at (size - 1) / 2.
    c = (spec.size - 1) / 2
    a, b = k * cos, k * sin
    return np.array([[a, b, c - a * cx - b * cy], [-b, a, c + b * cx - a * cy]])


def whole_image_box(image: np.ndarray) -> np.ndarray:
    """The article's flow: the whole image is the face crop (non-square images are padded)."""
    h, w = image.shape[:2]
    # Pixel centres are integers, so the image's edges are half a pixel beyond them.
    return np.array([-0.5, -0.5, w - 0.5, h - 0.5])


def warp(image: np.ndarray, matrix: np.ndarray, size: int, exact: bool = False) -> np.ndarray:
    """Resample `image` through `matrix`; shrinks with area averaging to avoid aliasing.

    Only the part of the image the crop covers is touched, so a face in a large frame costs
    what a face in a small one does. `exact` shrinks in one fractional area resize, as the
    training caches of the shipped models were made (a recipe reproduces their weights bit for
    bit); the default is a faster equivalent (crops differ by ~0.5 grey levels on average).
    """
    image, matrix = _covered_part(image, matrix, size)
    k = scale_of(matrix)
    if k >= 0.5:
        return cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    if exact:
        image, matrix = _resized(image, 2 * k, matrix)
        return cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    # Shrink by exact halvings while the warp would shrink by 4 or more (OpenCV's area resize by
    # exactly 2 is ~40x faster than by a fraction), warp to twice the crop's size and halve that:
    # every crop pixel averages the photo pixels it covers, as one area resize by 2k would.
    while k < 0.25 and min(image.shape[:2]) >= 4:
        image, matrix = _halved(image, matrix)
        k *= 2
    double = compose(np.array([[2.0, 0.0, 0.5], [0.0, 2.0, 0.5]]), matrix)
    big = cv2.warpAffine(image, double, (2 * size, 2 * size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return cv2.resize(big, (size, size), interpolation=cv2.INTER_AREA)


def _halved(image: np.ndarray, matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`image` area-halved exactly, and `matrix` (original -> crop) for it."""
    small, back = area_halved(image)
    return small, compose(matrix, back)


def area_halved(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`image` trimmed to even sides and area-halved exactly (OpenCV's fast path, ~40x faster
    than a fractional area resize), and the affine from its pixels to `image`'s."""
    h, w = image.shape[:2]
    return area_resized(image[: h // 2 * 2, : w // 2 * 2], (w // 2, h // 2))


def _resized(image: np.ndarray, scale: float, matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`image` area-resized by about `scale`, and `matrix` (original -> crop) for the resized one."""
    h, w = image.shape[:2]
    small, back = area_resized(image, (max(1, round(w * scale)), max(1, round(h * scale))))
    return small, compose(matrix, back)


def area_resized(image: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """`image` area-resized to `size` (w, h), and the affine from its pixels to `image`'s: an area
    resize by f maps pixel centres (at integers) as x = f * x' + (f - 1) / 2."""
    h, w = image.shape[:2]
    small = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    fx, fy = w / size[0], h / size[1]
    return small, np.array([[fx, 0.0, (fx - 1) / 2], [0.0, fy, (fy - 1) / 2]])


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


def crop_face(
    image: np.ndarray,
    box: np.ndarray,
    spec: CropSpec,
    roll: float = 0.0,
    exact: bool = False,
    colour: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Gray crop (uint8, size x size; `colour`: size x size x 3 BGR) of the face in `box` turned
    upright by `roll` degrees, and the matrix original -> crop (`exact`: see `warp`)."""
    matrix = crop_matrix(box, spec, roll)
    return warp(to_bgr(image) if colour else to_gray(image), matrix, spec.size, exact), matrix


def compose(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Affine `a` after `b` (both 2x3). (Without building the 3x3 forms: a third of the time, the
    same bits; the detector composes a few dozen a photo.)"""
    out = a[:, :2] @ b
    out[:, 2] += a[:, 2]
    return out


def scale_of(matrix: np.ndarray) -> float:
    """How much a 2x3 affine scales lengths (the root of its area scale), by the 2x2 formula:
    numpy's general determinant costs 20x as much, and crops and pyramid views ask dozens a photo."""
    return float(np.sqrt(abs(matrix[0, 0] * matrix[1, 1] - matrix[0, 1] * matrix[1, 0])))


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
