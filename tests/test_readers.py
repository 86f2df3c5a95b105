import csv

import cv2
import numpy as np
import pytest

from facemark.errors import FacemarkError
from facemark.readers import Sample, detect_format, read_dataset, write_kaggle_csv, write_npz_pair
from facemark.schemes import IBUG68, KAGGLE15

from conftest import YTF68, kaggle_samples, needs_ytf68


def test_kaggle_csv_reads_every_row_with_partial_masks(kaggle_csv):
    ds = read_dataset(kaggle_csv)
    assert ds.format == "kaggle-csv" and ds.scheme is KAGGLE15 and ds.crops
    assert len(ds) == 24
    assert ds.samples[0].mask.all()
    assert ds.samples[1].mask.sum() == 4  # the Kaggle set's typical partial row
    assert np.isnan(ds.samples[1].points[~ds.samples[1].mask]).all()
    assert ds.samples[0].image.shape == (96, 96) and ds.samples[0].image.dtype == np.uint8


def test_npz_pair_matches_the_csv_it_was_written_from(npz_pair):
    ds = read_dataset(npz_pair)
    ref = kaggle_samples(24, seed=1)
    assert ds.format == "npz" and len(ds) == 24
    np.testing.assert_array_equal(ds.samples[5].image, ref[5].image)
    np.testing.assert_allclose(ds.samples[5].points, ref[5].points, atol=1e-3)


def _marked(x: int, y: int) -> Sample:
    """A black image with one bright pixel at column x, row y, labelled there."""
    img = np.zeros((96, 96), np.uint8)
    img[y, x] = 255
    pts = np.full((15, 2), [float(x), float(y)], np.float32)
    return Sample(img, pts, np.ones(15, bool))


def test_orientation_is_row_y_column_x_in_both_kaggle_formats(tmp_path):
    sample = _marked(20, 70)
    write_kaggle_csv(tmp_path / "training.csv", [sample])
    write_npz_pair(tmp_path / "pair", [sample])
    # The npz stores image i as face_images[:, :, i], indexed [y, x]: check the raw array too.
    raw = np.load(tmp_path / "pair" / "face_images.npz")["face_images"]
    assert raw.shape == (96, 96, 1) and raw[70, 20, 0] == 255
    for path in (tmp_path / "training.csv", tmp_path / "pair"):
        s = read_dataset(path).samples[0]
        assert s.image[70, 20] == 255 and s.image[20, 70] == 0
        assert tuple(s.points[0]) == (20.0, 70.0)


def test_ytf68_layout_reads_identity_and_68_points(ytf68_like):
    ds = read_dataset(ytf68_like)
    assert ds.format == "ytf68" and ds.scheme is IBUG68 and not ds.crops
    assert len(ds) == 24
    assert ds.samples[0].identity == "Person_0"
    assert ds.samples[0].points.shape == (68, 2)


def test_pts_files_are_read_zero_based(pts_folder):
    ds = read_dataset(pts_folder)
    assert ds.format == "pts" and len(ds) == 4
    text = (pts_folder / "face0.pts").read_text().splitlines()
    first = [float(v) for v in text[3].split()]
    np.testing.assert_allclose(ds.samples[0].points[0], np.array(first) - 1, atol=1e-4)


@needs_ytf68
def test_real_ytf68_copy():
    ds = read_dataset(YTF68, split="test")
    assert len(ds) == 669
    s = ds.samples[0]
    assert s.image.ndim == 2 and s.mask.all() and s.identity


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.reader(f))


def _write_rows(path, rows):
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows(rows)


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda r: r[1].__setitem__(-1, " ".join(["1"] * 100)), "9216"),
        (
            lambda r: r[1].__setitem__(-1, r[1][-1].replace("1", "x", 1) if "1" in r[1][-1] else "x " * 9216),
            "non-numeric pixel",
        ),
        (lambda r: r[1].__setitem__(0, "abc"), "non-numeric coordinate"),
        (lambda r: r[1].__setitem__(0, "5000"), "far outside"),
        (lambda r: r[1].pop(), "cells, expected"),
    ],
)
def test_bad_kaggle_rows_are_one_line_errors(kaggle_csv, mutate, message):
    rows = _rows(kaggle_csv)
    mutate(rows)
    _write_rows(kaggle_csv, rows)
    with pytest.raises(FacemarkError, match=message):
        read_dataset(kaggle_csv)


def test_empty_and_missing_data_sets(tmp_path, kaggle_csv):
    rows = _rows(kaggle_csv)[:1]
    _write_rows(kaggle_csv, rows)
    with pytest.raises(FacemarkError, match="empty"):
        read_dataset(kaggle_csv)
    with pytest.raises(FacemarkError, match="no such file"):
        read_dataset(tmp_path / "nope.csv")
    (tmp_path / "blank.csv").write_text("")
    with pytest.raises(FacemarkError, match="empty CSV"):
        read_dataset(tmp_path / "blank.csv")
    (tmp_path / "other").mkdir()
    with pytest.raises(FacemarkError, match="cannot tell the data format"):
        detect_format(tmp_path / "other")


def test_corrupt_image_in_ytf68_folder(ytf68_like):
    victim = sorted((ytf68_like / "training").iterdir())[0]
    victim.write_bytes(victim.read_bytes()[:200])  # truncated JPEG
    with pytest.raises(FacemarkError, match="not a readable image"):
        read_dataset(ytf68_like)


def test_text_file_named_as_image(pts_folder):
    (pts_folder / "face0.png").write_text("this is not a picture")
    with pytest.raises(FacemarkError, match="not a readable image"):
        read_dataset(pts_folder)


def test_npz_without_its_csv_or_with_wrong_shape(tmp_path):
    np.savez(tmp_path / "face_images.npz", face_images=np.zeros((50, 50, 2), np.uint8))
    with pytest.raises(FacemarkError, match="facial_keypoints.csv"):
        read_dataset(tmp_path / "face_images.npz")
    (tmp_path / "facial_keypoints.csv").write_text("x\n")
    with pytest.raises(FacemarkError, match="expected \\(96, 96, N\\)"):
        read_dataset(tmp_path)


def test_image_reader_rejects_empty_files(tmp_path):
    from facemark.imaging import read_image

    (tmp_path / "e.jpg").write_bytes(b"")
    with pytest.raises(FacemarkError, match="empty file"):
        read_image(tmp_path / "e.jpg")
    ok = tmp_path / "ok.png"
    cv2.imwrite(str(ok), np.zeros((5, 5), np.uint8))
    assert read_image(ok).shape == (5, 5)
