"""Readers for the landmark formats people really have, all yielding one `Sample` type.

Formats: Kaggle Facial Keypoints CSV (`training.csv`), the article's `face_images.npz` +
`facial_keypoints.csv` pair, the ytf68 folder (Udacity P1 layout), iBUG `.pts` files (300-W,
InfAnFace) and mtfl5's 5-point `.pts` files.
"""

from __future__ import annotations

import csv
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from facemark.errors import FacemarkError
from facemark.imaging import IMAGE_SUFFIXES, points_box, read_image
from facemark.schemes import IBUG68, KAGGLE15, MTFL5, Scheme

# A point further than this many image sides outside the image is a labelling error, not a face.
_MAX_OUTSIDE = 0.5


@dataclass
class Sample:
    """One labelled face: gray uint8 image (BGR if read with `colour`), (K, 2) points in its
    pixels, (K,) presence mask."""

    image: np.ndarray
    points: np.ndarray
    mask: np.ndarray
    identity: str | None = None
    source: str = ""  # file (and line) the sample came from, for messages

    def box(self, scheme: Scheme) -> np.ndarray:
        """The face box of the present points in `scheme` (the GT-box protocol); an error names the sample."""
        try:
            return points_box(self.points, self.mask, scheme.frame)
        except FacemarkError as exc:
            raise FacemarkError(f"{self.source}: {exc}") from None


@dataclass
class Dataset:
    """Samples plus the scheme their points follow, and whether images are ready-made face crops."""

    scheme: Scheme
    samples: list[Sample]
    crops: bool  # True: each image is already the model's face crop (Kaggle 96x96 formats)
    format: str

    def __len__(self) -> int:
        return len(self.samples)


FORMATS = ("kaggle-csv", "npz", "ytf68", "pts", "mtfl5")
# .pts conventions: the scheme, and the pixel that counts as 0. iBUG/300-W (and InfAnFace, which
# follows it) count from 1; mtfl5's README says its points are 0-based pixel centres.
_PTS_FORMATS = {"pts": (IBUG68, 1.0), "mtfl5": (MTFL5, 0.0)}


def detect_format(path: Path) -> str:
    """Pick the reader from the path: a CSV, an .npz (or its folder), a ytf68 root or .pts folder."""
    if path.is_file():
        if path.suffix == ".csv":
            return "kaggle-csv"
        if path.suffix == ".npz":
            return "npz"
        if path.suffix == ".pts":
            return _pts_format(path)
    elif path.is_dir():
        if (path / "face_images.npz").exists():
            return "npz"
        if list(path.glob("*_frames_keypoints.csv")):
            return "ytf68"
        if (path / "training.csv").exists():
            return "kaggle-csv"
        first = next(path.rglob("*.pts"), None)
        if first is not None:
            return _pts_format(first)
    elif not path.exists():
        raise FacemarkError(f"{path}: no such file or folder")
    raise FacemarkError(f"{path}: cannot tell the data format; pass --format ({', '.join(FORMATS)})")


def read_dataset(
    path: str | Path, format: str | None = None, split: str | None = None, colour: bool = False
) -> Dataset:
    """Read a data set; `split` picks ytf68's `training` or `test` half (default: both); `colour`
    keeps photos' BGR pixels (the Kaggle formats are gray crops, and stay 2-D)."""
    path = Path(path)
    if not path.exists():
        raise FacemarkError(f"{path}: no such file or folder")
    fmt = format or detect_format(path)
    if fmt == "kaggle-csv":
        csv_path = path / "training.csv" if path.is_dir() else path
        ds = Dataset(KAGGLE15, list(read_kaggle_csv(csv_path)), crops=True, format=fmt)
    elif fmt == "npz":
        ds = Dataset(KAGGLE15, list(read_npz_pair(path)), crops=True, format=fmt)
    elif fmt == "ytf68":
        ds = Dataset(IBUG68, list(read_ytf68(path, split, colour)), crops=False, format=fmt)
    elif fmt in _PTS_FORMATS:
        scheme, origin = _PTS_FORMATS[fmt]
        ds = Dataset(scheme, list(read_pts(path, scheme, origin, colour)), crops=False, format=fmt)
    else:
        raise FacemarkError(f"unknown data format {fmt!r}; known: {', '.join(FORMATS)}")
    if not ds.samples:
        raise FacemarkError(f"{path}: the data set is empty (no labelled images)")
    return ds


def _blank(row: list[str]) -> bool:
    """A blank line (as editors leave at the end): skipped. A row of empty cells is a face
    without labels, not a blank line."""
    return len(row) <= 1 and not "".join(row).strip()


def _kaggle_columns(header: list[str], where: str) -> list[int]:
    cols = []
    for name in KAGGLE15.point_names:
        for axis in ("x", "y"):
            col = f"{name}_{axis}"
            if col not in header:
                raise FacemarkError(f"{where}: missing column {col!r} (not a Kaggle keypoints CSV?)")
            cols.append(header.index(col))
    return cols


def _parse_coords(cells: list[str], where: str) -> tuple[np.ndarray, np.ndarray]:
    values = np.full(len(cells), np.nan)
    for i, cell in enumerate(cells):
        cell = cell.strip()
        if cell:
            try:
                values[i] = float(cell)
            except ValueError:
                raise FacemarkError(f"{where}: non-numeric coordinate {cell[:20]!r}") from None
    points = values.reshape(-1, 2)
    mask = np.all(np.isfinite(points), axis=1)
    return points.astype(np.float32), mask


def _check_inside(points: np.ndarray, mask: np.ndarray, shape: tuple[int, ...], where: str) -> None:
    h, w = shape[:2]
    p = points[mask]
    margin = _MAX_OUTSIDE * max(h, w)
    if len(p) and (p.min() < -margin or p[:, 0].max() > w + margin or p[:, 1].max() > h + margin):
        raise FacemarkError(f"{where}: coordinates far outside the {w}x{h} image")


def read_kaggle_csv(path: Path) -> Iterator[Sample]:
    """Kaggle `training.csv`: 30 coordinate columns and an `Image` column of 9216 pixels."""
    try:
        f = open(path, newline="", encoding="utf-8-sig")  # -sig: Excel starts its CSVs with a BOM
    except OSError as exc:
        raise FacemarkError(f"{path}: cannot read ({exc.strerror})") from None
    with f:
        reader = csv.reader(f)
        header = next(reader, None)
        if not header:
            raise FacemarkError(f"{path}: empty CSV file")
        if "Image" not in header:
            raise FacemarkError(f"{path}: no 'Image' column (not a Kaggle training.csv?)")
        cols = _kaggle_columns(header, str(path))
        img_col = header.index("Image")
        for lineno, row in enumerate(reader, start=2):
            if _blank(row):
                continue
            where = f"{path}:{lineno}"
            if len(row) != len(header):
                raise FacemarkError(f"{where}: {len(row)} cells, expected {len(header)}")
            try:
                pixels = np.array(row[img_col].split(), dtype=np.float64)
            except ValueError:
                raise FacemarkError(f"{where}: non-numeric pixel values in the Image column") from None
            if pixels.size != 96 * 96:
                raise FacemarkError(f"{where}: Image has {pixels.size} pixels, expected 9216 (96x96)")
            if pixels.min() < 0 or pixels.max() > 255:
                raise FacemarkError(f"{where}: pixel values outside 0-255")
            image = pixels.reshape(96, 96).astype(np.uint8)
            points, mask = _parse_coords([row[c] for c in cols], where)
            _check_inside(points, mask, image.shape, where)
            yield Sample(image, points, mask, source=where)


def read_npz_pair(path: Path) -> Iterator[Sample]:
    """The article's data: `face_images.npz` (96, 96, N) beside `facial_keypoints.csv`.

    Image i is `face_images[:, :, i]`, indexed [y, x] like the Kaggle `Image` column.
    """
    npz_path = path / "face_images.npz" if path.is_dir() else path
    csv_path = npz_path.with_name("facial_keypoints.csv")
    if not csv_path.exists():
        raise FacemarkError(f"{csv_path}: missing (it must sit beside {npz_path.name})")
    try:
        with np.load(npz_path, allow_pickle=False) as z:
            if "face_images" not in z.files:
                raise FacemarkError(f"{npz_path}: no 'face_images' array inside")
            images = z["face_images"]
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise FacemarkError(f"{npz_path}: not a readable .npz file ({exc})") from None
    if images.ndim != 3 or images.shape[:2] != (96, 96):
        raise FacemarkError(f"{npz_path}: face_images has shape {images.shape}, expected (96, 96, N)")
    with open(csv_path, newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if not header:
            raise FacemarkError(f"{csv_path}: empty CSV file")
        cols = _kaggle_columns(header, str(csv_path))
        rows = [row for row in reader if not _blank(row)]
    if len(rows) != images.shape[2]:
        raise FacemarkError(f"{csv_path}: {len(rows)} rows but {images.shape[2]} images in {npz_path.name}")
    for i, row in enumerate(rows):
        where = f"{csv_path}:{i + 2}"
        if len(row) != len(header):
            raise FacemarkError(f"{where}: {len(row)} cells, expected {len(header)}")
        image = np.ascontiguousarray(images[:, :, i]).astype(np.uint8)
        points, mask = _parse_coords([row[c] for c in cols], where)
        _check_inside(points, mask, image.shape, where)
        yield Sample(image, points, mask, source=f"{npz_path}[{i}]")


def identity_of(filename: str) -> str:
    """ytf68 identity: the file name before its last `_NN` (frames of one person share it)."""
    stem = Path(filename).stem
    return stem.rsplit("_", 1)[0] if "_" in stem else stem


def read_ytf68(root: Path, split: str | None = None, colour: bool = False) -> Iterator[Sample]:
    """The ytf68 folder: `<split>_frames_keypoints.csv` rows of file name + 136 numbers."""
    splits = [split] if split else ["training", "test"]
    for name in splits:
        csv_path = root / f"{name}_frames_keypoints.csv"
        if not csv_path.exists():
            if split:
                raise FacemarkError(f"{csv_path}: missing")
            continue
        with open(csv_path, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            next(reader, None)
            for lineno, row in enumerate(reader, start=2):
                if _blank(row):
                    continue
                where = f"{csv_path}:{lineno}"
                if len(row) != 1 + 2 * IBUG68.num_points:
                    raise FacemarkError(f"{where}: {len(row) - 1} coordinates, expected 136")
                image = read_image(root / name / row[0], gray=not colour)
                points, mask = _parse_coords(row[1:], where)
                _check_inside(points, mask, image.shape, where)
                yield Sample(image, points, mask, identity=identity_of(row[0]), source=f"{name}/{row[0]}")


def parse_pts(path: Path, points: int = 68, origin: float = 1.0) -> np.ndarray:
    """An iBUG-style .pts file: `version`, `n_points`, then `{`, one `x y` per line, `}`; returned
    in 0-based pixels (`origin` is the file's number for the first pixel)."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise FacemarkError(f"{path}: cannot read ({exc})") from None
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    try:
        start, end = lines.index("{"), lines.index("}")
        found = np.array([[float(v) for v in ln.split()] for ln in lines[start + 1 : end]], dtype=np.float32)
    except ValueError:
        raise FacemarkError(f"{path}: not an iBUG .pts file") from None
    if found.shape != (points, 2):
        raise FacemarkError(f"{path}: {len(found)} points, expected {points}")
    return found - origin


def _pts_format(path: Path) -> str:
    """'pts' (68 points) or 'mtfl5' (5), from a .pts file's n_points line."""
    try:
        head = path.read_text(encoding="utf-8-sig")[:200]
    except (OSError, UnicodeDecodeError) as exc:
        raise FacemarkError(f"{path}: cannot read ({exc})") from None
    for line in head.splitlines():
        if line.strip().startswith("n_points"):
            n = line.split(":", 1)[-1].strip()
            for fmt, (scheme, _) in _PTS_FORMATS.items():
                if n == str(scheme.num_points):
                    return fmt
            raise FacemarkError(f"{path}: {n} points; known .pts schemes have 68 (iBUG) or 5 (mtfl5)")
    return "pts"


def read_pts(path: Path, scheme: Scheme = IBUG68, origin: float = 1.0, colour: bool = False) -> Iterator[Sample]:
    """Each `name.pts` beside its image `name.jpg|png`, in `scheme`. Identity: for 68-point sets
    none is known; for mtfl5 the folder and the file name before its last `_NN` (LFW's person)."""
    files = [path] if path.is_file() else sorted(path.rglob("*.pts"))
    for pts in files:
        image_path = next((pts.with_suffix(s) for s in IMAGE_SUFFIXES if pts.with_suffix(s).exists()), None)
        if image_path is None:
            raise FacemarkError(f"{pts}: no image beside it with the same name")
        image = read_image(image_path, gray=not colour)
        points = parse_pts(pts, scheme.num_points, origin)
        mask = np.ones(len(points), dtype=bool)
        _check_inside(points, mask, image.shape, str(pts))
        identity = None if scheme is IBUG68 else f"{pts.parent.name}/{identity_of(pts.name)}"
        yield Sample(image, points, mask, identity=identity, source=str(image_path))


def write_kaggle_csv(path: Path, samples: list[Sample]) -> None:
    """Write 96x96 kaggle15 samples as a Kaggle `training.csv` (used to build fixtures and tests)."""
    header = [f"{n}_{a}" for n in KAGGLE15.point_names for a in ("x", "y")] + ["Image"]
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        for s in samples:
            coords = ["" if not m else f"{v:.4f}" for p, m in zip(s.points, s.mask) for v in p]
            w.writerow(coords + [" ".join(str(int(v)) for v in s.image.reshape(-1))])


def write_npz_pair(folder: Path, samples: list[Sample]) -> None:
    """Write 96x96 kaggle15 samples as the article's `face_images.npz` + `facial_keypoints.csv`."""
    folder.mkdir(parents=True, exist_ok=True)
    images = np.stack([s.image for s in samples], axis=-1).astype(np.uint8)
    np.savez_compressed(folder / "face_images.npz", face_images=images)
    header = [f"{n}_{a}" for n in KAGGLE15.point_names for a in ("x", "y")]
    with open(folder / "facial_keypoints.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        for s in samples:
            w.writerow(["" if not m else f"{v:.4f}" for p, m in zip(s.points, s.mask) for v in p])
