"""`facemark batch` throughput, memory and fault tolerance, both engines in one run.

    python benchmarks/batch.py [--images 2000] [--memory 1000,20000] [--skip-cluster]

On ytf68 photos (../shared/data/ytf68, both halves, repeated through symbolic links when more
are asked for than exist):
- images/s with 1 and 2 workers, local engine and Ray engine (a local Ray with 2 CPUs);
- a 2-node Ray cluster simulated on this machine (`ray start --head` with 1 CPU plus a second
  `ray start --address` with 1 CPU), running the same job through `--ray-address`;
- a fault drill: one Ray worker process (a landmarker actor) killed with SIGKILL mid-run; the
  run must finish with every image exactly once;
- peak memory of the whole process tree (the CLI and its workers), local engine, at each size
  of --memory: flat means independent of the number of images.
Every run is a fresh `facemark batch` process into a new folder.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pyarrow.parquet as pq

from facemark.batch import read_rows

YTF68 = Path(__file__).resolve().parents[2] / "shared" / "data" / "ytf68"


def _inputs(root: Path, n: int) -> Path:
    """A folder of n distinct paths to ytf68 photos (symbolic links once the photos run out)."""
    photos = sorted(YTF68.glob("training/*.jpg")) + sorted(YTF68.glob("test/*.jpg"))
    if not photos:
        sys.exit(f"no ytf68 photos in {YTF68}")
    folder = root / f"inputs-{n}"
    folder.mkdir()
    for i in range(n):
        (folder / f"{i:06d}.jpg").symlink_to(photos[i % len(photos)])
    return folder


def _tree_rss_mb(pid: int) -> float:
    """Resident memory of a process and all its descendants, MB."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            status = Path(f"/proc/{p}/status").read_text()
            total += int(next(ln for ln in status.splitlines() if ln.startswith("VmRSS")).split()[1])
            todo += [int(c) for t in Path(f"/proc/{p}/task").iterdir() for c in (t / "children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError, StopIteration):
            continue
    return total / 1024


def _batch(source: Path, out: Path, *extra: str, on_start=None, env=None) -> tuple[float, float, str]:
    """Run `facemark batch`: (seconds, peak tree RSS MB, its summary line)."""
    cmd = [sys.executable, "-m", "facemark.cli", "batch", str(source), "--out", str(out), "--quiet", *extra]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    peak = [0.0]

    def watch():
        while proc.poll() is None:
            peak[0] = max(peak[0], _tree_rss_mb(proc.pid))
            time.sleep(0.2)

    watcher = threading.Thread(target=watch)
    watcher.start()
    if on_start:
        on_start(proc)
    out_text, err = proc.communicate()
    watcher.join()
    seconds = time.perf_counter() - t0
    if proc.returncode not in (0, 3):
        sys.exit(f"facemark batch failed ({proc.returncode}): {err.strip()[-500:]}")
    return seconds, peak[0], out_text.strip()


def _exactly_once(out: Path, n: int) -> str:
    index = read_rows(out).column("index").to_pylist()
    lost, dup = n - len(set(index)), len(index) - len(set(index))
    return f"{len(index)} rows for {n} images: {lost} lost, {dup} duplicated"


CLUSTER_ENV = {**os.environ, "RAY_AUTH_MODE": "token"}  # `ray start` nodes and their clients share ~/.ray/auth_token


def _ray(*args: str) -> None:
    done = subprocess.run(["ray", *args], capture_output=True, text=True, env=CLUSTER_ENV)
    if done.returncode:
        sys.exit(f"ray {' '.join(args)} failed: {done.stderr.strip()[-400:]}")


def _steady_rate(out: Path) -> float:
    """Images/s between the first and the last shard written: the rate without start-up and
    shut-down (fixed costs a long job does not notice)."""
    shards = sorted(out.glob("part-*.parquet"), key=lambda p: p.stat().st_mtime)
    rows = sum(pq.ParquetFile(p).metadata.num_rows for p in shards[1:])
    return rows / max(1e-9, shards[-1].stat().st_mtime - shards[0].stat().st_mtime)


def _kill_one_actor(proc: subprocess.Popen, delay: float) -> None:
    """After `delay` s, SIGKILL one Ray worker process that runs a landmarker actor."""

    def kill():
        time.sleep(delay)
        ps = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True).stdout.splitlines()
        actors = [int(ln.split()[0]) for ln in ps if "MapWorker" in ln or "_Landmarkers" in ln]
        if actors:
            os.kill(actors[0], signal.SIGKILL)
            print(f"  fault drill: killed Ray worker pid {actors[0]} after {delay:.0f} s")
        else:
            print("  fault drill: no actor process found to kill")

    threading.Thread(target=kill, daemon=True).start()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=2000)
    ap.add_argument("--memory", default="1000,20000", help="image counts for the memory figure")
    ap.add_argument("--skip-cluster", action="store_true", help="no 2-node cluster and fault drill")
    a = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="facemark-batch-"))
    try:
        source = _inputs(root, a.images)
        print(f"{a.images} ytf68 photos; {os.cpu_count()} CPUs\n")
        print(f"{'engine':<22} {'images/s':>9} {'steady/s':>9} {'seconds':>8} {'peak MB':>8}")
        rate, steady = {}, {}
        for engine, workers in (("local", 1), ("local", 2), ("ray", 1), ("ray", 2)):
            out = root / f"{engine}-{workers}"
            s, peak, _ = _batch(source, out, "--engine", engine, "--workers", str(workers))
            rate[engine, workers], steady[engine, workers] = a.images / s, _steady_rate(out)
            name = f"{engine}, {workers} worker{'s' * (workers > 1)}"
            print(f"{name:<22} {rate[engine, workers]:>9.1f} {steady[engine, workers]:>9.1f} {s:>8.1f} {peak:>8.0f}")
        same = read_rows(root / "local-2").equals(read_rows(root / "ray-2"))
        print(
            f"\nlocal 2 workers / 1: {rate['local', 2] / rate['local', 1]:.2f}x; ray / local at 2 workers: "
            f"{rate['ray', 2] / rate['local', 2]:.2f} (steady {steady['ray', 2] / steady['local', 2]:.2f}); "
            f"identical rows: {same}"
        )
        if not a.skip_cluster:
            _ray("start", "--head", "--num-cpus", "1", "--port", "6391", "--include-dashboard", "false")
            try:
                _ray("start", "--address", "127.0.0.1:6391", "--num-cpus", "1")
                out = root / "cluster"
                s, _, _ = _batch(source, out, "--engine", "ray", "--ray-address", "127.0.0.1:6391", env=CLUSTER_ENV)
                print(f"\n2-node Ray cluster (1 CPU each): {a.images / s:.1f} images/s; {_exactly_once(out, a.images)}")
                out = root / "drill"
                s, _, _ = _batch(
                    source, out, "--engine", "ray", "--ray-address", "127.0.0.1:6391",
                    on_start=lambda p: _kill_one_actor(p, max(8.0, s / 3)), env=CLUSTER_ENV,
                )  # fmt: skip
                print(f"  fault drill finished in {s:.1f} s; {_exactly_once(out, a.images)}")
            finally:
                subprocess.run(["ray", "stop", "--force"], capture_output=True, env=CLUSTER_ENV)
        print(f"\n{'local engine, 2 workers':<28} {'images':>9} {'peak MB':>8}")
        for n in (int(v) for v in a.memory.split(",")):
            folder = _inputs(root, n) if n != a.images else source
            s, peak, _ = _batch(folder, root / f"memory-{n}", "--workers", "2")
            print(f"{'':<28} {n:>9} {peak:>8.0f}   ({n / s:.1f} images/s)")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
