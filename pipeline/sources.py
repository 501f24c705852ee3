"""Source tables, declared (location, format, key, cursor, schema) and read in batches."""

from __future__ import annotations

import glob
import hashlib
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Literal

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.json as pajson
from fsspec.utils import glob_translate

from blocks._validation import check_identifier

Format = Literal["csv", "parquet", "jsonl"]
# What a load does with rows whose cursor it can't trust (NULL, or later than the run's start):
# refuse the table, or load them and name them in the run's summary and alert.
OnUntrustedCursor = Literal["fail", "load and report"]
HTTP_SCHEMES = ("https://", "http://")
REMOTE_SCHEMES = ("s3://", "gs://", "gcs://", *HTTP_SCHEMES)


class SourceError(ValueError):
    """A source file is missing or doesn't match its declaration; names table, file and fix.
    `transient`: the store could not be reached, so a retry may succeed."""

    def __init__(self, table: str, file: str, detail: str, *, transient: bool = False) -> None:
        super().__init__(f"{table}: {file}: {detail}")
        self.table, self.file, self.detail = table, file, detail
        self.transient = transient


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
    # Cursor values up to this much later than the run's start are trusted (clock skew, rows
    # written while the run reads); later ones, and NULL, are handled as on_untrusted_cursor says.
    cursor_tolerance: timedelta = timedelta(hours=1)
    on_untrusted_cursor: OnUntrustedCursor = "fail"
    # CSV fields read as NULL, unquoted only: by default just the empty field, so `NA` stays text.
    csv_null_values: tuple[str, ...] = ("",)
    # Whether a full load may find no rows (the table is then emptied); otherwise that fails.
    allow_empty: bool = False

    def __post_init__(self) -> None:
        # The name and the columns reach SQL: only plain identifiers, refused when declared.
        for what, value in [("name", self.name), *(("column", c) for c in self.schema.names)]:
            try:
                check_identifier(value, f"source {self.name!r}: {what}")
            except ValueError as exc:
                raise ValueError(f"{exc}; fix the source's declaration") from None
        missing = [c for c in (*self.primary_key, self.cursor) if c and c not in self.schema.names]
        if missing:
            raise ValueError(f"source {self.name}: key/cursor columns {missing} not in its schema")
        if self.on_untrusted_cursor not in ("fail", "load and report"):
            raise ValueError(
                f"source {self.name}: on_untrusted_cursor {self.on_untrusted_cursor!r} must be "
                "'fail' or 'load and report'"
            )


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
        # As remote globs match: `*` within one folder, `**` across any number of them.
        matched = glob.glob(location, recursive=True, include_hidden=True)
        files = sorted(path for path in matched if os.path.isfile(path))
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
    """The objects under an s3:// or gs:// glob, listed from the deepest folder without magic
    and matched per path segment as local globs are (`*` never crosses a `/`)."""
    scheme = source.location.split("://", 1)[0]
    filesystem, pattern = pafs.FileSystem.from_uri(source.location)
    folder = pattern[: min(pattern.find(c) for c in "*?[" if c in pattern)].rsplit("/", 1)[0]
    try:
        listed = filesystem.get_file_info(
            pafs.FileSelector(folder, recursive=True, allow_not_found=True)
        )
    except OSError as exc:
        raise source_error(source, source.location, exc) from exc
    matches = re.compile(glob_translate(pattern)).match
    return sorted(
        f"{scheme}://{info.path}"
        for info in listed
        if info.type == pafs.FileType.File and matches(info.path)
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
            raise source_error(source, file, exc) from exc
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
    trusted_until: datetime | None = None,
) -> Iterator[pa.RecordBatch]:
    """Stream the source file by file in record batches of at most `batch_rows` rows; `files`
    as `resolve_files` listed them (listed here when not given).

    With a cursor, only rows with `since <= cursor <= until` come back, and every row whose
    cursor is NULL or after `trusted_until`; Parquet row groups outside that are skipped by
    their statistics, so unchanged data costs little.
    """
    for _, batch in read_file_batches(
        source, batch_rows, since, until, files=files, trusted_until=trusted_until
    ):
        yield batch


def read_file_batches(
    source: Source,
    batch_rows: int = 250_000,
    since: datetime | None = None,
    until: datetime | None = None,
    *,
    files: Sequence[str] | None = None,
    trusted_until: datetime | None = None,
) -> Iterator[tuple[str, pa.RecordBatch]]:
    """`read_batches`, each batch with the file it came from."""
    window = cursor_filter(source, since, until, trusted_until)
    for file in resolve_files(source) if files is None else files:
        for batch in _file_batches(source, file, batch_rows, window):
            yield file, batch


def cursor_filter(
    source: Source,
    since: datetime | None,
    until: datetime | None,
    trusted_until: datetime | None = None,
) -> pc.Expression | None:
    """The dataset filter selecting the load window, or None to read everything. Rows whose
    cursor can't be trusted are always selected: a window must never hide them."""
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
    untrusted = cursor.is_null()
    bound = cursor_bound(source, trusted_until)
    if bound is not None:
        untrusted = untrusted | (cursor > bound)
    return combined | untrusted


def cursor_bound(source: Source, moment: datetime | None) -> pa.Scalar | None:
    """`moment` (naive UTC) as a value of the source's cursor type, or None when the cursor
    is not a time (an id, say) and so has no bound in time."""
    if moment is None or source.cursor is None:
        return None
    kind = source.schema.field(source.cursor).type
    if pa.types.is_timestamp(kind):
        return pa.scalar(moment, pa.timestamp(kind.unit, kind.tz))
    if pa.types.is_date(kind):
        return pa.scalar(moment.date(), kind)
    return None


def untrusted_mask(cursor: pa.Array, bound: pa.Scalar | None) -> pa.Array:
    """Which of these cursor values are NULL or after `bound`."""
    if bound is None:
        return pc.is_null(cursor)
    return pc.fill_null(pc.or_kleene(pc.is_null(cursor), pc.greater(cursor, bound)), False)


@dataclass(frozen=True)
class UntrustedRow:
    """A source row whose cursor is NULL or too late: where it is, its key and its cursor."""

    file: str
    row: int  # 1 is the file's first row of data (a CSV header is not counted)
    key: str  # e.g. "id=17"
    cursor: str  # the column
    value: datetime | date | int | str | None

    def __str__(self) -> str:
        value = "NULL" if self.value is None else str(self.value)
        return f"{self.file} row {self.row} ({self.key}): {self.cursor} = {value}"


def find_untrusted_rows(
    source: Source, file: str, bound: pa.Scalar | None, limit: int
) -> tuple[int, list[UntrustedRow]]:
    """Count the rows of `file` with a NULL or too late cursor and locate the first `limit`:
    a second read of the key and cursor columns, made only when there are some."""
    assert source.cursor is not None
    columns = [*source.primary_key, source.cursor]
    only_these = Source(
        source.name, file, source.format, pa.schema([source.schema.field(c) for c in columns]),
        source.primary_key, source.cursor, csv_null_values=source.csv_null_values,
    )  # fmt: skip
    total, offset = 0, 0
    found: list[UntrustedRow] = []
    for batch in _file_batches(only_these, file, 250_000, None, check=False):
        mask = untrusted_mask(batch.column(source.cursor), bound)
        indices = pc.indices_nonzero(mask).to_pylist()
        total += len(indices)
        for index in indices[: max(0, limit - len(found))]:
            row = batch.slice(index, 1).to_pylist()[0]
            key = ", ".join(f"{k}={row[k]!r}" for k in source.primary_key)
            found.append(UntrustedRow(file, offset + index + 1, key, source.cursor,
                                      row[source.cursor]))  # fmt: skip
        offset += batch.num_rows
    return total, found


# What Arrow says of a file with no bytes: no rows, which the load plan then judges.
EMPTY_FILE_SIGNS = ("Empty CSV file", "Empty JSON stream")


def _file_batches(
    source: Source,
    file: str,
    batch_rows: int,
    window: pc.Expression | None,
    *,
    check: bool = True,
) -> Iterator[pa.RecordBatch]:
    try:
        try:
            dataset = _dataset(source, file)
        except pa.ArrowInvalid as exc:
            if any(sign in str(exc) for sign in EMPTY_FILE_SIGNS):
                return
            raise
        if check:
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
        raise source_error(source, file, exc) from exc


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
        # Arrow's defaults read `NA`, `null`, `nan`, `N/A`... as NULL, even in text columns and
        # quoted: text must stay text, so only the declared values, and only unquoted.
        return ds.CsvFileFormat(
            convert_options=pacsv.ConvertOptions(
                column_types=source.schema,
                null_values=list(source.csv_null_values),
                strings_can_be_null=True,
                quoted_strings_can_be_null=False,
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
        raise source_error(source, file, exc) from exc


# Signs, in an error of Arrow's or fsspec's store clients, that the store could not be reached
# rather than that the file is missing, forbidden or malformed.
UNREACHABLE_SIGNS = (
    "NETWORK_CONNECTION", "curlCode", "Couldn't connect", "Connection reset", "Connection refused",
    "timed out", "Timeout", "SlowDown", "ServiceUnavailable", "503", "Temporary failure",
)  # fmt: skip


def source_error(source: Source, file: str, exc: BaseException) -> SourceError:
    """A SourceError explaining `exc`, marked transient when the store was out of reach."""
    unreachable = isinstance(exc, ConnectionError | TimeoutError) or (
        isinstance(exc, OSError)
        and not isinstance(exc, FileNotFoundError | PermissionError)
        and any(sign in str(exc) for sign in UNREACHABLE_SIGNS)
    )
    return SourceError(source.name, file, explain_arrow_error(exc), transient=unreachable)


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
