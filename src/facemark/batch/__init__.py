"""`facemark batch`: landmark a data set of any size into Parquet, on every core (`local`) or on
a Ray cluster (`ray`), restartable shard by shard. Both engines give the same rows."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from facemark.batch.rows import BatchSettings
from facemark.batch.shards import BatchRun, read_rows
from facemark.batch.sources import expand_sources
from facemark.errors import FacemarkError

ENGINES = ("local", "ray")
SHARD_SIZE = 256


def run_batch(
    sources: list[str],
    out: str | Path,
    settings: BatchSettings | None = None,
    engine: str = "local",
    workers: int | None = None,
    shard_size: int = SHARD_SIZE,
    resume: bool = False,
    column: str | None = None,
    ray_address: str | None = None,
    batch_size: int = 64,
    progress: bool = True,
) -> dict:
    """Landmark every image the sources name into OUT; returns the run's summary."""
    from tqdm import tqdm

    settings = settings or BatchSettings()
    if engine not in ENGINES:
        raise FacemarkError(f"unknown engine {engine!r}; known: {', '.join(ENGINES)}")
    settings.landmarker()  # a bad model or detector fails here, before any work
    run = BatchRun(out, settings, shard_size, resume)
    try:
        run.start(None if resume else expand_sources(sources, column), sources)
        todo = run.pending()
        images = sum(run.size(s) for s in todo)
        n = workers or os.cpu_count() or 1
        if engine == "local":
            from facemark.batch.local import run_local

            done = run_local(run, todo, n)
        else:
            from facemark.batch.ray_engine import run_ray

            done = run_ray(run, todo, workers, batch_size, ray_address)
        t0 = time.perf_counter()
        totals = {"rows": 0, "faces": 0}
        with tqdm(total=images, unit="img", file=sys.stderr, disable=None if progress else True) as bar:
            for _, rows, faces in done:
                totals["rows"] += rows
                totals["faces"] += faces
                bar.update(rows)
        seconds = time.perf_counter() - t0
        summary = {
            "images": len(run.inputs),
            "unreadable": run.count_errors(),  # over every shard, this run's and earlier ones'
            "processed": totals["rows"],
            "faces": totals["faces"],
            "shards_written": len(todo),
            "shards_skipped": run.shards - len(todo),
            "seconds": round(seconds, 2),
            "images_per_s": round(totals["rows"] / seconds, 1) if seconds > 0 and totals["rows"] else None,
            "engine": engine,
        }
        run.finish(summary)
        return summary
    except BaseException:
        run.close()
        raise


__all__ = ["BatchSettings", "ENGINES", "read_rows", "run_batch"]
