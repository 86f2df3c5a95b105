"""The finder as a `Detector`: the shipped ONNX network on ONNX Runtime, one thread, no TensorFlow.

The network finds faces in one band of sizes (FIND_SIDE to MAX_SIDE px at its input), so a
photo runs as a pyramid: first shrunk only as far as keeps its smallest wanted face FIND_SIDE px
(never enlarged), then LEVEL_STEP times smaller per level until a face filling the photo fits
the band. Each level is shrunk from the one before, and the levels past the first cost a tenth
of it together. A first level past TILE px a side runs as overlapping tiles, so time and memory
stay bounded for any photo. The coarser levels also run turned by quarter turns (COARSE_TURNS).
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np

from facemark.detection import Detector, FaceBox, iou, suppress
from facemark.errors import FacemarkError
from facemark.finder.gate import Gate
from facemark.finder.maps import MAX_SIDE, decode
from facemark.imaging import apply, area_halved, area_resized, compose, cv2, scale_of, to_gray
from facemark.sessions import one_thread_session

WEIGHTS = Path(__file__).resolve().parent.parent / "weights" / "finder"
FIND_SIDE = 24.0  # px at the network's input: the smallest box it finds reliably
DEFAULT_SMALLEST = 0.06  # without min_side: faces down to this share of the shorter side (>= 32 px)
SMALLEST_PX = 32.0
LEVEL_STEP = 2.5  # each pyramid level this much smaller: the band (24-96 px) overlaps itself (3 found fewer faces)
TILE = 1024  # px: inputs larger than this run in tiles
OVERLAP = 192  # px: tiles overlap by this, so a face the fine pass is for lies wholly in one
ALIGN = 32  # the network's input sides are multiples of this
# Quarter turns each coarser level also runs at. The network finds a small face at any roll but
# misses many large ones rolled 30 degrees or more, which the coarser levels are for (a selfie
# tilted 45 degrees); turned, one view holds such a face within 45 degrees of upright. In
# benchmarks/finder.py this took web photos rolled 15-180 degrees from 83-93 % found to 93-100 %,
# for about 3 ms more a 640x480 photo (the coarser levels are a ninth of the first's pixels).
COARSE_TURNS = (0, 1, 2, 3)
SAME_FACE = 0.3  # IoU at which a turned view's candidate is a kept one's face (as `suppress` within a view)
SAME_BOX, SAME_ROLL = 0.6, 45.0  # IoU and degrees within which it is the same view of that face
# A bundle may hold a second network for the first (finest) pyramid level, most of a photo's
# time, beside `model.onnx` for the coarse levels, where large and rolled faces are found: a
# lighter network there need not find those (docs/training.md, "A hybrid"). None ships.
FINE_ONNX = "fine.onnx"


class FinderDetector(Detector):
    """facemark's own detector: box, score and five keypoints per face, at any roll."""

    name = "facemark"

    @classmethod
    def available(cls) -> bool:
        return (WEIGHTS / "model.onnx").exists()

    def __init__(self, model: str | Path | None = None, threshold: float | None = None):
        super().__init__()
        folder = Path(model) if model else WEIGHTS
        path = folder / "model.onnx" if folder.is_dir() else folder
        if not path.exists():
            if model is None:
                raise FacemarkError(
                    "facemark's own detector is not in this package yet (train it: python scripts/retrain.py finder); "
                    "use --detector opencv, dlib or mediapipe"
                )
            raise FacemarkError(f"{path}: no finder model there")
        self.session = one_thread_session(path, "the finder")
        fine = path.parent / FINE_ONNX
        self.fine = one_thread_session(fine, "the finder's first-level network") if fine.exists() else self.session
        self.path = path
        config = path.parent / "finder.json"
        self.config = json.loads(config.read_text()) if config.exists() else {}
        self.threshold = float(self.config.get("threshold", 0.5) if threshold is None else threshold)
        self.gate = Gate.beside(path)  # None for a bundle without one: every candidate is kept

    def _boxes(self, image: np.ndarray, min_side: float | None) -> list[FaceBox]:
        gray = to_gray(image)
        h, w = gray.shape
        if h < 2 or w < 2:
            return []
        smallest = min_side or max(SMALLEST_PX, DEFAULT_SMALLEST * min(h, w))
        level, to_photo = _first_level(gray, min(1.0, FIND_SIDE / smallest))
        views: dict[int, list[FaceBox]] = {k: [] for k in (0, *COARSE_TURNS)}  # by the quarter turn seen at
        views[0] += self._at_level(level, to_photo, session=self.fine)
        while min(level.shape) > MAX_SIDE:  # a face as large as the photo is not yet in the band
            level, to_photo = _shrunk(level, 1 / LEVEL_STEP, to_photo)  # from the last level: a third the cost
            for k in COARSE_TURNS:  # a face under FIND_SIDE here is in the finer level's band, found there
                views[k] += self._at_level(np.rot90(level, k), compose(to_photo, _unturn(k, level.shape)), FIND_SIDE)
        least = min_side or 0.0  # (`detect` drops smaller boxes too; suppressing them first costs time)
        unturned, *turned = (suppress([b for b in seen if b.side >= least]) for seen in views.values())
        kept = _filled_in(unturned, [b for seen in turned for b in seen])
        return self.gate.keep(gray, kept) if self.gate else kept

    def _one_per_face(self, boxes: list[FaceBox]) -> list[FaceBox]:
        return boxes  # `_boxes` has merged its views already

    def _at_level(self, level: np.ndarray, to_photo: np.ndarray, least: float = 0.0, session=None) -> list[FaceBox]:
        """Faces of at least `least` px in one pyramid level, mapped to the photo by the 2x3
        affine `to_photo` (a scale, maybe with a quarter turn: boxes stay squares), found by
        `session` (default: the bundle's `model.onnx`)."""
        zoom = scale_of(to_photo)
        out = []
        for x0, y0, tile in _tiles(level):
            scores, centres, sides, keypoints = decode(self._run(tile, session or self.session), self.threshold)
            centres = apply(to_photo, centres + (x0, y0))
            keypoints = apply(to_photo, keypoints + (x0, y0))
            for s, (cx, cy), side, kp in zip(scores, centres, sides, keypoints):
                if side < least:
                    continue
                half = side * zoom / 2
                out.append(FaceBox(cx - half, cy - half, cx + half, cy + half, float(s), tuple(map(tuple, kp))))
        return out

    def _run(self, tile: np.ndarray, session) -> np.ndarray:
        tile = np.ascontiguousarray(tile)  # a turned level is a view with negative strides
        h, w = tile.shape
        ph, pw = -h % ALIGN, -w % ALIGN
        if ph or pw:
            tile = cv2.copyMakeBorder(tile, 0, ph, 0, pw, cv2.BORDER_REPLICATE)
        x = tile.astype(np.float32)[None, :, :, None]
        x *= np.float32(1 / 255)  # scaled in place: one float copy of the tile, not two
        return session.run(None, {session.get_inputs()[0].name: x})[0][0]

    def _near_size(self, window: np.ndarray, side: float) -> list[FaceBox]:
        return [b for b in self.detect(window, min_side=side * 0.6) if b.side < side * 1.6]


def _first_level(photo: np.ndarray, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """The photo area-resized by `scale` (never enlarged) and the level's map to the photo. A
    large photo is halved exactly first (OpenCV's area halving is ~40x faster than a fractional
    area resize: a 12-MP photo's detect 3x faster), then resized by what is left (at most 2x)."""
    to_photo = np.eye(2, 3)
    while scale <= 0.5 and min(photo.shape) >= 4:
        photo, back = area_halved(photo)
        to_photo = compose(to_photo, back)
        scale *= 2
    return _shrunk(photo, scale, to_photo)


def _shrunk(image: np.ndarray, scale: float, to_photo: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`image` area-resized by `scale` (never enlarged) and the new level's map to the photo.
    (Bilinear would be ~5x faster, but the finder then reported 3x the false faces beside pasted
    faces in benchmarks/finder.py; halving the coarser levels too flipped a few faces either way.)"""
    h, w = image.shape
    new_w, new_h = max(1, round(w * scale)), max(1, round(h * scale))
    if (new_w, new_h) == (w, h):
        return image, to_photo
    return _resized(image, (new_w, new_h), to_photo)


def _resized(image: np.ndarray, size: tuple[int, int], to_photo: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`image` area-resized to `size` (w, h) and its map to the photo (the level's own, composed)."""
    small, back = area_resized(image, size)
    return small, compose(to_photo, back)


def _filled_in(unturned: list[FaceBox], turned: list[FaceBox]) -> list[FaceBox]:
    """The unturned view's candidates, best first, then those of the turned views that box a face
    no kept candidate boxes (SAME_FACE). A turned view's candidate on a kept box
    that proposes something new, a box (IoU SAME_BOX) or a roll (SAME_ROLL) no view of it has,
    becomes one of that box's `other_views`: the network's keypoints (so the roll a crop is turned
    by) hold only in the view where a face is near upright, which is not always the best-scoring
    one (merged by score alone, 1 in 30 upright web faces was lost), so the landmark stage fits
    the other views where the box's own fit is doubtful, and the detector still reports one box a face."""
    kept = list(unturned)
    for box in sorted(turned, key=lambda b: -b.score):
        same = [i for i, a in enumerate(kept) if iou(a, box) >= SAME_FACE]
        if not same:
            kept.append(box)
        elif not any(_same_view(v, box) for i in same for v in (kept[i], *kept[i].other_views)):
            first = kept[same[0]]
            kept[same[0]] = replace(first, other_views=(*first.other_views, box))
    return kept


def _same_view(a: FaceBox, b: FaceBox) -> bool:
    """Whether two candidates propose the same crop: about the same box at about the same roll."""
    return iou(a, b) >= SAME_BOX and abs((a.roll - b.roll + 180) % 360 - 180) <= SAME_ROLL


def _unturn(k: int, shape: tuple[int, int]) -> np.ndarray:
    """The 2x3 affine from the pixels of `np.rot90(image, k)` to those of `image` (of `shape`)."""
    h, w = shape
    rows = (
        ((1.0, 0, 0), (0, 1, 0)),
        ((0.0, -1, w - 1), (1, 0, 0)),
        ((-1.0, 0, w - 1), (0, -1, h - 1)),
        ((0.0, 1, 0), (-1, 0, h - 1)),
    )[k % 4]
    return np.array(rows)


def _tiles(image: np.ndarray):
    """(x0, y0, view) tiles of at most TILE px a side, overlapping by OVERLAP."""
    h, w = image.shape
    if max(h, w) <= TILE:
        yield 0, 0, image
        return
    step = TILE - OVERLAP
    for y0 in range(0, max(1, h - OVERLAP), step):
        for x0 in range(0, max(1, w - OVERLAP), step):
            yield x0, y0, image[y0 : y0 + TILE, x0 : x0 + TILE]
