"""A batch run's output folder: the inputs listed once, rows in Parquet shards written whole or
not at all, and a manifest. A shard's file exists only when it is complete, so `--resume` redoes
exactly the shards whose file is missing.

    OUT/manifest.json        settings, counts, and whether the run finished
    OUT/inputs.parquet       the expanded input list (index = row order), fixed at the first run
    OUT/part-00000.parquet   rows of inputs 0 .. shard_size - 1, and so on
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict
from pathlib import Path

from facemark.batch.rows import BatchSettings, model_version, schema
from facemark.errors import FacemarkError
from facemark.files import FolderLock, check_output_folder
from facemark.imaging import write_bytes_atomic

MANIFEST = "manifest.json"
INPUTS = "inputs.parquet"


def shard_name(i: int) -> str:
    return f"part-{i:05d}.parquet"


class BatchRun:
    """The output folder of one batch job, locked while this process writes to it."""

    def __init__(self, out: str | Path, settings: BatchSettings, shard_size: int, resume: bool):
        import pyarrow as pa
        import pyarrow.parquet as pq

        self.out = Path(out)
        self.settings, self.shard_size = settings, shard_size
        self.version = model_version(settings.model)
        manifest = self.out / MANIFEST
        if resume and not manifest.exists():
            raise FacemarkError(f"{self.out}: nothing to resume (no {MANIFEST}: no batch was started here)")
        if not resume and manifest.exists():
            raise FacemarkError(
                f"{self.out}: already holds a batch run; pass --resume to continue it or pick another --out"
            )
        check_output_folder(self.out)
        self.lock = FolderLock(self.out, "batch")
        self.pa, self.pq = pa, pq
        self.inputs = None
        if resume:
            saved = json.loads(manifest.read_text())
            mine = {"settings": asdict(settings), "model_version": self.version}
            theirs = {"settings": saved["settings"], "model_version": saved["model_version"]}
            if mine != theirs:
                raise FacemarkError(f"{self.out}: was started with other settings ({theirs}); resume it with those")
            self.shard_size = saved["shard_size"]
            self.inputs = pq.read_table(self.out / INPUTS).column("path")
            for stale in self.out.glob(".part-*.parquet.tmp*"):  # a killed run's unfinished shard
                stale.unlink()

    def start(self, paths: list[str] | None, sources: list[str]) -> None:
        """Fix the input list (a new run) and write the manifest."""
        if self.inputs is None:
            table = self.pa.table({"path": self.pa.array(paths, self.pa.string())})
            tmp = self.out / f".{INPUTS}.tmp"
            self.pq.write_table(table, tmp)
            os.replace(tmp, self.out / INPUTS)
            self.inputs = table.column("path")
            self._manifest(sources=sources, finished=False)

    @property
    def shards(self) -> int:
        return -(-len(self.inputs) // self.shard_size)

    def pending(self) -> list[int]:
        return [i for i in range(self.shards) if not (self.out / shard_name(i)).exists()]

    def size(self, shard: int) -> int:
        """How many inputs the shard holds (the last one may be short)."""
        return min(self.shard_size, len(self.inputs) - shard * self.shard_size)

    def items(self, shard: int) -> list[tuple[int, str]]:
        start = shard * self.shard_size
        paths = self.inputs.slice(start, self.shard_size).to_pylist()
        return list(zip(range(start, start + len(paths)), paths))

    def count_errors(self) -> int:
        """Rows with an error in every shard written so far (reads only that column)."""
        total = 0
        for i in range(self.shards):
            if (self.out / shard_name(i)).exists():
                errors = self.pq.read_table(self.out / shard_name(i), columns=["error"]).column("error")
                total += len(errors) - errors.null_count
        return total

    def finish(self, summary: dict) -> None:
        self._manifest(finished=True, summary=summary)
        self.lock.release()

    def close(self) -> None:
        self.lock.release()

    def _manifest(self, **fields) -> None:
        path = self.out / MANIFEST
        old = json.loads(path.read_text()) if path.exists() else {}
        doc = {
            **old,
            "settings": asdict(self.settings),
            "model_version": self.version,
            "shard_size": self.shard_size,
            "inputs": len(self.inputs),
            "shards": self.shards,
            "updated": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            **fields,
        }
        write_bytes_atomic(path, json.dumps(doc, indent=2).encode())


def write_shard(out: Path, shard: int, rows: list[dict]) -> None:
    """Write rows to OUT/part-NNNNN.parquet atomically (callable from any worker process)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pylist(sorted(rows, key=lambda r: r["index"]), schema=schema())
    tmp = out / f".{shard_name(shard)}.tmp{os.getpid()}"
    pq.write_table(table, tmp)
    os.replace(tmp, out / shard_name(shard))


def read_rows(out: str | Path):
    """Every row of a batch run's shards as one pyarrow Table, in input order."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    files = sorted(Path(out).glob("part-*.parquet"))
    if not files:
        raise FacemarkError(f"{out}: no shards")
    return pa.concat_tables([pq.read_table(f) for f in files])
