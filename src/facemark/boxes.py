"""From a face's landmarks back to the face box the model's crops are built from.

A detector's box never matches the box a landmark model was trained on (the bounding box of the
68 ground-truth points, or the Kaggle crop itself), and in video the next crop must come from
this frame's points. `BoxRegressor` learns that box from the points: the points are aligned to
a mean shape (removing position, size and roll), a linear map gives the box centre and side in
that frame, and the alignment is undone. It is fitted at training time and saved in the model's
`facemark.json`, so every model knows how to re-frame its own faces.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def _align(points: np.ndarray, reference: np.ndarray) -> tuple[np.ndarray, complex]:
    """Centroid and complex similarity `a` with points - centroid ~ a * reference (as complex)."""
    z = points[..., 0] + 1j * points[..., 1]
    mu = z.mean(axis=-1, keepdims=True)
    r = reference[:, 0] + 1j * reference[:, 1]
    a = ((z - mu) * np.conj(r)).sum(axis=-1) / (np.abs(r) ** 2).sum()
    return mu[..., 0], a


@dataclass
class BoxRegressor:
    """points (K, 2) -> square crop box (x0, y0, x1, y1) in the model's crop convention."""

    mean_shape: np.ndarray  # (K, 2), centred, unit RMS radius
    weights: np.ndarray  # (2K + 1, 3): aligned points and a bias -> box centre (x, y) and side

    @classmethod
    def fit(cls, points: np.ndarray, centres: np.ndarray, sides: np.ndarray, ridge: float = 1e-3) -> BoxRegressor:
        """Least squares over complete samples: points (N, K, 2), centres (N, 2), sides (N,)."""
        keep = np.all(np.isfinite(points), axis=(1, 2))
        points, centres, sides = points[keep], centres[keep], sides[keep]
        if len(points) < 2 * points.shape[1] + 1:
            raise ValueError("too few complete samples to fit the box regressor")
        mean = points - points.mean(axis=1, keepdims=True)
        mean = (mean / np.sqrt((mean**2).sum(axis=2).mean(axis=1))[:, None, None]).mean(axis=0)
        for _ in range(3):  # Procrustes mean: align every shape to the current mean, average again
            mu, a = _align(points, mean)
            z = (points[..., 0] + 1j * points[..., 1] - mu[:, None]) / a[:, None]
            mean = np.stack([z.real, z.imag], axis=-1).mean(axis=0)
            mean /= np.sqrt((mean**2).sum(axis=1).mean())
        features, mu, a = cls._features(points, mean)
        c = ((centres[:, 0] + 1j * centres[:, 1]) - mu) / a
        targets = np.stack([c.real, c.imag, sides / np.abs(a)], axis=1)
        x = np.hstack([features, np.ones((len(features), 1))])
        w = np.linalg.solve(x.T @ x + ridge * np.eye(x.shape[1]), x.T @ targets)
        return cls(mean, w)

    @staticmethod
    def _features(points: np.ndarray, mean: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        mu, a = _align(points, mean)
        z = (points[..., 0] + 1j * points[..., 1] - mu[..., None]) / a[..., None]
        return np.concatenate([z.real, z.imag], axis=-1), mu, a

    def __call__(self, points: np.ndarray) -> np.ndarray:
        """Box (x0, y0, x1, y1) for points (K, 2), or boxes (N, 4) for points (N, K, 2)."""
        points = np.asarray(points, dtype=np.float64)
        features, mu, a = self._features(points, self.mean_shape)
        out = np.concatenate([features, np.ones((*features.shape[:-1], 1))], axis=-1) @ self.weights
        centre = mu + a * (out[..., 0] + 1j * out[..., 1])
        half = np.abs(a) * out[..., 2] / 2
        return np.stack([centre.real - half, centre.imag - half, centre.real + half, centre.imag + half], axis=-1)

    def roll(self, points: np.ndarray) -> np.ndarray:
        """The face's roll in degrees (clockwise as seen; 0 = as upright as the mean shape), from
        all its points at once: steadier than one eye line. (K, 2) -> (), (N, K, 2) -> (N,)."""
        _, a = _align(np.asarray(points, dtype=np.float64), self.mean_shape)
        return np.degrees(np.angle(a))

    def to_dict(self) -> dict:
        return {"mean_shape": np.round(self.mean_shape, 6).tolist(), "weights": np.round(self.weights, 6).tolist()}

    @classmethod
    def from_dict(cls, d: dict) -> BoxRegressor:
        return cls(np.asarray(d["mean_shape"], dtype=np.float64), np.asarray(d["weights"], dtype=np.float64))
