"""What `facemark batch` reads: folders (recursively), globs, text files of paths, or a CSV or
Parquet column of paths, expanded once into one list in a stable order."""

from __future__ import annotations

import csv
import glob
import os
from pathlib import Path

from facemark.errors import FacemarkError
from facemark.files import visible
from facemark.imaging import IMAGE_SUFFIXES

LIST_SUFFIXES = (".txt", ".csv", ".parquet")


def is_uri(path: str) -> bool:
    """s3://, gs://, hdfs:// and the like: read through pyarrow's file systems, not opened here."""
    return "://" in path


def _walk(root: Path) -> list[str]:
    """Every visible image under a folder, sorted; hidden folders and files (and macOS ._ stubs)
    are skipped."""
    found = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if visible(d))
        found += [
            os.path.join(folder, f)
            for f in sorted(files)
            if visible(f) and os.path.splitext(f)[1].lower() in IMAGE_SUFFIXES
        ]
    return found


def _column(path: Path, column: str | None) -> list[str]:
    name = column or "path"
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(path, columns=[name])
        except (OSError, ValueError, KeyError) as exc:
            raise FacemarkError(f"{path}: cannot read column {name!r} ({str(exc)[:100]})") from None
        return [str(v) for v in table.column(name).to_pylist() if v]
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        header = next(reader, None) or []
        if name not in header:
            raise FacemarkError(f"{path}: no column {name!r} (columns: {', '.join(header) or 'none'}); pass --column")
        i = header.index(name)
        return [row[i].strip() for row in reader if len(row) > i and row[i].strip()]


def expand_sources(sources: list[str], column: str | None = None) -> list[str]:
    """The images the sources name, in order, each once; local paths made absolute so that
    workers elsewhere (a Ray cluster on shared storage) find them."""
    paths: list[str] = []
    for src in sources:
        p = Path(src)
        if is_uri(src):
            paths.append(src)
        elif p.is_dir():
            paths += _walk(p)
        elif p.is_file() and p.suffix.lower() == ".txt":
            lines = p.read_text(encoding="utf-8-sig").splitlines()
            paths += [ln.strip() for ln in lines if ln.strip() and not ln.startswith("#")]
        elif p.is_file() and p.suffix.lower() in (".csv", ".parquet"):
            paths += _column(p, column)
        elif p.is_file():
            paths.append(src)
        elif glob.has_magic(src):
            matches = sorted(m for m in glob.glob(src, recursive=True) if os.path.isfile(m))
            if not matches:
                raise FacemarkError(f"{src}: no file matches this pattern")
            paths += matches
        else:
            raise FacemarkError(f"{src}: no such file or folder")
    absolute = [p if is_uri(p) else os.path.abspath(p) for p in paths]
    unique = list(dict.fromkeys(absolute))
    if not unique:
        raise FacemarkError(f"no images found in {' '.join(sources)}")
    return unique
