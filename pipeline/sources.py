"""Source tables, declared (location, format, key, cursor, schema) and read in batches."""

from __future__ import annotations

import fnmatch
import glob
import hashlib
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.json as pajson

Format = Literal["csv", "parquet", "jsonl"]
HTTP_SCHEMES = ("https://", "http://")
REMOTE_SCHEMES = ("s3://", "gs://", "gcs://", *HTTP_SCHEMES)


class SourceError(ValueError):
    """A source file is missing or doesn't match its declaration; names table, file and fix."""

    def __init__(self, table: str, file: str, detail: str) -> None:
        super().__init__(f"{table}: {file}: {detail}")
        self.table, self.file, self.detail = table, file, detail


@dataclass(frozen=True)
class Source:
    """One source table: `name` is the raw table it loads into; in a dataset's declaration,
    `location` is relative to the dataset's root (see pipeline/datasets/)."""

    name: str
    location: str
    format: Format
    schema: pa.Schema
    primary_key: tuple[str, ...]
    cursor: str | None = None
    # False when the cursor tracks changes (e.g. `updated_at`), not events: a backfill window
    # then doesn't apply and the table loads incrementally, so the window's facts find their rows.
    backfill_by_window: bool = True

    def __post_init__(self) -> None:
        missing = [c for c in (*self.primary_key, self.cursor) if c and c not in self.schema.names]
        if missing:
            raise ValueError(f"source {self.name}: key/cursor columns {missing} not in its schema")


def resolve_files(source: Source) -> list[str]:
    """The files a source's location names, sorted; a glob must match at least one."""
    location = source.location
    if location.startswith(HTTP_SCHEMES):
        if glob.has_magic(location):
            raise SourceError(
                source.name,
                location,
                "HTTP(S) can't list files, so a glob can't match there; name one file, "
                "or put the files in s3:// or gs://",
            )
        return [location]
    if location.startswith(REMOTE_SCHEMES):
        files = _remote_glob(source) if glob.has_magic(location) else [location]
    elif glob.has_magic(location):
        files = sorted(glob.glob(location))
    else:
        files = [location] if Path(location).exists() else []
    if not files:
        demo = (
            ""
            if location.startswith(REMOTE_SCHEMES)
            else "generate the demo data (`make demo`) or "
        )
        raise SourceError(source.name, location, f"no file found; {demo}fix the source's location")
    return files


def _remote_glob(source: Source) -> list[str]:
    """The objects under an s3:// or gs:// glob, listed from the deepest folder without magic."""
    scheme = source.location.split("://", 1)[0]
    filesystem, pattern = pafs.FileSystem.from_uri(source.location)
    folder = pattern[: min(pattern.find(c) for c in "*?[" if c in pattern)].rsplit("/", 1)[0]
    try:
        listed = filesystem.get_file_info(
            pafs.FileSelector(folder, recursive=True, allow_not_found=True)
        )
    except OSError as exc:
        raise SourceError(source.name, source.location, explain_arrow_error(exc)) from exc
    return sorted(
        f"{scheme}://{info.path}"
        for info in listed
        if info.type == pafs.FileType.File and fnmatch.fnmatchcase(info.path, pattern)
    )


def filesystem_and_path(location: str) -> tuple[pafs.FileSystem | None, str]:
    """The filesystem that reads `location` and the path on it (None: the local one).

    s3:// and gs:// use Arrow's own clients and the usual credential chains (environment,
    config files, workload identity); http(s):// goes through fsspec with range requests.
    """
    if location.startswith(HTTP_SCHEMES):
        # Imported here: aiohttp takes ~0.4 s to import, which local runs needn't pay.
        from fsspec.implementations.http import HTTPFileSystem

        return pafs.PyFileSystem(pafs.FSSpecHandler(HTTPFileSystem())), location
    if location.startswith(REMOTE_SCHEMES):
        return pafs.FileSystem.from_uri(location)
    return None, location


def fingerprint(source: Source, files: Sequence[str]) -> str:
    """A digest of the declaration and of what its files hold, local or remote.

    Full-refresh files are hashed by content, so a rewrite of the same bytes is unchanged.
    Cursor sources are large and append-only: name, size and modification time, no read;
    '' (never skipped) when the store reports no modification time (plain HTTP).
    """
    digest = hashlib.sha256(repr((source.schema, source.primary_key, source.cursor)).encode())
    for file in files:
        filesystem, path = filesystem_and_path(file)
        try:
            if source.cursor is None:
                digest.update(f"{file}:{_content_digest(filesystem, path)}".encode())
                continue
            stamp = _size_and_mtime(filesystem, path)
        except OSError as exc:
            raise SourceError(source.name, file, explain_arrow_error(exc)) from exc
        if stamp is None:
            return ""
        digest.update(f"{file}:{stamp}".encode())
    return digest.hexdigest()


def _content_digest(filesystem: pafs.FileSystem | None, path: str) -> str:
    with open(path, "rb") if filesystem is None else filesystem.open_input_stream(path) as file:
        return hashlib.file_digest(file, "sha256").hexdigest()


def _size_and_mtime(filesystem: pafs.FileSystem | None, path: str) -> str | None:
    if filesystem is None:
        stat = os.stat(path)
        return f"{stat.st_size}:{stat.st_mtime_ns}"
    info = filesystem.get_file_info(path)
    if info.type != pafs.FileType.File:
        raise FileNotFoundError(f"no such file: {path}")
    return None if info.mtime_ns is None else f"{info.size}:{info.mtime_ns}"


def read_batches(
    source: Source,
    batch_rows: int = 250_000,
    since: datetime | None = None,
    until: datetime | None = None,
    *,
    files: Sequence[str] | None = None,
) -> Iterator[pa.RecordBatch]:
    """Stream the source file by file in record batches of at most `batch_rows` rows; `files`
    as `resolve_files` listed them (listed here when not given).

    With a cursor, only rows with `since <= cursor <= until` come back; Parquet row groups
    outside that range are skipped by their statistics, so unchanged data costs little.
    """
    window = cursor_filter(source, since, until)
    for file in resolve_files(source) if files is None else files:
        yield from _file_batches(source, file, batch_rows, window)


def cursor_filter(
    source: Source, since: datetime | None, until: datetime | None
) -> pc.Expression | None:
    """The dataset filter selecting the load window, or None to read everything."""
    if source.cursor is None:
        return None
    cursor = pc.field(source.cursor)
    conditions = [cursor >= since] if since is not None else []
    if until is not None:
        conditions.append(cursor <= until)
    if not conditions:
        return None
    combined = conditions[0]
    for condition in conditions[1:]:
        combined = combined & condition
    return combined


def _file_batches(
    source: Source, file: str, batch_rows: int, window: pc.Expression | None
) -> Iterator[pa.RecordBatch]:
    try:
        dataset = _dataset(source, file)
        check_columns(source, file, dataset.schema)
        scanner = dataset.scanner(
            columns=source.schema.names,
            filter=window,
            batch_size=batch_rows,
            # Arrow's default readahead decodes up to 16 batches ahead of the consumer, which
            # makes memory grow with the file; one batch ahead keeps it bounded by batch_rows.
            batch_readahead=1,
            fragment_readahead=1,
            fragment_scan_options=_scan_options(source, file),
        )
        for batch in scanner.to_batches():
            if batch.num_rows:
                yield _conform(source, file, batch)
    except SourceError:
        raise
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, OSError) as exc:
        raise SourceError(source.name, file, explain_arrow_error(exc)) from exc


def _scan_options(source: Source, file: str) -> ds.FragmentScanOptions | None:
    """Parquet pre-buffering only for remote files, where few large reads beat many small ones;
    locally it holds every column of a row group in memory before the first batch."""
    if source.format != "parquet":
        return None
    return ds.ParquetFragmentScanOptions(pre_buffer=file.startswith(REMOTE_SCHEMES))


def _dataset(source: Source, file: str) -> ds.Dataset:
    filesystem, path = filesystem_and_path(file)
    return ds.dataset(path, format=_file_format(source), filesystem=filesystem)


def _file_format(source: Source) -> ds.FileFormat:
    if source.format == "parquet":
        return ds.ParquetFileFormat()
    if source.format == "csv":
        return ds.CsvFileFormat(
            convert_options=pacsv.ConvertOptions(
                column_types=source.schema, strings_can_be_null=True
            ),
            read_options=pacsv.ReadOptions(block_size=1 << 24),
        )
    return ds.JsonFileFormat(parse_options=pajson.ParseOptions(explicit_schema=source.schema))


def check_columns(source: Source, file: str, found: pa.Schema) -> None:
    """Refuse a file whose columns or column types differ from the declaration."""
    added = [name for name in found.names if name not in source.schema.names]
    dropped = [name for name in source.schema.names if name not in found.names]
    if added or dropped:
        raise SourceError(
            source.name,
            file,
            f"columns differ from the declared schema: new {added or 'none'}, "
            f"missing {dropped or 'none'}; update the source's declaration (its dataset in "
            "pipeline/datasets/)",
        )
    for declared in source.schema:
        actual = found.field(declared.name).type
        if not _compatible(declared.type, actual):
            raise SourceError(
                source.name,
                file,
                f"column {declared.name!r} is {actual}, declared {declared.type}; "
                "the producer changed its type: fix the file or the declaration",
            )


def _compatible(declared: pa.DataType, actual: pa.DataType) -> bool:
    if declared == actual:
        return True
    families = (
        pa.types.is_integer,
        pa.types.is_floating,
        pa.types.is_timestamp,
        pa.types.is_string,
    )
    widened_int = pa.types.is_integer(actual) and pa.types.is_floating(declared)
    return (
        widened_int
        or any(f(declared) and f(actual) for f in families)
        or (pa.types.is_large_string(actual) and pa.types.is_string(declared))
    )


def _conform(source: Source, file: str, batch: pa.RecordBatch) -> pa.RecordBatch:
    if batch.schema.equals(source.schema):
        return batch
    try:
        return batch.select(source.schema.names).cast(source.schema)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise SourceError(source.name, file, explain_arrow_error(exc)) from exc


def explain_arrow_error(exc: BaseException) -> str:
    """Arrow's parse error, with the fix; Arrow already names the row or column it choked on."""
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    # Arrow wraps the useful part ("CSV parse error: Row #9: ...") in dataset boilerplate.
    message = message.rsplit("Invalid: ", 1)[-1]
    if isinstance(exc, FileNotFoundError):
        return f"file not found ({message}); fix the source's location"
    if isinstance(exc, PermissionError) or any(
        sign in message for sign in ("ACCESS_DENIED", "AccessDenied", "Forbidden", "403")
    ):
        return (
            f"access denied ({message}); give the worker's credentials read access to it "
            "(AWS: environment, profile or IRSA role; GCS: workload identity or "
            "GOOGLE_APPLICATION_CREDENTIALS)"
        )
    return f"cannot read it: {message}; fix the file or the source declaration"
