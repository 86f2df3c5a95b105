"""An adult face warped toward an infant's proportions: a training augmentation for the data we lack.

Why: the held-out infants are the set every model misses most (a quarter lost), and only 159
infant faces train. Infant faces differ from adult ones most in their rows: in the 68-point box
(units of its side, rows below the eye line; InfAnFace's hand-marked training infants against
ytf68's training faces) the nose tip sits at 0.122 instead of 0.245, the mouth at 0.384 instead
of 0.460 and the chin at 0.633 instead of 0.767, while the eye distance is about the same share
of the box (0.398 / 0.409). So the warp maps image rows only, piecewise linearly through those
knots, on the face's box frame: points move with the pixels exactly, and `strength` in [0, 1]
goes from the adult to the infant mean. (Measured with `python scripts/infant_shape.py`.)
"""

from __future__ import annotations

import numpy as np

from facemark.imaging import cv2

EYE_ROW = -0.298  # the eye line relative to the 68-point box centre, in box sides (ytf68 mean)
ADULT_ROWS = (0.0, 0.245, 0.460, 0.767)  # eye line, nose tip, mouth, chin below the eye line
INFANT_ROWS = (0.0, 0.122, 0.384, 0.633)
_FAR = 1e3  # knots far above and below: rows there move as their nearest knot does


def row_knots(strength: float) -> tuple[np.ndarray, np.ndarray]:
    """(from, to) knots of the row map in box sides below the eye line, `strength` of the way."""
    adult = np.array((-_FAR, *ADULT_ROWS, ADULT_ROWS[-1] + _FAR))
    infant = np.array((-_FAR, *INFANT_ROWS, INFANT_ROWS[-1] + _FAR))
    return adult, adult + strength * (infant - adult)


def toward_infant(
    image: np.ndarray, points: np.ndarray, centre_y: float, side: float, strength: float, recentre: bool = False
) -> tuple[np.ndarray, np.ndarray, float]:
    """`image` (gray or colour) and its (..., 2) `points` (NaN stays NaN) warped toward the infant
    rows, for a face whose 68-point box has its centre at row `centre_y` and side `side` px.
    Returns the image, the points and the box centre's new row. `recentre` moves the warped face
    down so that its box is centred where the adult's was (a crop framed on it stays framed)."""
    eye = centre_y + EYE_ROW * side
    src, dst = row_knots(strength)
    drop = (src[-2] - dst[-2]) / 2  # the box's centre rises half as far as the chin
    dst = dst + (drop if recentre else 0.0)
    h, w = image.shape[:2]
    rows = eye + side * np.interp((np.arange(h) - eye) / side, dst, src)  # each output row's source
    map_y = np.repeat(rows.astype(np.float32)[:, None], w, axis=1)
    map_x = np.repeat(np.arange(w, dtype=np.float32)[None, :], h, axis=0)
    out = cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    moved = np.array(points, dtype=np.float64, copy=True)
    moved[..., 1] = eye + side * np.interp((moved[..., 1] - eye) / side, src, dst)
    return out, moved.astype(np.asarray(points).dtype), centre_y - (0.0 if recentre else drop * side)
