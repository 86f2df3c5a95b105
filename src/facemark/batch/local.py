"""The local engine: one process per worker, each with its own landmarker (one ONNX Runtime
thread), working through whole shards and writing each one itself. Streaming: the parent holds
the input list (Arrow, compact) and a few shards in flight, never the rows of the run."""

from __future__ import annotations

import multiprocessing as mp
import os
from collections.abc import Iterator
from pathlib import Path

from facemark.batch.rows import BatchSettings, landmark_rows
from facemark.batch.shards import write_shard

_worker: dict = {}


def _start(settings: BatchSettings, version: str, out: str) -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    _worker.update(landmarker=settings.landmarker(), settings=settings, version=version, out=Path(out))


def _shard(job: tuple[int, list[tuple[int, str]]]) -> tuple[int, int, int]:
    """Landmark one shard and write it: (shard, rows, faces)."""
    shard, items = job
    rows = landmark_rows(_worker["landmarker"], items, _worker["settings"].model, _worker["version"])
    write_shard(_worker["out"], shard, rows)
    return shard, len(rows), sum(len(r["faces"] or ()) for r in rows)


def run_local(run, shards: list[int], workers: int) -> Iterator[tuple[int, int, int]]:
    """(shard, rows, faces) as each shard is written."""
    jobs = ((i, run.items(i)) for i in shards)
    if workers == 1:  # no pool: the same code in this process (easier to debug, no start-up)
        _start(run.settings, run.version, str(run.out))
        yield from map(_shard, jobs)
        return
    ctx = mp.get_context("spawn")  # fork after ONNX Runtime or OpenCV threads exist is unsafe
    with ctx.Pool(workers, initializer=_start, initargs=(run.settings, run.version, str(run.out))) as pool:
        yield from pool.imap_unordered(_shard, jobs)
