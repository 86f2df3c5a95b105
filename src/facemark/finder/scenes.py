"""Synthetic training scenes: face patches warped onto backgrounds at any roll and size.

Why synthetic: the labelled photos hold one mostly upright face each, at one size; a detector
trained on them as they are learns exactly that. A scene here holds 0-6 faces at rolls over the
whole circle, boxes mostly from MIN_SIDE to MAX_SIDE px (larger ones at times, taught as neither
face nor background: the runtime's pyramid finds them smaller), some cut by its edge, pasted with
hard or soft edges beside distractor pastes of face-free texture (so an edge never means
"face"), over photos without people and generated textures, then blurred, noised, JPEG'd and
relit. A recipe may warp some faces toward an infant's proportions (`facemark.infant_shape`).
Every scene is a function of (seed, index), so a resumed run sees the same data.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from facemark.finder.faces import FacePatch
from facemark.finder.maps import MAX_SIDE, MIN_SIDE, Face
from facemark.finder.negatives import CONTEXT
from facemark.imaging import cv2
from facemark.infant_shape import toward_infant

# skimage's data photos that show no person (the astronaut, the cameraman and the LFW faces do),
# split: training scenes use the first set, the detection benchmark's false-face check the second.
FACE_FREE = (
    "brick", "cell", "chessboard_GRAY", "clock_motion", "color", "grass", "gravel", "ihc", "logo",
    "microaneurysms", "moon", "motorcycle_left", "page", "phantom", "retina", "text",
)  # fmt: skip
FACE_FREE_HELD_OUT = ("chelsea", "coffee", "coins", "horse", "hubble_deep_field", "motorcycle_right", "rocket")


def face_free_photos(names: tuple[str, ...] = FACE_FREE) -> list[np.ndarray]:
    """Gray photos without people, from scikit-image's bundled data (no download)."""
    from pathlib import Path

    import skimage.data

    folder = Path(skimage.data.__file__).parent
    out = []
    for name in names:
        for path in folder.glob(f"{name}.*"):
            image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
            if image is not None and min(image.shape) >= 64:
                out.append(image)
    return out


@dataclass
class Scene:
    image: np.ndarray  # (size, size) uint8
    faces: list[Face]
    unsure: list[Face]


class SceneMaker:
    """Scenes of `size` px from face patches and face-free photos; `weights` (by source name)
    makes a source's faces that many times as likely, so a small set (infants) is seen enough;
    `infant_shape` is the probability that a pasted face is first warped part of the way toward
    the infant mean face's rows."""

    def __init__(
        self,
        faces: list[FacePatch],
        backgrounds: list[np.ndarray],
        size: int = 256,
        seed: int = 0,
        weights: dict[str, float] | None = None,
        negatives: list[np.ndarray] | None = None,
        infant_shape: float = 0.0,
    ):
        self.faces, self.backgrounds, self.size, self.seed = faces, backgrounds, size, seed
        self.infant_shape = infant_shape
        self.negatives = negatives or []  # hard negatives (`finder.negatives`): pasted as background
        w = np.array([(weights or {}).get(f.source, 1.0) for f in faces], np.float64)
        self._cumulative = np.cumsum(w / w.sum())

    def scene(self, index: int) -> Scene:
        rng = np.random.default_rng([self.seed, index])
        s = self.size
        canvas = self._background(rng)
        for _ in range(rng.integers(0, 4)):
            self._distractor(rng, canvas)
        for _ in range(rng.integers(0, 3) if self.negatives else 0):  # (no draw without: old recipes unchanged)
            self._hard_negative(rng, canvas)
        faces: list[Face] = []
        unsure: list[Face] = []
        n = rng.choice([0, 1, 1, 1, 2, 2, 3, 4, 6])
        big = s * (1.3 if n <= 1 else 0.9 / np.sqrt(n))
        for _ in range(n):
            # Mostly the band the network learns (a little past both ends), sometimes a face too
            # large for it: a coarser pyramid level finds that one, so here its parts are background.
            least, most = MIN_SIDE * 0.8, min(MAX_SIDE * 1.1, big)
            if rng.random() < 0.1:
                least, most = MAX_SIDE * 1.2, max(MAX_SIDE * 1.3, s * 1.5)
            for _try in range(4):
                side = float(np.exp(rng.uniform(np.log(least), np.log(most))))
                edge = 0.15 if rng.random() < 0.2 else -0.05  # some faces cut by the image's edge
                lo, hi = side * (0.5 - edge) - side / 2, s - side * (0.5 - edge) + side / 2
                centre = rng.uniform(min(lo, s / 2), max(hi, s / 2), 2)
                if all(np.hypot(*(centre - f.centre)) > 0.6 * (side + f.side) for f in faces):
                    self._paste(rng, canvas, self._pick(rng), centre, side, faces, unsure)
                    break
        image = self._photometric(rng, canvas)
        return Scene(image, faces, unsure)

    def _pick(self, rng) -> FacePatch:
        i = int(np.searchsorted(self._cumulative, rng.random(), side="right"))
        return self.faces[min(i, len(self.faces) - 1)]

    # --- backgrounds and distractors -------------------------------------------------------
    def _background(self, rng) -> np.ndarray:
        s = self.size
        kind = rng.random()
        if kind < 0.55:
            out = self._photo_crop(rng, s)
        elif kind < 0.8:
            out = _texture(rng, s)
        else:  # a mosaic: the photo is several photos
            h = s // 2
            out = np.zeros((s, s), np.float32)
            for y in (0, h):
                for x in (0, h):
                    out[y : y + h, x : x + h] = self._photo_crop(rng, h) if rng.random() < 0.6 else _texture(rng, h)
        return out

    def _photo_crop(self, rng, size: int) -> np.ndarray:
        photo = self.backgrounds[rng.integers(len(self.backgrounds))]
        side = rng.uniform(0.2, 1.0) * min(photo.shape)
        angle = rng.uniform(-180, 180) if rng.random() < 0.5 else 0.0
        cx, cy = rng.uniform(side / 2, photo.shape[1] - side / 2), rng.uniform(side / 2, photo.shape[0] - side / 2)
        m = cv2.getRotationMatrix2D((cx, cy), angle, size / side)
        m[:, 2] += (size - 1) / 2 - np.array([cx, cy])
        out = cv2.warpAffine(photo, m, (size, size), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REFLECT)
        if rng.random() < 0.5:
            out = out[:, ::-1]
        return out.astype(np.float32)

    def _distractor(self, rng, canvas: np.ndarray) -> None:
        """A face-free paste with the same kinds of edges faces get."""
        s = self.size
        side = int(rng.uniform(0.1, 0.5) * s)
        patch = self._photo_crop(rng, side) if rng.random() < 0.6 else _texture(rng, side)
        if rng.random() < 0.3:  # a face patch's surroundings without the face: its edges, no face
            f = self.faces[rng.integers(len(self.faces))]
            corner = f.patch[: max(4, f.patch.shape[0] // 4), : max(4, f.patch.shape[1] // 4)]
            patch = cv2.resize(corner, (side, side)).astype(np.float32)
        m = cv2.getRotationMatrix2D(((side - 1) / 2, (side - 1) / 2), rng.uniform(-180, 180), 1.0)
        m[:, 2] += rng.uniform(-side / 2, s - side / 2, 2)
        _blend(canvas, patch, m, rng)

    def _hard_negative(self, rng, canvas: np.ndarray) -> None:
        """A mined false candidate, its box sized in the band the network learns, at any roll."""
        patch = self.negatives[rng.integers(len(self.negatives))].astype(np.float32)
        if rng.random() < 0.5:
            patch = patch[:, ::-1]
        patch = np.clip(patch * rng.uniform(0.7, 1.3) + rng.uniform(-30, 30), 0, 255)
        n = patch.shape[0]
        side = float(np.exp(rng.uniform(np.log(MIN_SIDE), np.log(MAX_SIDE)))) * CONTEXT  # the patch's side
        m = cv2.getRotationMatrix2D(((n - 1) / 2, (n - 1) / 2), rng.uniform(-180, 180), side / n)
        m[:, 2] += rng.uniform(0, self.size, 2) - (n - 1) / 2
        _blend(canvas, patch, m, rng, soft_centre=((n - 1) / 2, (n - 1) / 2), soft_radius=n / 2 / 1.3)

    # --- faces -----------------------------------------------------------------------------
    def _paste(self, rng, canvas, f: FacePatch, centre, side: float, faces: list, unsure: list) -> None:
        k = side / f.side
        angle = rng.normal(0, 12) if rng.random() < 0.35 else rng.uniform(-180, 180)
        flip = rng.random() < 0.5
        patch = f.patch.astype(np.float32)
        keypoints, fc, others = f.keypoints.astype(np.float64), f.centre, f.unsure
        if flip:
            w = patch.shape[1]
            patch = patch[:, ::-1]
            keypoints = keypoints[[1, 0, 2, 4, 3]] * [-1, 1] + [w - 1, 0]
            fc = fc * [-1, 1] + [w - 1, 0]
            others = others * [-1, 1, 1] + [w - 1, 0, 0]
        if self.infant_shape and rng.random() < self.infant_shape:  # (no draw when off: old recipes unchanged)
            patch, keypoints, cy = toward_infant(patch, keypoints, float(fc[1]), f.side, float(rng.uniform()))
            fc = np.array([fc[0], cy])
        patch = np.clip(patch * rng.uniform(0.6, 1.4) + rng.uniform(-40, 40), 0, 255)
        m = cv2.getRotationMatrix2D((float(fc[0]), float(fc[1])), float(angle), k)
        m[:, 2] += np.asarray(centre) - fc
        _blend(canvas, patch, m, rng, soft_centre=fc, soft_radius=f.side * rng.uniform(0.75, 1.1))
        faces.append(Face(tuple(centre), side, keypoints @ m[:, :2].T + m[:, 2]))
        for ox, oy, oside in others:
            unsure.append(Face(tuple(np.array([ox, oy]) @ m[:, :2].T + m[:, 2]), float(oside) * k, np.zeros((5, 2))))

    # --- the camera --------------------------------------------------------------------------
    def _photometric(self, rng, canvas: np.ndarray) -> np.ndarray:
        img = canvas
        if rng.random() < 0.5:  # contrast, brightness, gamma
            img = np.clip((img - 128) * rng.uniform(0.5, 1.5) + 128 + rng.uniform(-40, 40), 0, 255)
            img = 255 * (img / 255) ** rng.uniform(0.6, 1.6)
        if rng.random() < 0.25:
            img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.5, 2.0))
        if rng.random() < 0.15:  # a low-resolution camera
            k = rng.uniform(0.3, 0.7)
            small = cv2.resize(img, None, fx=k, fy=k, interpolation=cv2.INTER_AREA)
            img = cv2.resize(small, (self.size, self.size), interpolation=cv2.INTER_LINEAR)
        if rng.random() < 0.3:
            img = img + rng.normal(0, rng.uniform(2, 12), img.shape)
        img = np.clip(img, 0, 255).astype(np.uint8)
        if rng.random() < 0.3:
            ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(20, 90))])
            img = cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE)
        return img


def _blend(canvas: np.ndarray, patch: np.ndarray, m: np.ndarray, rng, soft_centre=None, soft_radius=0.0) -> None:
    """Warp `patch` by `m` onto `canvas` with a hard edge, or a soft round one around `soft_centre`."""
    s = canvas.shape[0]
    h, w = patch.shape
    if soft_centre is not None and rng.random() < 0.5:
        yy, xx = np.mgrid[0:h, 0:w]
        d = np.hypot(xx - soft_centre[0], (yy - soft_centre[1]) * rng.uniform(0.8, 1.0))
        alpha = np.clip((soft_radius * 1.3 - d) / (0.3 * soft_radius), 0, 1).astype(np.float32)
    else:
        alpha = np.ones((h, w), np.float32)
    warped = cv2.warpAffine(patch, m, (s, s), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    a = cv2.warpAffine(alpha, m, (s, s), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    canvas *= 1 - a
    canvas += a * warped


def _texture(rng, size: int) -> np.ndarray:
    """A generated face-free texture: smooth noise, stripes, gradients or shapes."""
    kind = rng.integers(4)
    if kind == 0:
        cells = int(rng.integers(2, 32))
        noise = rng.uniform(0, 255, (cells, cells)).astype(np.float32)
        out = cv2.resize(noise, (size, size), interpolation=cv2.INTER_CUBIC)
    elif kind == 1:
        yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
        a, f = rng.uniform(0, np.pi), rng.uniform(0.02, 0.5)
        out = 128 + 100 * np.sin(f * (xx * np.cos(a) + yy * np.sin(a)))
    elif kind == 2:
        yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
        out = 255 * (rng.uniform() * xx + rng.uniform() * yy) / 2 + rng.uniform(0, 128)
    else:
        out = np.full((size, size), rng.uniform(0, 255), np.float32)
        for _ in range(rng.integers(3, 12)):
            c = tuple(int(v) for v in rng.integers(0, size, 2))
            axes = tuple(int(v) for v in rng.integers(2, max(3, size // 3), 2))
            cv2.ellipse(out, c, axes, float(rng.uniform(0, 180)), 0, 360, float(rng.uniform(0, 255)), -1)
    return np.clip(out + rng.normal(0, 4, out.shape), 0, 255).astype(np.float32)
