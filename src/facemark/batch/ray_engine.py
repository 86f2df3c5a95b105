"""The Ray engine: Ray Data does the distributing. A dataset of (index, path) rows goes
through `map_batches` with a pool of landmarker actors; the driver gathers each shard's rows
(keyed by input index, so a retried batch cannot add a row twice) and writes the shard as the
local engine would. Images are read and landmarked on the workers; only rows travel back.

On a cluster every worker needs facemark installed and the paths readable: shared storage, or
object-store URIs (s3://...) that pyarrow's file systems read.
"""

from __future__ import annotations

import logging
import warnings
from collections import defaultdict
from collections.abc import Iterator

from facemark.batch.rows import BatchSettings, landmark_rows, schema
from facemark.batch.shards import write_shard
from facemark.errors import FacemarkError


class _Landmarkers:
    """A Ray Data actor: one landmarker, many batches."""

    def __init__(self, settings: BatchSettings, version: str):
        self.settings, self.version = settings, version
        self.landmarker = settings.landmarker()

    def __call__(self, batch):
        """A pyarrow batch of (index, path) rows -> a Table of output rows."""
        import pyarrow as pa

        items = list(zip(batch["index"].to_pylist(), batch["path"].to_pylist()))
        rows = landmark_rows(self.landmarker, items, self.settings.model, self.version)
        return pa.Table.from_pylist(rows, schema=schema())


def _batches(ds, ray):
    """The dataset's output batches; a failure inside Ray (a bug, a worker that cannot start)
    is one error line, not Ray's remote traceback."""
    try:
        yield from ds.iter_batches(batch_size=None, batch_format="pyarrow")
    except ray.exceptions.RayError as exc:
        cause = str(exc).strip().splitlines()[-1][:200]
        raise FacemarkError(f"the Ray job failed: {cause}; --resume continues with the shards not written") from None


def run_ray(
    run, shards: list[int], workers: int | None, batch_size: int, address: str | None, cpus_per_actor: float = 0.5
) -> Iterator[tuple[int, int, int]]:
    """(shard, rows, faces) as each shard is written."""
    try:
        import ray
    except ModuleNotFoundError:
        raise FacemarkError("--engine ray needs Ray: pip install 'facemark[ray]'") from None
    import pyarrow as pa

    started_here = not ray.is_initialized()
    if started_here:
        try:
            ray.init(address=address, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise FacemarkError(f"cannot join the Ray cluster at {address or 'a new local one'} ({exc})") from None
    try:
        concurrency = workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
        items = [item for shard in shards for item in run.items(shard)]
        if not items:
            return
        index, path = zip(*items)
        table = pa.table({"index": pa.array(index, pa.int64()), "path": pa.array(path, pa.string())})
        blocks = [table.slice(i, batch_size) for i in range(0, len(table), batch_size)]  # work to spread
        expected = {s: run.size(s) for s in shards}
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False
        logging.getLogger("ray.data").setLevel(logging.ERROR)  # its notices would bury our progress line
        warnings.filterwarnings("ignore", category=UserWarning, module=r"ray\.")
        # Ray Data's actor pools restart a killed actor and retry its batch (max_restarts=-1,
        # max_task_retries=-1 by default); gathering by index keeps every row once.
        ds = ray.data.from_arrow(blocks).map_batches(
            _Landmarkers,
            fn_constructor_kwargs={"settings": run.settings, "version": run.version},
            batch_size=batch_size,
            batch_format="pyarrow",
            compute=ray.data.ActorPoolStrategy(size=concurrency),
            num_cpus=cpus_per_actor,  # fractional: an actor pool holding every CPU starves Ray's own tasks
        )
        gathered: dict[int, dict[int, dict]] = defaultdict(dict)
        for batch in _batches(ds, ray):
            for row in batch.to_pylist():
                s = row["index"] // run.shard_size
                gathered[s][row["index"]] = row
                if len(gathered[s]) == expected[s]:
                    rows = list(gathered.pop(s).values())
                    write_shard(run.out, s, rows)
                    yield s, len(rows), sum(len(r["faces"] or ()) for r in rows)
        if gathered:
            raise FacemarkError(f"Ray returned incomplete shards {sorted(gathered)}; --resume redoes them")
    finally:
        if started_here:
            ray.shutdown()
