"""The Python API: load a model by name or path, predict landmarks, get typed results.

Two runtimes sit behind one interface: ONNX Runtime for a bundle that has `model.onnx` (light,
no TensorFlow) and Keras for one that only has `model.keras` (fresh training runs).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from facemark.bundle import CONFIG_NAME, KERAS_NAME, ONNX_NAME, ModelConfig, resolve_model
from facemark.defaults import DEFAULT_DETECTOR, DEFAULT_MODEL
from facemark.detection import Detector, FaceBox, distinct, get_detector
from facemark.errors import FacemarkError
from facemark.imaging import (
    CropSpec,
    apply,
    as_image,
    crop_face,
    read_image,
    to_gray,
    to_original,
    whole_image_box,
    working_copy,
)
from facemark.schemes import Scheme
from facemark.sessions import one_thread_session

BACKENDS = ("auto", "onnx", "keras")


@dataclass(frozen=True)
class Landmark:
    name: str
    x: float
    y: float


@dataclass
class FaceLandmarks:
    """One face's points in the caller's pixels, with the scheme that names them."""

    points: np.ndarray = field(repr=False)  # (K, 2) float, original pixels
    scheme: Scheme = field(repr=False)
    box: tuple[float, float, float, float]  # the face box the crop was built from
    score: float = 1.0

    @property
    def landmarks(self) -> list[Landmark]:
        return [Landmark(n, float(x), float(y)) for n, (x, y) in zip(self.scheme.point_names, self.points)]

    @property
    def centre(self) -> tuple[float, float]:
        return (self.box[0] + self.box[2]) / 2, (self.box[1] + self.box[3]) / 2

    def centred_in(self, box) -> bool:
        """Whether this face's centre lies inside `box` (x0, y0, x1, y1): which face is whose."""
        x, y = self.centre
        return box[0] <= x <= box[2] and box[1] <= y <= box[3]

    def mapped(self, matrix: np.ndarray) -> FaceLandmarks:
        """This face in another pixel frame (2x3 affine from this frame's pixels to that one's)."""
        (x0, y0), (x1, y1) = apply(matrix, np.array([self.box[:2], self.box[2:]], dtype=np.float64))
        return FaceLandmarks(apply(matrix, self.points), self.scheme, (x0, y0, x1, y1), self.score)

    def to_dict(self) -> dict:
        return {
            "box": [round(float(v), 2) for v in self.box],
            "score": round(float(self.score), 4),
            "points": [{"name": p.name, "x": round(p.x, 2), "y": round(p.y, 2)} for p in self.landmarks],
        }


class _KerasRunner:
    def __init__(self, path: Path):
        from facemark.models import load_keras_model

        self.model = load_keras_model(path)
        self.outputs = int(np.prod(self.model.output_shape[1:]))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self.model.predict_on_batch(x))


# Faces per ONNX Runtime call. This network's activations for a few dozen faces fit in the CPU
# caches; a batch of 1,024 in one call runs about half as fast.
MICRO_BATCH = 32


class _OnnxRunner:
    """ONNX Runtime sessions of one thread each: a large batch is split across them, in
    cache-sized calls, which beats one session's own threading on many small convolutions."""

    def __init__(self, path: Path, threads: int | None):
        self.path = path
        self.workers = threads or os.cpu_count() or 1
        self.sessions = [self._session()]  # the others start with the first large batch
        self.input = self.sessions[0].get_inputs()[0].name
        dims = self.sessions[0].get_outputs()[0].shape[1:]
        self.outputs = int(np.prod(dims)) if all(isinstance(d, int) for d in dims) else None
        self.pool: ThreadPoolExecutor | None = None

    def _session(self):
        return one_thread_session(self.path, "the ONNX model")

    def _run(self, session, x: np.ndarray) -> np.ndarray:
        calls = range(0, len(x), MICRO_BATCH)
        return np.concatenate([session.run(None, {self.input: x[i : i + MICRO_BATCH]})[0] for i in calls])

    def __call__(self, x: np.ndarray) -> np.ndarray:
        if self.workers == 1 or len(x) <= MICRO_BATCH:
            return self._run(self.sessions[0], x)
        if self.pool is None:
            self.sessions += [self._session() for _ in range(self.workers - 1)]
            self.pool = ThreadPoolExecutor(self.workers)
        parts = np.array_split(x, self.workers)
        return np.concatenate(list(self.pool.map(self._run, self.sessions, parts)))


def _onnxruntime_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("onnxruntime") is not None


# Detection re-frames each face from its own points this many times: detector boxes are rough.
REFINE_PASSES = 2
# A real face's points barely move between the last two passes and agree with its mirror image;
# things a detector mistakes for faces make the model wander. Doubt is the mean over the points
# (as a fraction of the box side), not the largest: one occluded or vague point (a hand over the
# mouth, a jaw point) made real faces doubtful. On benchmarks/finder.py --limit 30's first fits,
# mean <= 0.035 kept more real faces than the former largest <= 0.1 with no more false ones, for
# each shipped model (kaggle15 683 vs 681 of 730, false 3 vs 8; kaggle15-l 687 vs 680, 9 vs 10;
# ibug68 678 vs 662, 0 vs 1). 0.032, not 0.035: the 90-epoch kaggle15 settled on the head
# relief of a coin in a face-free photo at 0.0327 (benchmarks/finder.py); at 0.032 it found one
# group-photo face fewer there, ibug68 two held-out faces fewer in benchmarks/human.py.
MAX_DOUBT = 0.032
# A doubtful candidate is fitted again, and kept only if it settles this well, stricter than
# MAX_DOUBT, so that the second chance lets few false faces through: there, of ~795 false first
# fits, none came within 0.025 for kaggle15 and ibug68 and one for kaggle15-l (the former
# largest <= 0.05: none), and more real ones did (kaggle15 658 vs 615, kaggle15-l 677 vs 636,
# ibug68 637 vs 277). The full pipeline (0.035 / 0.025) in benchmarks/human.py: web photos found
# 99.2 -> 100 % (kaggle15), 97.5 -> 99.4 % (ibug68), infants +6-10 points, no NME worse by > 0.11.
SECOND_LOOK_DOUBT = 0.025
# The second look's tries, (box side in the candidate's, turn from its roll in degrees); the
# steadiest fit is taken. The detector often boxes part of a face (eyes and nose), and from a box
# round the whole face the re-framing finds it: so a box twice as large, upright and upside down
# (30 and 4 of the 39 candidates the second look saved in benchmarks/finder.py --limit 30). Its
# keypoints sometimes put a face at the wrong roll, and the landmark model only recovers from a
# roll within about 45 degrees: so the candidate's own box turned a quarter either way and upside
# down. Turns of 45 degrees saved none of those 39 once the finder's coarse levels ran turned
# (finder/runtime.py): dropped, for two sevenths less second-look time; 1,002 of the 1,041
# candidates given a second look there never settle, so its cost is mostly theirs.
SECOND_LOOK_TRIES = ((1.0, 90.0), (1.0, -90.0), (1.0, 180.0), (2.0, 0.0), (2.0, 180.0))
# A fit is a face only if the face it settles on is at least this share of its candidate's box
# side: real faces settled at 0.65-2.5 of it (603 found in benchmarks/finder.py --limit 30); a
# turned-view candidate on a web photo's lower face settled at 0.52 on a made-up face around the
# nose and mouth, and hid the real face from the second look.
MIN_SETTLED = 0.55
# A second-look try whose points move more than this share of the box side in its first
# re-framing is given up before its last, mirrored pass (half its crops): in benchmarks/finder.py
# --limit 30, 4,062 of 5,645 tries moved more, none of the 54 that settled moved over 0.23.
SECOND_LOOK_GIVE_UP = 0.3


class Landmarker:
    """A landmark model ready to run: `Landmarker("kaggle15").detect("group.jpg")`.

    `model` is a shipped model's name, a model or run folder, or a `.keras` / `.onnx` file;
    `detector` a detector's name (facemark, opencv, dlib, mediapipe) or a `Detector`, built on first use;
    `mirror` also runs each face crop's mirror image and averages the two (lower error, twice
    the work; detection and tracking always do this on their last pass). `min_face` (px of the
    original image) is the smallest face `detect` looks for (default: a share of the photo's
    size); small faces in large photos cost more time.
    """

    def __init__(
        self,
        model: str | Path = DEFAULT_MODEL,
        backend: str = "auto",
        threads: int | None = None,
        detector: str | Detector = DEFAULT_DETECTOR,
        mirror: bool = False,
        min_face: float | None = None,
    ):
        if backend not in BACKENDS:
            raise FacemarkError(f"unknown backend {backend!r}; known: {', '.join(BACKENDS)}")
        folder = resolve_model(model)
        self.config = ModelConfig.load(folder)
        self.scheme = self.config.scheme_obj
        self.size = self.config.crop.size
        if self.config.extra.get("train", {}).get("colour"):
            raise FacemarkError(
                f"{folder}: a model trained on colour crops (recipe key colour, a measurement); "
                "facemark runs gray crops, so train without it to use the model"
            )
        onnx_path, keras_path = folder / ONNX_NAME, folder / KERAS_NAME
        explicit = Path(model).suffix if Path(model).is_file() else ""
        if backend == "auto":  # ONNX Runtime unless a .keras file was named or no ONNX file is there
            use_onnx = explicit != ".keras" and onnx_path.exists() and _onnxruntime_available()
            backend = "onnx" if use_onnx or not keras_path.exists() else "keras"
        if backend == "onnx":
            if not onnx_path.exists():
                raise FacemarkError(f"{folder}: no {ONNX_NAME} in this model (export one with 'facemark export')")
            self._run = _OnnxRunner(onnx_path, threads)
        else:
            if not keras_path.exists():
                raise FacemarkError(f"{folder}: no {KERAS_NAME} in this model")
            self._run = _KerasRunner(keras_path)
        if self._run.outputs is not None and self._run.outputs != 2 * self.scheme.num_points:
            raise FacemarkError(
                f"{folder}: the network gives {self._run.outputs} numbers but its scheme {self.scheme.name} "
                f"needs {2 * self.scheme.num_points} ({self.scheme.num_points} points): network and "
                f"{CONFIG_NAME} do not belong together"
            )
        self.backend = backend
        if min_face is not None and not (np.isfinite(min_face) and min_face > 0):
            raise FacemarkError(f"min_face must be a positive number of pixels, got {min_face!r}")
        self._detector = detector
        self.mirror = mirror
        self.min_face = min_face

    @property
    def detector(self) -> Detector:
        if not isinstance(self._detector, Detector):
            self._detector = get_detector(self._detector)
        return self._detector

    def predict_crops(self, crops: np.ndarray, batch: int = 256, mirror: bool | None = None) -> np.ndarray:
        """(N, S, S) uint8 gray crops -> (N, K, 2) points in crop pixels; `mirror` (default: the
        landmarker's) averages each crop's points with its mirror image's."""
        if self.mirror if mirror is None else mirror:
            plain, mirrored = self.predict_with_mirror(crops, batch)
            return (plain + mirrored) / 2
        crops = self._checked(crops)
        x = (crops.astype(np.float32) * np.float32(self.config.pixel_scale))[..., None]
        out = [self._run(x[i : i + batch]) for i in range(0, len(x), batch)] or [
            np.zeros((0, 2 * self.scheme.num_points))
        ]
        return np.concatenate(out).reshape(len(x), -1, 2).astype(np.float64) * self.size

    def predict_with_mirror(self, crops: np.ndarray, batch: int = 256) -> tuple[np.ndarray, np.ndarray]:
        """Each crop's points, and its mirror image's mapped back onto it: two opinions, one batch."""
        crops = self._checked(crops)
        both = self.predict_crops(np.concatenate([crops, crops[:, :, ::-1]]), batch, mirror=False)
        return both[: len(crops)], self._unmirror(both[len(crops) :])

    def _checked(self, crops: np.ndarray) -> np.ndarray:
        crops = np.asarray(crops)
        if crops.ndim != 3 or crops.shape[1:] != (self.size, self.size):
            raise FacemarkError(f"crops must have shape (N, {self.size}, {self.size}), got {crops.shape}")
        return crops

    def crop(self, image: np.ndarray, box=None) -> tuple[np.ndarray, np.ndarray]:
        """The model's input crop for a face box, or for the whole image when `box` is None."""
        if box is None:
            return crop_face(image, whole_image_box(image), CropSpec(self.size))
        return crop_face(image, np.asarray(box, dtype=np.float64), self.config.crop)

    def predict(self, image: np.ndarray | str | Path, box=None) -> FaceLandmarks:
        """Landmarks of one face: in `box` (x0, y0, x1, y1), or the whole image as the face crop."""
        return self.predict_many([image], [box])[0]

    def predict_many(self, images: list, boxes: list | None = None) -> list[FaceLandmarks]:
        """One face per image (paths or arrays), run as a single batch; `boxes`, when given, has
        one box (or None: the whole image) per image."""
        if boxes is None:
            boxes = [None] * len(images)
        elif len(boxes) != len(images):
            raise FacemarkError(f"predict_many got {len(images)} images but {len(boxes)} boxes (one per image)")
        crops, matrices, used = [], [], []
        for image, box in zip(images, boxes):
            image = _image(image)
            box = whole_image_box(image) if box is None else _checked_box(box, image.shape)
            crop, matrix = self.crop(to_gray(image), box)
            crops.append(crop)
            matrices.append(matrix)
            used.append(box)
        if not crops:
            return []
        points = self.predict_crops(np.stack(crops))
        return [
            FaceLandmarks(to_original(p, m), self.scheme, tuple(float(v) for v in b))
            for p, m, b in zip(points, matrices, used)
        ]

    def detect(self, image: np.ndarray | str | Path) -> list[FaceLandmarks]:
        """Every face in a photo, left to right; an empty list when there is none."""
        return self.detect_many([image])[0]

    def detect_many(self, images: list) -> list[list[FaceLandmarks]]:
        """Every face in each image (paths or arrays); all faces go through the model together."""
        return self.detect_working([self.working_copy(_image(im)) for im in images])

    def working_copy(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The copy of a photo `detect_working` wants (`imaging.working_copy` for this `min_face`)."""
        return working_copy(image, min_face=self.min_face)

    def detect_working(self, copies: list[tuple[np.ndarray, np.ndarray]]) -> list[list[FaceLandmarks]]:
        """`detect_many` on `imaging.working_copy`s (gray copy, matrix to original pixels): lets a
        caller that decodes large photos keep only the small copies. Results in original pixels."""
        grays = [g for g, _ in copies]
        found = [self.detector.detect(g, self._min_side(m)) for g, m in copies]
        owners = [i for i, boxes in enumerate(found) for _ in boxes]
        flat = [b for boxes in found for b in boxes]
        points, doubt = self._fit_views(grays, owners, flat)
        # A face the detector also saw at another roll is fitted from those views too, where its
        # first view's fit is doubtful (the view near upright is not always the first).
        more = [(owners[n], v) for n, b in enumerate(flat) if doubt[n] > MAX_DOUBT for v in b.other_views]
        if more:
            owners += [i for i, _ in more]
            flat += [v for _, v in more]
            p, d = self._fit_views(grays, owners[-len(more) :], flat[-len(more) :])
            points, doubt = np.concatenate([points, p]), np.concatenate([doubt, d])
        boxes = np.array([b.as_array() for b in flat]).reshape(-1, 4)
        rolls = np.array([b.roll for b in flat])
        self._second_look(grays, owners, boxes, rolls, points, doubt)
        self._drop_shrunk(points, boxes, doubt)
        out: list[list[FaceLandmarks]] = [[] for _ in copies]
        for n in self._distinct_faces(np.array(owners, dtype=int), points, doubt, boxes):
            box, i = flat[n], owners[n]
            face = FaceLandmarks(points[n], self.scheme, (box.x0, box.y0, box.x1, box.y1), box.score)
            out[i].append(face.mapped(copies[i][1]))
        return out

    def _fit_views(self, grays, owners: list[int], views: list[FaceBox]) -> tuple[np.ndarray, np.ndarray]:
        """`fit_boxes` from detector boxes, each crop turned by its box's roll; shrunk fits dropped."""
        boxes = np.array([b.as_array() for b in views]).reshape(-1, 4)
        points, doubt = self.fit_boxes(grays, owners, boxes, rolls=np.array([b.roll for b in views]))
        self._drop_shrunk(points, boxes, doubt)
        return points, doubt

    def _second_look(self, grays, owners, boxes, rolls, points: np.ndarray, doubt: np.ndarray) -> None:
        """Fit each doubtful candidate again from each of SECOND_LOOK_TRIES (a box about the
        same centre, a roll) and take the steadiest fit (in `points` and `doubt`) where it settles
        within SECOND_LOOK_DOUBT. Costs nothing when every candidate was face-like at once."""
        again = np.flatnonzero((doubt > MAX_DOUBT) & ~self._holds_a_found_face(owners, boxes, points, doubt))
        if not len(again):
            return
        centre = (boxes[again, :2] + boxes[again, 2:]) / 2
        half = (boxes[again, 2:] - boxes[again, :2]) / 2
        # All tries in one batch: try t of candidate c is row t * len(again) + c.
        wider = np.concatenate([np.hstack([centre - half * k, centre + half * k]) for k, _ in SECOND_LOOK_TRIES])
        turns = np.array([t for _, t in SECOND_LOOK_TRIES])[:, None]
        tries = len(SECOND_LOOK_TRIES)
        p, d = self.fit_boxes(
            grays,
            [owners[i] for i in again] * tries,
            wider,
            rolls=(rolls[again][None, :] + turns).ravel(),
            give_up=SECOND_LOOK_GIVE_UP,
        )
        best = d.reshape(tries, -1).argmin(axis=0) * len(again) + np.arange(len(again))
        took = d[best] <= SECOND_LOOK_DOUBT
        points[again[took]], doubt[again[took]] = p[best[took]], d[best[took]]

    def _drop_shrunk(self, points: np.ndarray, boxes: np.ndarray, doubt: np.ndarray) -> None:
        """Mark as not a face (in `doubt`) each fit that settled on a face far smaller than its
        candidate's box: a small face the model made up inside part of a face (a nose and mouth),
        which would otherwise hide the real face around it from the second look."""
        regress = self.config.box_regressor
        if regress is None or not len(points):
            return
        settled = regress(points)
        doubt[(settled[:, 2] - settled[:, 0]) < MIN_SETTLED * (boxes[:, 2] - boxes[:, 0])] = np.inf

    def _holds_a_found_face(self, owners, boxes: np.ndarray, points: np.ndarray, doubt: np.ndarray) -> np.ndarray:
        """Which candidates' boxes hold the eyes of a face already found in their image: a second
        look from there could only find that face again (a box across two faces often does)."""
        owners = np.asarray(owners, dtype=int)
        found = np.flatnonzero(doubt <= MAX_DOUBT)
        eyes = points[found][:, list(self.scheme.ocular)].mean(axis=1)  # (F, 2)
        inside = (eyes[None] >= boxes[:, None, :2]).all(-1) & (eyes[None] <= boxes[:, None, 2:]).all(-1)
        return (inside & (owners[:, None] == owners[found][None])).any(axis=1)

    def _distinct_faces(self, owners: np.ndarray, points: np.ndarray, doubt: np.ndarray, boxes: np.ndarray):
        """The candidates to report, in the detector's order: face-like ones (doubt within
        MAX_DOUBT), each face once. Two candidates (a face and a part of it, one face at two
        pyramid levels, or one fitted upside down) often settle on the same eyes once re-framed
        from their points: they are compared by a square of the re-framed box's side about the
        eyes' midpoint, and the steadier of each pair is kept."""
        regress = self.config.box_regressor
        settled = regress(points) if regress is not None and len(points) else boxes
        eyes = points[:, list(self.scheme.ocular)].mean(axis=1)
        half = (settled[:, 2:] - settled[:, :2]).max(axis=1, keepdims=True) / 2
        squares = np.concatenate([eyes - half, eyes + half], axis=1)
        kept = []
        for i in np.unique(owners):
            mine = np.flatnonzero((owners == i) & (doubt <= MAX_DOUBT))
            kept += mine[distinct(squares[mine], -doubt[mine])].tolist()
        return sorted(kept)

    def _min_side(self, matrix: np.ndarray) -> float | None:
        """`min_face` in a working copy's pixels (its matrix maps them to the photo's)."""
        return None if self.min_face is None else self.min_face / matrix[0, 0]

    def fit_boxes(
        self,
        grays: list[np.ndarray],
        owners: list[int],
        boxes: np.ndarray,
        passes: int = REFINE_PASSES,
        rolls: np.ndarray | None = None,
        give_up: float | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Points (N, K, 2) of the face in each box of image `grays[owners[n]]`, and how face-like
        each is: the larger of two disagreements, each the mean over the points (fraction of the
        box side), between the last two passes and between the crop and its mirror image. Each
        crop is turned upright by its roll (degrees; default 0); boxes and rolls are re-framed
        `passes` times from the points. A fit any of whose points moves more than `give_up`
        (fraction of the box side) in a re-framing before the last is abandoned there (doubt
        inf), sparing the crops of its later passes.
        """
        regress = self.config.box_regressor
        passes = passes if regress else 0
        points = np.zeros((len(boxes), self.scheme.num_points, 2))
        doubt = np.zeros(len(boxes))
        boxes = np.array(boxes, dtype=np.float64).reshape(-1, 4)
        rolls = np.zeros(len(boxes)) if rolls is None else np.array(rolls, dtype=np.float64)
        live = np.arange(len(boxes))  # the fits still going
        for p in range(passes + 1):
            if not len(live):
                break
            crops, matrices = zip(*(crop_face(grays[owners[i]], boxes[i], self.config.crop, rolls[i]) for i in live))
            last = p == passes
            if last:  # the mirror image's points: a second opinion, averaged in
                pred, mirrored = self.predict_with_mirror(np.stack(crops))
                doubt[live] = np.abs(pred - mirrored).max(axis=2).mean(axis=1) / self.size * self.config.crop.scale
                pred = (pred + mirrored) / 2
            else:
                pred = self.predict_crops(np.stack(crops), mirror=False)
            new = np.stack([to_original(q, m) for q, m in zip(pred, matrices)])
            if p:  # how far this re-framing moved each point
                moved = np.abs(new - points[live]).max(axis=2) / (boxes[live, 2:3] - boxes[live, 0:1])
                if last:
                    doubt[live] = np.maximum(doubt[live], moved.mean(axis=1))
            points[live] = new
            if not last:
                if p and give_up is not None:
                    jumped = moved.max(axis=1) > give_up
                    doubt[live[jumped]] = np.inf
                    live = live[~jumped]
                if len(live):
                    boxes[live], rolls[live] = regress(points[live]), regress.roll(points[live])
        return points, doubt

    def _unmirror(self, points: np.ndarray) -> np.ndarray:
        """Points predicted on mirrored crops, mapped back onto the unmirrored crop (in the
        labels' convention, which may sit `mirror_offset` right of the symmetric spot)."""
        out = points[:, self.scheme.flip_permutation()].copy()
        out[..., 0] = self.size - 1 + 2 * self.config.mirror_offset - out[..., 0]
        return out


def _image(image: np.ndarray | str | Path) -> np.ndarray:
    """A path decoded (gray) or a caller's array checked, as the pipeline's uint8 image."""
    return read_image(image) if isinstance(image, str | Path) else as_image(image)


def _checked_box(box, shape: tuple[int, ...]) -> np.ndarray:
    """A caller's face box as (x0, y0, x1, y1) floats that cover part of an image of `shape`."""
    try:
        b = np.asarray(box, dtype=np.float64).reshape(4)
    except (TypeError, ValueError):
        raise FacemarkError(f"a face box is (x0, y0, x1, y1), got {box!r}") from None
    h, w = shape[:2]
    if not np.isfinite(b).all() or b[2] <= b[0] or b[3] <= b[1]:
        raise FacemarkError(f"face box {b.tolist()} is not a box (x0 < x1 and y0 < y1, finite)")
    if b[2] <= -0.5 or b[3] <= -0.5 or b[0] >= w - 0.5 or b[1] >= h - 0.5:
        raise FacemarkError(f"face box {b.tolist()} lies outside the {w}x{h} image")
    return b
