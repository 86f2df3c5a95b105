"""The files a command reads and writes: inputs found, outputs named so that they never replace an
input or each other, and images decoded in memory-sized chunks where one bad file is one error.

Output naming rule (`facemark detect --help` says it too): a drawn copy keeps its input's path
relative to the inputs' common folder, and its format (JPEG in, JPEG out) unless `--save-as`
names another, in which case the new extension is appended (`a.jpg` -> `a.jpg.png`). Names
in one folder are distinct, so no two outputs of a run can share a path.
"""

from __future__ import annotations

import glob
import json
import os
import sys
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from itertools import islice
from pathlib import Path
from typing import IO, Any

import numpy as np

from facemark.errors import FacemarkError
from facemark.imaging import IMAGE_SUFFIXES

SAVE_FORMATS = ("same", "jpg", "png")


def visible(name: str) -> bool:
    """Hidden files and folders and OS metadata stubs (macOS `._IMG.JPG`, `.DS_Store`) are not photos."""
    return not name.startswith(".")


def expand_images(args: list[str]) -> list[Path]:
    """Files, folders (their visible images, sorted) and glob patterns, in the order given; an
    input named twice is read once."""
    paths: list[Path] = []
    for arg in args:
        p = Path(arg)
        if p.is_dir():
            paths += sorted(f for f in p.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES and visible(f.name))
        elif not p.exists() and glob.has_magic(arg):
            matches = sorted(Path(m) for m in glob.glob(arg) if visible(Path(m).name) and not Path(m).is_dir())
            if not matches:
                raise FacemarkError(f"{arg}: no file matches this pattern")
            paths += matches
        else:
            paths.append(p)
    if args and not paths:
        raise FacemarkError(f"no images found in {' '.join(args)}")
    seen: set[Path] = set()
    unique = []
    for p in paths:
        key = p.absolute()
        if key not in seen:
            seen.add(key)
            unique.append(p)
    return unique


def same_file(a: str | Path, b: str | Path) -> bool:
    """Whether two paths name one file (through links and `..`), existing or not."""
    a, b = Path(a), Path(b)
    if a.exists() and b.exists():
        return os.path.samefile(a, b)
    return a.resolve() == b.resolve()


def check_output_file(path: str | Path, inputs: list[str | Path] = (), others: list[str | Path] = ()) -> Path:
    """Refuse, before any work, an output file that is an input, another output of the same run,
    a folder, or in a folder that does not exist or cannot be written."""
    path = Path(path)
    for src in inputs:
        if same_file(path, src):
            raise FacemarkError(f"{path}: the output would replace the input; choose another name")
    for other in others:
        if other and same_file(path, other):
            raise FacemarkError(f"{path}: named for two outputs; give each its own file")
    if path.is_dir():
        raise FacemarkError(f"{path}: is a folder; name a file to write")
    parent = path.parent
    if not parent.is_dir():
        raise FacemarkError(f"{path}: the folder {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise FacemarkError(f"{path}: the folder {parent} is not writable")
    return path


def check_output_folder(folder: str | Path, inputs: list[Path] = ()) -> Path:
    """Create an output folder, refusing one that is a file, cannot be made or holds inputs."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise FacemarkError(f"{folder}: exists and is not a folder; name a folder for the output")
    real = folder.resolve()
    for src in inputs:
        if real in src.resolve().parents:
            raise FacemarkError(f"{folder}: holds input {src}; write the output to a folder of its own")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise FacemarkError(f"{folder}: cannot create the output folder ({exc.strerror})") from None
    if not os.access(folder, os.W_OK):
        raise FacemarkError(f"{folder}: the output folder is not writable")
    return folder


def output_names(inputs: list[Path], folder: Path, save_as: str = "same") -> dict[Path, Path]:
    """Each input's drawn copy under `folder`, by the module's naming rule."""
    if save_as not in SAVE_FORMATS:
        raise FacemarkError(f"unknown save format {save_as!r}; known: {', '.join(SAVE_FORMATS)}")
    absolute = [p.absolute() for p in inputs]
    common = Path(os.path.commonpath([str(p.parent) for p in absolute])) if absolute else folder
    out = {}
    for p, a in zip(inputs, absolute):
        rel = a.relative_to(common)
        keep = save_as == "same" and rel.suffix.lower() in IMAGE_SUFFIXES
        out[p] = folder / (rel if keep else rel.with_name(f"{rel.name}.{'png' if save_as == 'same' else save_as}"))
    return out


CHUNK_COUNT = 256  # images run through the model together at most
CHUNK_BYTES = 256 << 20  # and at most this much decoded pixel data held at once


def _nbytes(value: Any) -> int:
    if isinstance(value, np.ndarray):
        return value.nbytes
    if isinstance(value, tuple | list):
        return sum(_nbytes(v) for v in value)
    return 0


def decode_in_chunks(
    paths: list[Path], read: Callable[[Path], Any], max_count: int = CHUNK_COUNT, max_bytes: int = CHUNK_BYTES
) -> Iterator[list[tuple[Path, Any]]]:
    """`read(path)` for every path, two at a time (OpenCV decodes outside the GIL), yielded in
    chunks bounded by count and by decoded bytes. A `FacemarkError` from `read` is the value for
    that path: the caller reports it and the batch goes on."""

    def safe(path: Path) -> Any:
        try:
            return read(path)
        except FacemarkError as exc:
            return exc

    with ThreadPoolExecutor(2) as pool:
        todo = iter(paths)
        pending = deque((p, pool.submit(safe, p)) for p in islice(todo, 4))  # decodes in flight
        chunk: list[tuple[Path, Any]] = []
        size = 0
        while pending:
            path, future = pending.popleft()
            chunk.append((path, future.result()))
            size += _nbytes(chunk[-1][1])
            for p in islice(todo, 1):
                pending.append((p, pool.submit(safe, p)))
            if len(chunk) >= max_count or size >= max_bytes:
                yield chunk
                chunk, size = [], 0
        if chunk:
            yield chunk


def _nulled(value: Any) -> Any:
    """`value` with every NaN or infinite float replaced by None."""
    if isinstance(value, float):
        return value if np.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _nulled(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_nulled(v) for v in value]
    return value


class JsonList:
    """A JSON list written entry by entry: what was done is on the stream even if a later image
    fails, and the list is closed on any exit (strict JSON: no NaN)."""

    def __init__(self, stream: IO[str] | None = None):
        self.stream = stream or sys.stdout
        self.count = 0

    def __enter__(self) -> JsonList:
        self.stream.write("[")
        return self

    def add(self, entry: dict) -> None:
        try:
            text = json.dumps(entry, allow_nan=False)
        except ValueError:  # a NaN from a broken model: null in strict JSON, not a crash mid-batch
            text = json.dumps(_nulled(entry), allow_nan=False)
        self.stream.write(("," if self.count else "") + "\n" + text)
        self.stream.flush()
        self.count += 1

    def __exit__(self, *exc) -> None:
        self.stream.write("\n]\n")
        self.stream.flush()


class FolderLock:
    """An exclusive lock on FOLDER/.lock while a run (a training, a batch) writes there. The OS
    drops it when the process ends, however it ends, so a killed run's lock is never in the way."""

    def __init__(self, folder: Path, what: str = "run"):
        import fcntl

        self.file = open(folder / ".lock", "a+")  # noqa: SIM115  (held for the run)
        try:
            fcntl.flock(self.file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self.file.seek(0)
            holder = self.file.read().strip() or "another process"
            self.file.close()
            raise FacemarkError(f"{folder}: another {what} ({holder}) is writing to this folder") from None
        self.file.truncate(0)
        self.file.write(f"pid {os.getpid()}")
        self.file.flush()

    def release(self) -> None:
        self.file.close()
