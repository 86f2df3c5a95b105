"""Fixtures: small data sets in every supported format, generated here (no real data needed),
plus the shared ytf68 copy when it sits beside the checkout (tests that need it skip otherwise)."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from facemark.readers import Sample, write_kaggle_csv, write_npz_pair
from facemark.schemes import IBUG68, IBUG68_TO_KAGGLE15, KAGGLE15

YTF68 = Path(os.environ.get("FACEMARK_YTF68", Path(__file__).resolve().parents[2] / "shared" / "data" / "ytf68"))

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def mean_face68() -> np.ndarray:
    """A plausible frontal 68-point shape in a unit box, used to draw synthetic faces."""
    t = np.linspace(-1, 1, 17)
    jaw = np.stack([t, 0.3 + 0.6 * (1 - t**2) ** 0.5 * np.sign(1) - 0.1 * (t**2)], 1) * [0.48, 0.8]
    brows = np.array([[-0.40, -0.40], [-0.32, -0.45], [-0.23, -0.47], [-0.14, -0.45], [-0.06, -0.42]])
    brows = np.concatenate([brows, brows[::-1] * [-1, 1]])
    nose = np.array(
        [[0, -0.3], [0, -0.2], [0, -0.1], [0, 0.0], [-0.08, 0.06], [-0.04, 0.08], [0, 0.09], [0.04, 0.08], [0.08, 0.06]]
    )
    eye = np.array([[-0.35, -0.28], [-0.3, -0.31], [-0.24, -0.31], [-0.18, -0.28], [-0.24, -0.26], [-0.3, -0.26]])
    eyes = np.concatenate([eye, eye[[3, 2, 1, 0, 5, 4]] * [-1, 1]])
    outer = np.array(
        [
            [-0.2, 0.25],
            [-0.13, 0.21],
            [-0.05, 0.19],
            [0, 0.2],
            [0.05, 0.19],
            [0.13, 0.21],
            [0.2, 0.25],
            [0.13, 0.3],
            [0.06, 0.33],
            [0, 0.33],
            [-0.06, 0.33],
            [-0.13, 0.3],
        ]
    )
    inner = np.array(
        [[-0.17, 0.25], [-0.05, 0.23], [0, 0.23], [0.05, 0.23], [0.17, 0.25], [0.05, 0.27], [0, 0.27], [-0.05, 0.27]]
    )
    pts = np.concatenate([jaw, brows, nose, eyes, outer, inner])
    assert pts.shape == (68, 2)
    return pts


def synthetic_face(rng: np.random.Generator, size: int = 160) -> tuple[np.ndarray, np.ndarray]:
    """A gray image with a drawn face whose 68 points are known exactly (a varied pose each call)."""
    scale = rng.uniform(0.45, 0.6) * size
    centre = size / 2 + rng.uniform(-0.05, 0.05, 2) * size
    angle = np.deg2rad(rng.uniform(-10, 10))
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    pts = mean_face68() @ rot.T * scale + centre
    img = np.full((size, size), int(rng.integers(60, 120)), np.uint8)
    cv2.ellipse(
        img, (int(centre[0]), int(centre[1])), (int(scale * 0.5), int(scale * 0.65)), np.rad2deg(angle), 0, 360, 190, -1
    )
    for group in (range(36, 42), range(42, 48), range(48, 60), range(17, 22), range(22, 27)):
        cv2.fillPoly(img, [pts[list(group)].round().astype(np.int32)], 30)
    cv2.circle(img, tuple(pts[30].round().astype(int)), 3, 120, -1)
    return img, pts.astype(np.float32)


def kaggle_samples(n: int, seed: int = 0, partial: bool = True) -> list[Sample]:
    """96x96 synthetic crops with kaggle15 points; with `partial`, every other row lacks 11 points."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        img, pts68 = synthetic_face(rng, 96)
        pts = IBUG68_TO_KAGGLE15 @ pts68
        mask = np.ones(15, bool)
        if partial and i % 2:
            mask[2:10] = False
            mask[11:14] = False
        out.append(Sample(img, np.where(mask[:, None], pts, np.nan).astype(np.float32), mask))
    return out


# Tests train on these in batches that divide the faces left for training after the validation
# split (kaggle_csv and ytf68_like: 20; the two with test_mtfl5's folder: 28; test_cli's 16-face
# csv: 14): a last, smaller batch would cost a second trace of the training step, ~7 s a run here.
@pytest.fixture
def kaggle_csv(tmp_path: Path) -> Path:
    path = tmp_path / "training.csv"
    write_kaggle_csv(path, kaggle_samples(24))
    return path


@pytest.fixture
def npz_pair(tmp_path: Path) -> Path:
    folder = tmp_path / "faces"
    write_npz_pair(folder, kaggle_samples(24, seed=1))
    return folder


def write_ytf68_like(root: Path, n_people: int = 6, per_person: int = 4, seed: int = 2) -> Path:
    """A folder in ytf68's layout (CSV of file name + 136 numbers, images in training/)."""
    rng = np.random.default_rng(seed)
    (root / "training").mkdir(parents=True)
    rows = [",".join([""] + [str(i) for i in range(136)])]
    for p in range(n_people):
        for k in range(per_person):
            img, pts = synthetic_face(rng, int(rng.integers(120, 200)))
            name = f"Person_{p}_{k}{k}.jpg"
            cv2.imwrite(str(root / "training" / name), cv2.cvtColor(img, cv2.COLOR_GRAY2BGR))
            rows.append(",".join([name] + [f"{v:.1f}" for v in pts.reshape(-1)]))
    (root / "training_frames_keypoints.csv").write_text("\n".join(rows) + "\n")
    return root


@pytest.fixture
def ytf68_like(tmp_path: Path) -> Path:
    return write_ytf68_like(tmp_path / "ytf")


@pytest.fixture
def pts_folder(tmp_path: Path) -> Path:
    rng = np.random.default_rng(3)
    folder = tmp_path / "pts"
    folder.mkdir()
    for i in range(4):
        img, pts = synthetic_face(rng, 150)
        cv2.imwrite(str(folder / f"face{i}.png"), img)
        body = "\n".join(f"{x + 1:.3f} {y + 1:.3f}" for x, y in pts)  # .pts counts from 1
        (folder / f"face{i}.pts").write_text(f"version: 1\nn_points: 68\n{{\n{body}\n}}\n")
    return folder


needs_ytf68 = pytest.mark.skipif(
    not (YTF68 / "training_frames_keypoints.csv").exists(), reason="../shared/data/ytf68 absent"
)

__all__ = ["IBUG68", "KAGGLE15", "YTF68", "kaggle_samples", "needs_ytf68", "synthetic_face", "write_ytf68_like"]


def face_photo(positions: list[tuple[int, int]], size: tuple[int, int] = (320, 560), face: int = 124) -> np.ndarray:
    """A grey BGR 'photo' with the shipped real face (astronaut) pasted at each (x, y) top-left."""
    from facemark.bundle import example_image

    src = cv2.resize(cv2.imread(str(example_image())), (face, face), interpolation=cv2.INTER_AREA)
    photo = np.full((*size, 3), 110, np.uint8)
    for x, y in positions:
        photo[y : y + face, x : x + face] = src
    return photo


def png_claiming(width: int, height: int) -> bytes:
    """A small PNG file whose header claims width x height pixels: a decompression bomb."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    pixels = chunk(b"IDAT", zlib.compress(b"\0" * 4096))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + pixels + chunk(b"IEND", b"")
