"""Landmark schemes as data: point names, left/right flip pairs and the inter-ocular normaliser.

"Left" and "right" are always the subject's, as in the Kaggle column names and the iBUG layout.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from facemark.errors import FacemarkError


@dataclass(frozen=True)
class Scheme:
    """A named set of landmarks; everything else in the package reads point semantics from here."""

    name: str
    point_names: tuple[str, ...]
    flip_pairs: tuple[tuple[int, int], ...]
    # Indices of the two outer eye corners: their distance normalises errors (NME, inter-ocular).
    ocular: tuple[int, int]
    # For a scheme too sparse to bound a face: where each point sits in the square face box the
    # crops are built from (centre 0, side 1), so its faces are framed like 68-point ones.
    frame: tuple[tuple[float, float], ...] | None = None
    # A training scheme (`supervised`): the model scheme it extends, and the sparser schemes
    # whose points follow the model's own in its targets, each derived from them by CONVERSIONS.
    base: str | None = None
    derived: tuple[str, ...] = ()

    @property
    def num_points(self) -> int:
        return len(self.point_names)

    @property
    def model(self) -> Scheme:
        """The scheme a network trained on these targets predicts (itself, unless a training scheme)."""
        return SCHEMES[self.base] if self.base else self

    def derivation(self) -> np.ndarray:
        """(targets, model points) matrix: a prediction's points, then each derived scheme's from them."""
        base = self.model
        return np.vstack([np.eye(base.num_points)] + [CONVERSIONS[base.name, d] for d in self.derived])

    def flip_permutation(self) -> np.ndarray:
        """Index array that relabels points after a horizontal mirror (left <-> right)."""
        perm = np.arange(self.num_points)
        for a, b in self.flip_pairs:
            perm[a], perm[b] = b, a
        return perm


_KAGGLE_NAMES = (
    "left_eye_center",
    "right_eye_center",
    "left_eye_inner_corner",
    "left_eye_outer_corner",
    "right_eye_inner_corner",
    "right_eye_outer_corner",
    "left_eyebrow_inner_end",
    "left_eyebrow_outer_end",
    "right_eyebrow_inner_end",
    "right_eyebrow_outer_end",
    "nose_tip",
    "mouth_left_corner",
    "mouth_right_corner",
    "mouth_center_top_lip",
    "mouth_center_bottom_lip",
)


def _pairs_by_name(names: tuple[str, ...]) -> tuple[tuple[int, int], ...]:
    index = {n: i for i, n in enumerate(names)}
    pairs = []
    for i, n in enumerate(names):
        if n.startswith("left_") or "_left_" in n:
            other = n.replace("left_", "right_", 1)
            pairs.append((i, index[other]))
    return tuple(pairs)


KAGGLE15 = Scheme(
    name="kaggle15",
    point_names=_KAGGLE_NAMES,
    flip_pairs=_pairs_by_name(_KAGGLE_NAMES),
    ocular=(_KAGGLE_NAMES.index("left_eye_outer_corner"), _KAGGLE_NAMES.index("right_eye_outer_corner")),
)


def _ibug_names() -> tuple[str, ...]:
    groups = [
        ("jaw", 17),
        ("right_brow", 5),
        ("left_brow", 5),
        ("nose_bridge", 4),
        ("nose_base", 5),
        ("right_eye", 6),
        ("left_eye", 6),
        ("outer_lip", 12),
        ("inner_lip", 8),
    ]
    return tuple(f"{g}_{i:02d}" for g, n in groups for i in range(n))


# The standard 300-W mirror pairs, 0-based.
_IBUG_PAIRS = (
    *((i, 16 - i) for i in range(8)),  # jaw
    *((17 + i, 26 - i) for i in range(5)),  # brows
    (31, 35),
    (32, 34),  # nostrils
    (36, 45),
    (37, 44),
    (38, 43),
    (39, 42),
    (40, 47),
    (41, 46),  # eyes
    (48, 54),
    (49, 53),
    (50, 52),
    (55, 59),
    (56, 58),  # outer lip
    (60, 64),
    (61, 63),
    (65, 67),  # inner lip
)

IBUG68 = Scheme(name="ibug68", point_names=_ibug_names(), flip_pairs=_IBUG_PAIRS, ocular=(36, 45))

# MTFL's five human-marked points (../shared/data/mtfl5): eye centres where people see the pupil,
# nose tip, mouth corners. Its errors are normalised by the eye centres' distance (inter-pupil).
_MTFL_NAMES = ("right_eye_center", "left_eye_center", "nose_tip", "mouth_right_corner", "mouth_left_corner")
# Its frame: the mean of ytf68's 3,672 labelled faces (derived points in their 68-point box),
# mirrored to symmetry (python -c: see docs/training.md, "Framing 5-point faces").
_MTFL_FRAME = ((-0.2024, -0.2874), (0.2024, -0.2874), (0.0, -0.0454), (-0.1640, 0.1619), (0.1640, 0.1619))
MTFL5 = Scheme(name="mtfl5", point_names=_MTFL_NAMES, flip_pairs=((0, 1), (3, 4)), ocular=(0, 1), frame=_MTFL_FRAME)

SCHEMES: dict[str, Scheme] = {s.name: s for s in (KAGGLE15, IBUG68, MTFL5)}


def get_scheme(name: str) -> Scheme:
    """Look a scheme up by name, with an error that lists the known ones."""
    try:
        return SCHEMES[name]
    except KeyError:
        raise FacemarkError(f"unknown scheme {name!r}; known: {', '.join(SCHEMES)}") from None


# ibug68 -> kaggle15: each kaggle point is the mean of these ibug68 points (0-based).
_IBUG_TO_KAGGLE = {
    "left_eye_center": range(42, 48),
    "right_eye_center": range(36, 42),
    "left_eye_inner_corner": [42],
    "left_eye_outer_corner": [45],
    "right_eye_inner_corner": [39],
    "right_eye_outer_corner": [36],
    "left_eyebrow_inner_end": [22],
    "left_eyebrow_outer_end": [26],
    "right_eyebrow_inner_end": [21],
    "right_eyebrow_outer_end": [17],
    "nose_tip": [30],
    "mouth_left_corner": [54],
    "mouth_right_corner": [48],
    "mouth_center_top_lip": [51],
    "mouth_center_bottom_lip": [57],
}


def _matrix(source: Scheme, target: Scheme, means: dict[str, list[str] | range]) -> np.ndarray:
    """target x source matrix: each target point is the mean of the named (or numbered) source points."""
    m = np.zeros((target.num_points, source.num_points), dtype=np.float64)
    for row, name in enumerate(target.point_names):
        idx = [source.point_names.index(v) if isinstance(v, str) else v for v in means[name]]
        m[row, idx] = 1.0 / len(idx)
    return m


# Which schemes convert into which, as data: every conversion is a linear map of points. A
# derived eye centre (mean of six contour points) sits near the marked pupil, not on it (mtfl5's
# README): conversions say what a model predicts, not what a person would mark.
CONVERSIONS: dict[tuple[str, str], np.ndarray] = {
    ("ibug68", "kaggle15"): _matrix(IBUG68, KAGGLE15, _IBUG_TO_KAGGLE),
    ("ibug68", "mtfl5"): _matrix(IBUG68, MTFL5, {n: _IBUG_TO_KAGGLE[n] for n in _MTFL_NAMES}),
    ("kaggle15", "mtfl5"): _matrix(KAGGLE15, MTFL5, {n: [n] for n in _MTFL_NAMES}),
}
IBUG68_TO_KAGGLE15 = CONVERSIONS["ibug68", "kaggle15"]


def convertible(source: Scheme, target: Scheme) -> bool:
    """Whether points labelled in `source` can be scored or trained as `target`."""
    return source == target or (source.name, target.name) in CONVERSIONS


def convert_points(
    points: np.ndarray, mask: np.ndarray, source: Scheme, target: Scheme
) -> tuple[np.ndarray, np.ndarray]:
    """Convert (..., K, 2) points and their (..., K) presence mask between schemes.

    A derived point is present only when every source point it averages is present.
    """
    if not convertible(source, target):
        raise FacemarkError(f"cannot convert {source.name} points to {target.name}")
    if source == target:
        return points, mask
    m = CONVERSIONS[source.name, target.name]
    filled = np.where(mask[..., None], points, 0.0)
    out = np.einsum("tk,...kc->...tc", m, filled)
    used = m > 0
    out_mask = np.all(~used | mask[..., None, :], axis=-1)
    out = np.where(out_mask[..., None], out, np.nan)
    return out.astype(np.float32), out_mask


# Partial labels for training: a sparse scheme's points are some of a denser scheme's, the rest
# stay missing (masked out of the loss). Kept apart from CONVERSIONS: scoring needs every point
# its normaliser uses, and a 5-point face has no kaggle15 eye corners to normalise by.
PARTIAL: dict[tuple[str, str], dict[str, str]] = {
    ("mtfl5", "kaggle15"): {n: n for n in _MTFL_NAMES},
}


def trainable(source: Scheme, target: Scheme) -> bool:
    """Whether faces labelled in `source` can supervise a `target` model (some of its points)."""
    if target.base:
        return source.name in target.derived or trainable(source, target.model)
    return convertible(source, target) or (source.name, target.name) in PARTIAL


# Which sparser schemes may supervise a model through its conversion (CONVERSIONS keys):
# mtfl5's photos are framed like 68-point faces; kaggle15's data are ready-made crops framed
# for kaggle15 models only.
THROUGH = {("ibug68", "mtfl5")}


def supervised(model: Scheme, sources: list[Scheme]) -> Scheme:
    """The scheme a `model`'s training targets are held in when some `sources` mark only points
    derived from the model's own (mtfl5's eye centre is the mean of ibug68's six eye points):
    the model's points, then each such source's, so those faces supervise the model through the
    conversion (the loss derives them from each prediction). `model` itself when none does."""
    derived = tuple(
        s.name for s in dict.fromkeys(sources) if not trainable(s, model) and (model.name, s.name) in THROUGH
    )
    if not derived:
        return model
    names, pairs = list(model.point_names), list(model.flip_pairs)
    for name in derived:
        s, k = SCHEMES[name], len(names)
        names += [f"{name}.{n}" for n in s.point_names]
        pairs += [(a + k, b + k) for a, b in s.flip_pairs]
    return Scheme(
        name="+".join((model.name, *derived)),
        point_names=tuple(names),
        flip_pairs=tuple(pairs),
        ocular=model.ocular,
        base=model.name,
        derived=derived,
    )


def training_points(
    points: np.ndarray, mask: np.ndarray, source: Scheme, target: Scheme
) -> tuple[np.ndarray, np.ndarray]:
    """(K, 2) points and mask of `source` as `target` training labels: converted where every
    target point is derivable, else the shared points placed and the others missing (NaN); in a
    training scheme (`supervised`), a derived scheme's faces fill only their own part."""
    if target.base:
        out = np.full((target.num_points, 2), np.nan, np.float32)
        out_mask = np.zeros(target.num_points, bool)
        if source.name in target.derived:
            start = target.point_names.index(f"{source.name}.{source.point_names[0]}")
            part = slice(start, start + source.num_points)
            out[part], out_mask[part] = np.where(mask[:, None], points, np.nan), mask
        else:
            k = target.model.num_points
            out[:k], out_mask[:k] = training_points(points, mask, source, target.model)
        return out, out_mask
    if convertible(source, target):
        return convert_points(points, mask, source, target)
    if (source.name, target.name) not in PARTIAL:
        raise FacemarkError(f"{source.name} points cannot supervise a {target.name} model")
    out = np.full((target.num_points, 2), np.nan, np.float32)
    out_mask = np.zeros(target.num_points, bool)
    for s_name, t_name in PARTIAL[source.name, target.name].items():
        i, j = source.point_names.index(s_name), target.point_names.index(t_name)
        if mask[i]:
            out[j], out_mask[j] = points[i], True
    return out, out_mask
