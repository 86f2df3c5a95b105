"""facemark's face detector beside MediaPipe's, on faces its training never saw, in one run.

    python benchmarks/finder.py --mediapipe-python /path/to/mediapipe-venv/bin/python [--finder DIR] [--threshold T]
    python benchmarks/finder.py --price conv:2,separable:1   # the pyramid's cost of untrained network kinds

Faces: the finder's held-out part of each data set (ytf68's test identities, mtfl5 photos and
LFW people hashing to 0 mod 10, InfAnFace's google2 photos; `facemark.splits.held_out`, or with
`--holdout google2-half` the half of the google2 photos that rule holds out).
Face-free photos: scikit-image photos the finder's training scenes never used
(`FACE_FREE_HELD_OUT`), whole and in crops, turned and scaled.

A face counts as found when a tool's eye midpoint lies within 0.5 inter-pupil distances (IPD) of
the true one and its IPD is within a factor 1.6. Tools: facemark's full pipeline (detector +
`--model`'s landmarks, kaggle15 by default, `Landmarker.detect`), its detector alone, dlib (its HOG detector, upsampled
once, and its 68-point predictor; when `dlib-bin` is installed), MediaPipe's face detection
(full-range) and its face mesh (with its own detector). NME: 5 points over the IPD, faces found.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from facemark.finder.faces import SOURCES
from facemark.finder.scenes import FACE_FREE_HELD_OUT, face_free_photos
from facemark.inference import Landmarker
from facemark.readers import read_dataset
from facemark.schemes import CONVERSIONS, IBUG68, MTFL5, convert_points
from facemark.splits import HOLDOUTS, held_out
from human import HOLDOUT_HELP

from peers import dlib_or_none

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
ROLLS = (0, 15, 30, 45, 60, 90, 135, 180)
IPDS = (12, 16, 20, 30, 45)


class Case:
    """One test image (BGR) and its faces' five true points (list of (5, 2))."""

    def __init__(self, group: str, image: np.ndarray, faces: list[np.ndarray]):
        self.group, self.image, self.faces = group, image, faces


def held_faces(limit: int, holdout: str = "sources") -> dict[str, list]:
    """(colour image, 5 points) of held-out faces per source, at most `limit` per source."""
    out = {}
    for name, folder in SOURCES.items():
        data = read_dataset(DATA / folder)
        picked = []
        for s in data.samples:
            if not held_out(s, holdout):
                continue
            five, mask = convert_points(s.points, s.mask, data.scheme, MTFL5)
            if mask.all():
                colour = cv2.imread(str(DATA / folder / s.source) if name == "ytf68" else s.source)
                picked.append((colour, five.astype(np.float64)))
            if len(picked) == limit:
                break
        out[name] = picked
    return out


def rotated(image: np.ndarray, five: np.ndarray, angle: float) -> tuple[np.ndarray, np.ndarray]:
    """The photo turned `angle` degrees clockwise as seen about the face, on a canvas that holds it all."""
    h, w = image.shape[:2]
    m = cv2.getRotationMatrix2D(tuple(five[:2].mean(axis=0)), -angle, 1.0)
    corners = np.array([[0, 0], [w, 0], [0, h], [w, h]], np.float64) @ m[:, :2].T + m[:, 2]
    lo, hi = corners.min(axis=0), corners.max(axis=0)
    m[:, 2] -= lo
    size = tuple(int(v) for v in np.ceil(hi - lo))
    return cv2.warpAffine(image, m, size, borderMode=cv2.BORDER_REPLICATE), five @ m[:, :2].T + m[:, 2]


def backgrounds() -> list[np.ndarray]:
    out = []
    for g in face_free_photos(FACE_FREE_HELD_OUT):
        out.append(cv2.cvtColor(cv2.resize(g, (640, 480), interpolation=cv2.INTER_AREA), cv2.COLOR_GRAY2BGR))
    return out


def pasted(image, five, ipd: float, background: np.ndarray, rng) -> tuple[np.ndarray, np.ndarray]:
    """The photo shrunk so its face's IPD is `ipd` px, pasted at a random spot of a 640x480 background."""
    k = ipd / np.hypot(*(five[1] - five[0]))
    small = cv2.resize(image, None, fx=k, fy=k, interpolation=cv2.INTER_AREA)
    out = background.copy()
    h, w = small.shape[:2]
    h, w = min(h, 480), min(w, 640)
    x, y = int(rng.integers(0, 641 - w)), int(rng.integers(0, 481 - h))
    out[y : y + h, x : x + w] = small[:h, :w]
    return out, (five + 0.5) * k - 0.5 + [x, y]


def group_photo(faces: list, background: np.ndarray, rng) -> tuple[np.ndarray, list[np.ndarray]]:
    """4-8 held-out faces at different sizes and rolls on one 960x720 photo, side by side."""
    out = cv2.resize(background, (960, 720))
    truth, x, y, row = [], 10, 10, 0
    for i in rng.choice(len(faces), int(rng.integers(4, 9)), replace=False):
        image, five = faces[i]
        image, five = rotated(image, five, float(rng.uniform(-60, 60)))
        k = rng.uniform(30, 80) / np.hypot(*(five[1] - five[0]))
        c = five[:2].mean(axis=0)
        half = 1.6 * np.hypot(*(five[1] - five[0]))  # a window around the face only
        x0, y0 = int(max(0, c[0] - half)), int(max(0, c[1] - half))
        crop = image[y0 : int(c[1] + half), x0 : int(c[0] + half)]
        crop = cv2.resize(crop, None, fx=k, fy=k, interpolation=cv2.INTER_AREA)
        h, w = crop.shape[:2]
        if x + w > 950:
            x, y = 10, y + row + 10
            row = 0
        if y + h > 710:
            break
        out[y : y + h, x : x + w] = crop
        truth.append(((five - [x0, y0]) + 0.5) * k - 0.5 + [x, y])
        x, row = x + w + 10, max(row, h)
    return out, truth


def build_cases(limit: int, seed: int = 0, holdout: str = "sources") -> list[Case]:
    rng = np.random.default_rng(seed)
    faces = held_faces(limit, holdout)
    cases = []
    for name, items in faces.items():
        cases += [Case(f"photos {name}", im, [f]) for im, f in items]
    web = faces["mtfl5-web"]
    for angle in ROLLS:
        for im, f in web:
            cases.append(Case(f"roll {angle:3d}", *((lambda r: (r[0], [r[1]]))(rotated(im, f, angle)))))
    bgs = backgrounds()
    for ipd in IPDS:
        for im, f in web:
            photo, five = pasted(im, f, ipd, bgs[int(rng.integers(len(bgs)))], rng)
            cases.append(Case(f"ipd {ipd:2d} px", photo, [five]))
    pool = [item for items in faces.values() for item in items]
    for _ in range(20):
        cases.append(Case("group photos", *group_photo(pool, bgs[int(rng.integers(len(bgs)))], rng)))
    for bg in bgs:
        for k in range(4):
            cases.append(Case("face-free", np.ascontiguousarray(np.rot90(bg, k)), []))
    return cases


def match(truth: list[np.ndarray], found: list[np.ndarray]) -> tuple[list[np.ndarray | None], int]:
    """For each true face the found one (its points; eyes first) that matches it, and the false finds."""
    used = [False] * len(found)
    out = []
    for t in truth:
        mid, ipd = t[:2].mean(axis=0), np.hypot(*(t[1] - t[0]))
        hit = None
        for j, f in enumerate(found):
            fi = np.hypot(*(f[1] - f[0]))
            if not used[j] and np.hypot(*(f[:2].mean(axis=0) - mid)) < 0.5 * ipd and 1 / 1.6 < fi / ipd < 1.6:
                used[j], hit = True, f
                break
        out.append(hit)
    return out, used.count(False)


def nme(t: np.ndarray, f: np.ndarray) -> float:
    """Mean error of the five points over the IPD (eye order is matched to the truth's)."""
    if np.hypot(*(f[0] - t[0])) > np.hypot(*(f[1] - t[0])):
        f = f[[1, 0, 2, 4, 3]]
    return float(np.linalg.norm(f - t, axis=1).mean() / np.hypot(*(t[1] - t[0])))


def five(landmarker: Landmarker, faces: list) -> list[np.ndarray]:
    """Each face's five points (eye centres, nose tip, mouth corners), whatever the model's scheme."""
    to5 = CONVERSIONS[landmarker.scheme.name, MTFL5.name]
    return [to5 @ f.points for f in faces]


def ours(cases: list[Case], landmarker: Landmarker) -> tuple[list, list, list]:
    """facemark's pipeline (5 points) and detector alone (eye keypoints) on every case, with ms."""
    pipeline, alone, ms = [], [], []
    for c in cases:
        gray = cv2.cvtColor(c.image, cv2.COLOR_BGR2GRAY)
        t = time.perf_counter()
        faces = landmarker.detect(c.image)
        ms.append((time.perf_counter() - t) * 1000)
        pipeline.append(five(landmarker, faces))
        alone.append([np.array(b.keypoints) for b in landmarker.detector.detect(gray)])
    return pipeline, alone, ms


def dlib_five(dlib, image: np.ndarray) -> list[np.ndarray]:
    """Every face dlib finds in a BGR photo, as the five points."""
    return [CONVERSIONS[IBUG68.name, MTFL5.name] @ f for f in dlib.faces(image)]


def theirs(cases: list[Case], python: str) -> list[dict]:
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for i, c in enumerate(cases):
            paths.append(str(Path(tmp) / f"{i:05d}.png"))
            cv2.imwrite(paths[-1], c.image)
        proc = subprocess.run(
            [python, str(ROOT / "benchmarks" / "peers.py"), "scan"],
            input=json.dumps(paths), capture_output=True, text=True, check=True,
        )  # fmt: skip
    return json.loads(proc.stdout)


def table(cases: list[Case], tools: dict[str, list]) -> None:
    groups = list(dict.fromkeys(c.group for c in cases))
    print(f"{'faces':18} {'n':>5} " + " ".join(f"{t:>22}" for t in tools))
    print(f"{'':18} {'':>5} " + " ".join(f"{'found %  NME %  false':>22}" for _ in tools))
    for g in groups:
        idx = [i for i, c in enumerate(cases) if c.group == g]
        n = sum(len(cases[i].faces) for i in idx)
        cells = []
        for found in tools.values():
            hits = errs = false = 0
            for i in idx:
                matched, f = match(cases[i].faces, [np.asarray(x, float) for x in found[i]])
                false += f
                for t, m in zip(cases[i].faces, matched):
                    if m is not None:
                        hits += 1
                        errs += nme(t, m) if len(m) == 5 else 0.0
            has_points = any(len(x) == 5 for i in idx for x in found[i])
            err = f"{100 * errs / hits:6.2f}" if hits and has_points else "     -"
            rate = f"{100 * hits / n:7.1f}" if n else "      -"
            cells.append(f"{rate} {err} {false:6d}")
        print(f"{g:18} {n:5d} " + " ".join(f"{c:>22}" for c in cells))


def two_face_photo() -> np.ndarray:
    """The 640-wide speed photo: two held-out web faces, 200 px wide, on a face-free photo."""
    faces = held_faces(2)["mtfl5-web"]
    bg = backgrounds()[0]
    photo = bg.copy()
    for (im, _), x in zip(faces, (40, 340)):
        k = 200 / im.shape[1]
        small = cv2.resize(im, None, fx=k, fy=k, interpolation=cv2.INTER_AREA)
        photo[140 : 140 + small.shape[0], x : x + small.shape[1]] = small
    return photo


def median_ms(fn, runs: int = 30) -> float:
    fn()
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return float(np.median(times))


def speed(landmarker: Landmarker, python: str | None, dlib=None) -> None:
    """The 640-wide two-face photo through each tool on one thread, median ms of 30 runs."""
    photo = two_face_photo()
    gray = cv2.cvtColor(photo, cv2.COLOR_BGR2GRAY)
    det = landmarker.detector
    timings = {
        "facemark detect (pipeline)": median_ms(lambda: landmarker.detect(photo)),
        "facemark detector alone": median_ms(lambda: det.detect(gray)),
    }
    if dlib is not None:
        timings["dlib (HOG + 68 points)"] = median_ms(lambda: dlib.faces(photo), runs=10)
    print(f"faces found in the two-face photo: {len(landmarker.detect(photo))}")
    if python:
        got = theirs([Case("speed", photo, [])] * 30, python)
        timings["MediaPipe face detection"] = float(np.median([g["detection_ms"] for g in got]))
        timings["MediaPipe face mesh"] = float(np.median([g["mesh_ms"] for g in got]))
    for name, ms in timings.items():
        print(f"  {name:28} {ms:7.2f} ms")


def price(kinds: list[str]) -> None:
    """The finder's pyramid on the two-face photo, one thread, for the shipped network and for
    untrained networks of each kind (`branch:stride4_blocks[:stem]`): a threshold of 1 reports no face,
    so this prices the network and the pyramid, not the candidates (cost does not depend on the
    weights). The networks take turns, run by run, so a machine's changing load hits all alike."""
    from facemark.finder.export import write_bundle
    from facemark.finder.network import build_finder
    from facemark.finder.runtime import FinderDetector
    from facemark.finder.training import FinderConfig

    gray = cv2.cvtColor(two_face_photo(), cv2.COLOR_BGR2GRAY)
    detectors = {"shipped": (FinderDetector(threshold=1.0), None)}
    with tempfile.TemporaryDirectory() as tmp:
        for kind in kinds:
            branch, blocks, stem = (kind.split(":") + ["conv"])[:3]
            cfg = FinderConfig(width=1.0, branch=branch, stride4_blocks=int(blocks), stem=stem)
            model = build_finder(cfg.width, cfg.branch, cfg.stride4_blocks, cfg.stem)
            bundle = write_bundle(model, Path(tmp) / kind.replace(":", "-"), cfg)
            detectors[kind] = (FinderDetector(bundle, threshold=1.0), model.count_params())
        times = {name: [] for name in detectors}
        for _ in range(100):
            for name, (det, _) in detectors.items():
                t = time.perf_counter()
                det.detect(gray)
                times[name].append((time.perf_counter() - t) * 1000)
    print(f"{'finder network':<28} {'params':>8} {'ms (two-face photo)':>20}")
    for name, (_, params) in detectors.items():
        print(f"{name:<28} {params or '':>8} {np.median(times[name][5:]):20.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mediapipe-python", default=None, help="python of a venv with mediapipe==0.10.21")
    ap.add_argument("--finder", default=None, help="a finder bundle folder (default: the shipped one)")
    ap.add_argument("--threshold", type=float, default=None, help="finder score threshold (default: its bundle's)")
    ap.add_argument("--model", default="kaggle15")
    ap.add_argument("--holdout", choices=HOLDOUTS, default="sources", help=HOLDOUT_HELP)
    ap.add_argument("--limit", type=int, default=200, help="held-out faces per source")
    ap.add_argument("--opencv", action="store_true", help="also the pipeline behind OpenCV's cascade")
    ap.add_argument("--no-dlib", action="store_true", help="leave out dlib even when it is installed")
    ap.add_argument(
        "--price", default=None, help="price untrained network kinds instead, e.g. conv:2,separable2:1:patch"
    )
    a = ap.parse_args()
    if a.price:
        return price(a.price.split(","))
    from facemark.finder.runtime import FinderDetector

    landmarker = Landmarker(a.model, threads=1, detector=FinderDetector(a.finder, threshold=a.threshold))
    cases = build_cases(a.limit, holdout=a.holdout)
    pipeline, alone, ms = ours(cases, landmarker)
    tools = {"facemark pipeline": pipeline, "facemark detector": alone}
    if a.opencv:  # the pipeline as it was before the finder: OpenCV's cascade in front
        cascade = Landmarker(a.model, threads=1, detector="opencv")
        tools["opencv pipeline"] = [five(cascade, cascade.detect(c.image)) for c in cases]
    dlib = None if a.no_dlib else dlib_or_none()
    if dlib is not None:
        tools["dlib (HOG + 68)"] = [dlib_five(dlib, c.image) for c in cases]
    if a.mediapipe_python:
        got = theirs(cases, a.mediapipe_python)
        tools["MediaPipe detection"] = [g["detection"] for g in got]
        tools["MediaPipe face mesh"] = [g["mesh"] for g in got]
    table(cases, tools)
    print(f"(facemark pipeline: median {np.median(ms):.1f} ms a test image)")
    speed(landmarker, a.mediapipe_python, dlib)


if __name__ == "__main__":
    sys.exit(main())
