"""Peak memory of `facemark detect` over many photos: bounded by bytes, not by the photo count.

    python benchmarks/memory.py                      # 256 12-MP photos and 10,000 small ones
    python benchmarks/memory.py --large 64 --small 1000

Each run is a fresh `facemark detect FOLDER --json` process (stdout discarded); its peak resident
memory comes from the kernel (the finished child's own ru_maxrss, through wait4). The photos are generated: a real
face (the shipped example photo) pasted on a textured background, written as JPEG.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from facemark.bundle import example_image


def _photo(width: int, height: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    noise = rng.integers(0, 255, (height // 16 + 1, width // 16 + 1, 3), dtype=np.uint8)
    photo = cv2.resize(noise, (width, height), interpolation=cv2.INTER_CUBIC)
    side = height // 3
    face = cv2.resize(cv2.imread(str(example_image())), (side, side), interpolation=cv2.INTER_AREA)
    x, y = int(rng.integers(0, width - side)), int(rng.integers(0, height - side))
    photo[y : y + side, x : x + side] = face
    return photo


def _folder(root: Path, n: int, width: int, height: int) -> Path:
    """n JPEGs of width x height: a few distinct photos, copied round-robin (decoding costs the same)."""
    folder = root / f"{n}x{width}x{height}"
    folder.mkdir()
    distinct = [cv2.imencode(".jpg", _photo(width, height, s), [cv2.IMWRITE_JPEG_QUALITY, 90])[1] for s in range(4)]
    for i in range(n):
        (folder / f"photo_{i:05d}.jpg").write_bytes(distinct[i % len(distinct)].tobytes())
    return folder


def _peak_of_detect(folder: Path, extra: list[str]) -> tuple[float, float]:
    """(peak RSS in MB, seconds) of one `facemark detect` process over the folder."""
    cmd = [sys.executable, "-m", "facemark.cli", "detect", str(folder), "--json", *extra]
    t0 = time.perf_counter()
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)  # this child's own rusage
        proc.returncode = os.waitstatus_to_exitcode(status)
        seconds = time.perf_counter() - t0
        if proc.returncode != 0:
            err.seek(0)
            sys.exit(f"facemark detect failed ({proc.returncode}): {err.read().decode()[-300:]}")
    return usage.ru_maxrss / 1024, seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--large", type=int, default=256, help="12-MP photos (4000x3000)")
    ap.add_argument("--small", type=int, default=10_000, help="small photos (320x240)")
    ap.add_argument("--draw", action="store_true", help="also run with --out (full images kept for drawing)")
    a = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="facemark-memory-"))
    try:
        print(f"{'case':<34} {'peak RSS':>10} {'time':>8} {'photos/s':>9}")
        cases = [(a.small, 320, 240, []), (a.large, 4000, 3000, [])]
        if a.draw:
            cases.append((a.large, 4000, 3000, ["--out", str(root / "drawn")]))
        for n, w, h, extra in cases:
            folder = _folder(root, n, w, h) if not (root / f"{n}x{w}x{h}").exists() else root / f"{n}x{w}x{h}"
            peak, seconds = _peak_of_detect(folder, extra)
            name = f"{n} photos of {w}x{h}" + (" --out" if extra else "")
            print(f"{name:<34} {peak:>7.0f} MB {seconds:>7.1f}s {n / seconds:>9.1f}")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
