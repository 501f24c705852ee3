"""Load one source into the warehouse: plan the load from what is known (pure), then stream
into staging, check it and publish atomically as planned."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import reduce
from typing import Any, Literal

import pyarrow as pa
import pyarrow.compute as pc
from prefect.states import State

from blocks.warehouse import Warehouse
from pipeline.sources import (
    Source,
    SourceError,
    UntrustedRow,
    cursor_bound,
    find_untrusted_rows,
    fingerprint,
    read_file_batches,
    resolve_files,
    untrusted_mask,
)

LOADED_AT = "_loaded_at"
SOURCE_STATE = "_elt_source_state"
Mode = Literal["incremental", "full refresh", "backfill", "unchanged"]
# Rows with an untrusted cursor named in a table's result (and so in the artifact and alert).
REPORTED_ROWS = 20


class LoadError(ValueError):
    """A table could not be loaded; its target is unchanged. Names the table and the fix."""

    def __init__(self, table: str, detail: str) -> None:
        super().__init__(f"{table}: {detail}")
        self.table = table


@dataclass(frozen=True)
class LoadWindow:
    """Which cursor values a run loads: `since` inclusive, `until` inclusive."""

    since: datetime | None = None
    until: datetime | None = None


@dataclass
class TableLoad:
    """What one table's load did, for the run's artifact."""

    table: str
    mode: Mode
    rows_read: int = 0
    inserted: int = 0
    updated: int = 0
    watermark_before: Any = None
    watermark_after: Any = None
    seconds: float = 0.0
    error: str = ""
    # Loaded although their cursor is NULL or too late (on_untrusted_cursor="load and report"):
    # how many, and the first REPORTED_ROWS of them by file and row.
    untrusted_count: int = 0
    untrusted_rows: list[UntrustedRow] = field(default_factory=list)


@dataclass(frozen=True)
class LoadFacts:
    """What is known about one table before its load decides anything."""

    source: Source
    full_refresh: bool = False
    backfill: LoadWindow | None = None
    target_columns: tuple[str, ...] | None = None  # None: the target table doesn't exist yet
    files: tuple[str, ...] = ()  # listed once: the read must see the files the fingerprint saw
    fingerprint: str = ""  # '': the files can't be fingerprinted, so they are never skipped
    stored_fingerprint: str | None = None  # what the target was last loaded from in full
    run_started: datetime | None = None  # naive UTC; None: no cursor value is too late
    replace_copies_rows: bool = False  # the warehouse's replace copies rows (see Warehouse)
    seconds: float = 0.0  # spent gathering them: part of the table's load time

    @property
    def incremental(self) -> bool:
        """Whether rows load by their cursor (from the watermark, or a backfill window)."""
        return self.source.cursor is not None and not self.full_refresh

    @property
    def window(self) -> LoadWindow | None:
        """The backfill window, if it applies: change-tracked tables load incrementally."""
        return self.backfill if self.source.backfill_by_window and self.incremental else None

    @property
    def may_skip(self) -> bool:
        """Whether an unchanged fingerprint would skip the load, so the stored one is worth
        looking up: never on a full refresh or a backfill, nor into a missing table."""
        return (
            not self.full_refresh
            and self.window is None
            and self.target_columns is not None
            and bool(self.fingerprint)
        )


Read = Literal["all rows", "from the watermark", "the backfill window"]
Publish = Literal["merge", "replace"]
WhenEmpty = Literal["fail", "empty the table", "keep the table"]


@dataclass(frozen=True)
class LoadPlan:
    """What one table's load will do, decided from its facts before any row moves."""

    mode: Mode
    read: Read = "all rows"
    window: LoadWindow | None = None  # the backfill window, when that is what it reads
    query_watermark: bool = False  # to read from it, or to report it as watermark_before
    publish_by: Publish = "replace"
    record_fingerprint: bool = False
    # A full read that finds no rows: refused unless the source allows an empty table.
    when_empty: WhenEmpty = "fail"
    trusted_until: datetime | None = None  # later cursor values are untrusted (as are NULLs)
    watermark_limit: datetime | None = None  # the run's start: the watermark never passes it
    replace_copies_rows: bool = False

    @property
    def skip(self) -> bool:
        """Whether the files are unchanged since the last full load, so nothing is read."""
        return self.mode == "unchanged"

    @property
    def temporary_staging(self) -> bool:
        """Whether the rows stage in a temporary table rather than a real one."""
        # A temporary table is private to this connection and gone if the run dies: rows to
        # MERGE, or to replace the target where the replace copies them (Snowflake). Where it
        # renames the staging table into the target (DuckDB), that must be a real table.
        return self.publish_by == "merge" or self.replace_copies_rows

    def read_window(self, watermark: Any) -> LoadWindow | None:
        """The cursor range to read given the target's watermark; None reads everything."""
        if self.read == "the backfill window":
            return self.window
        if self.read == "from the watermark":
            return LoadWindow(since=watermark)
        return None


def plan_load(facts: LoadFacts) -> LoadPlan:
    """Decide how to load a table from what is known; no warehouse call."""
    if facts.may_skip and facts.fingerprint == facts.stored_fingerprint:
        return LoadPlan("unchanged")
    exists = facts.target_columns is not None
    window = facts.window
    read: Read = "all rows"
    if window is not None:
        read = "the backfill window"
    elif facts.incremental and exists:
        read = "from the watermark"
    started = facts.run_started if facts.source.cursor is not None else None
    when_empty: WhenEmpty = "keep the table"
    if read == "all rows":
        when_empty = "empty the table" if facts.source.allow_empty else "fail"
    return LoadPlan(
        mode="backfill" if window else ("incremental" if facts.incremental else "full refresh"),
        read=read,
        window=window,
        query_watermark=exists and facts.source.cursor is not None,
        publish_by="merge" if facts.incremental and exists else "replace",
        # A backfill reads a window, not the whole file: it can't vouch for the rest.
        record_fingerprint=bool(facts.fingerprint) and window is None,
        when_empty=when_empty,
        trusted_until=None if started is None else started + facts.source.cursor_tolerance,
        watermark_limit=started,
        replace_copies_rows=facts.replace_copies_rows,
    )


def load_source(
    warehouse: Warehouse,
    source: Source,
    *,
    full_refresh: bool = False,
    backfill: LoadWindow | None = None,
    batch_rows: int = 250_000,
    run_started: datetime | None = None,
    facts: LoadFacts | None = None,
) -> TableLoad:
    """Load `source` into its table; the table changes only if every step succeeds.
    `run_started` (naive UTC, default now) bounds the cursor values it trusts; `facts`, when
    `check_sources` just gathered them, are not gathered again."""
    started = time.perf_counter()
    if facts is None:
        facts = gather_facts(warehouse, source, full_refresh, backfill, run_started)
    plan = plan_load(facts)
    if plan.skip:
        return TableLoad(source.name, plan.mode, seconds=facts.seconds)
    result = carry_out(warehouse, facts, plan, batch_rows)
    result.seconds = facts.seconds + time.perf_counter() - started
    return result


@dataclass
class CheckedSources:
    """What `check_sources` found: the loads it skipped, and the sources left to load with
    their facts (None where they couldn't be gathered)."""

    skipped: dict[str, TableLoad] = field(default_factory=dict)
    changed: list[Source] = field(default_factory=list)
    facts: list[LoadFacts | None] = field(default_factory=list)


def check_sources(
    warehouse: Warehouse,
    sources: Sequence[Source],
    full_refresh: bool = False,
    backfill: LoadWindow | None = None,
    run_started: datetime | None = None,
) -> CheckedSources:
    """Gather each source's facts; a load they skip (files as last loaded) is done here. A
    source that can't be checked is left to its load, which names the error."""
    checked = CheckedSources()
    for source in sources:
        # Nothing is skipped on a full refresh: each load gathers its own facts.
        facts = (
            None if full_refresh else _facts_if_gathered(warehouse, source, backfill, run_started)
        )
        if facts is not None and plan_load(facts).skip:
            checked.skipped[source.name] = TableLoad(
                source.name, "unchanged", seconds=facts.seconds
            )
        else:
            checked.changed.append(source)
            checked.facts.append(facts)
    return checked


def _facts_if_gathered(
    warehouse: Warehouse, source: Source, backfill: LoadWindow | None, run_started: datetime | None
) -> LoadFacts | None:
    try:
        return gather_facts(warehouse, source, False, backfill, run_started)
    except Exception:  # raised again by its load: named, and retried if transient
        return None


def staging_name(table: str, *, temporary: bool) -> str:
    """A staging table's name. A temporary one is private to its connection, so a random
    name; a real one has a fixed name, so that the table's next load finds it if it outlives
    a crash (loads of one table never overlap: a DuckDB file has one writer at a time)."""
    return f"{table}__staging_{uuid.uuid4().hex[:8]}" if temporary else f"{table}__staging"


def gather_facts(
    warehouse: Warehouse,
    source: Source,
    full_refresh: bool,
    backfill: LoadWindow | None,
    run_started: datetime | None = None,
) -> LoadFacts:
    """What the plan needs, in as few statements as possible; the stored fingerprint only
    when it could skip the load. `run_started` (naive UTC) defaults to now."""
    started = time.perf_counter()
    # One catalog lookup answers: does the target exist, with which columns, and the state table?
    abandoned = staging_name(source.name, temporary=False)
    catalog = warehouse.table_columns([source.name, SOURCE_STATE, abandoned])
    target_columns = catalog.get(source.name.lower())
    if abandoned.lower() in catalog:
        # A load killed before it dropped its staging table: debris, never to be published.
        warehouse.execute(f"DROP TABLE IF EXISTS {warehouse.qualified(abandoned)}")
    # Listed once: an object-store glob costs a LIST request.
    files = tuple(resolve_files(source))
    facts = LoadFacts(
        source,
        full_refresh,
        backfill,
        target_columns=None if target_columns is None else tuple(target_columns),
        files=files,
        fingerprint=fingerprint(source, files),
        run_started=run_started or datetime.now(UTC).replace(tzinfo=None),
        replace_copies_rows=warehouse.replace_copies_rows,
    )
    if facts.fingerprint and SOURCE_STATE not in catalog:
        warehouse.ensure_table(SOURCE_STATE, "table_name VARCHAR, fingerprint VARCHAR")
    if facts.may_skip:
        facts = replace(facts, stored_fingerprint=stored_fingerprint(warehouse, source.name))
    return replace(facts, seconds=time.perf_counter() - started)


def carry_out(warehouse: Warehouse, facts: LoadFacts, plan: LoadPlan, batch_rows: int) -> TableLoad:
    """Stage, check, publish and record as `plan` says; the staging table never outlives it
    (a crash's is dropped by the table's next load)."""
    source = facts.source
    result = TableLoad(source.name, plan.mode)
    limit = cursor_bound(source, plan.watermark_limit)
    result.watermark_before = watermark(warehouse, source, limit) if plan.query_watermark else None
    staging = staging_name(source.name, temporary=plan.temporary_staging)
    staging_table = warehouse.qualified(staging, temporary=plan.temporary_staging)
    try:
        window = plan.read_window(result.watermark_before)
        staged = stage(
            warehouse, source, staging, window, batch_rows,
            files=facts.files, temporary=plan.temporary_staging,
            trusted_until=plan.trusted_until, watermark_limit=plan.watermark_limit,
        )  # fmt: skip
        result.rows_read = staged.rows
        # Located before the publish: once published, a failed read must not fail the load.
        result.untrusted_count, result.untrusted_rows = staged.untrusted_rows(REPORTED_ROWS)
        if not staged.rows and plan.when_empty == "fail":
            raise LoadError(
                source.name,
                f"{', '.join(facts.files) or source.location} holds no rows (an empty file, or "
                "a header only), and a full load would empty the table; fix the source, or "
                "declare it with allow_empty=True if an empty table is right",
            )
        if staged.rows or plan.when_empty == "empty the table":
            columns = facts.target_columns
            check_staged(warehouse, source, staging_table, staged, target_columns=columns)
            result.inserted, result.updated = publish(warehouse, source, plan, staging, staged)
            if plan.record_fingerprint:
                record_fingerprint(warehouse, source.name, facts.fingerprint)
    finally:
        warehouse.execute(f"DROP TABLE IF EXISTS {staging_table}")
    merged = plan.publish_by == "merge"
    result.watermark_after = watermark_after(result.watermark_before, staged, merged=merged)
    return result


def stored_fingerprint(warehouse: Warehouse, table: str) -> str | None:
    """The fingerprint of the files `table` was last loaded from in full (all rows, or all
    rows from the watermark on). The state table exists: gather_facts ensures it."""
    rows = warehouse.query(
        f"SELECT fingerprint FROM {warehouse.qualified(SOURCE_STATE)} WHERE table_name = ?",
        [table],
    )
    return str(rows[0][0]) if rows else None


def record_fingerprint(warehouse: Warehouse, table: str, files: str) -> None:
    """Remember what `table` was published from; written after the publish, so a crash in
    between only costs one more reload, never a skipped change."""
    warehouse.execute(
        f"MERGE INTO {warehouse.qualified(SOURCE_STATE)} AS t "
        "USING (SELECT ? AS table_name, ? AS fingerprint) AS s ON t.table_name = s.table_name "
        "WHEN MATCHED THEN UPDATE SET fingerprint = s.fingerprint "
        "WHEN NOT MATCHED THEN INSERT (table_name, fingerprint) "
        "VALUES (s.table_name, s.fingerprint)",
        [table, files],
    )


def watermark(warehouse: Warehouse, source: Source, limit: pa.Scalar | None = None) -> Any:
    """The highest cursor value in the table up to `limit` (the run's start): what the last
    committed load reached; a row loaded with a later cursor can't move it."""
    if source.cursor is None:
        return None
    sql = f"SELECT MAX({warehouse.quote(source.cursor)}) FROM {warehouse.qualified(source.name)}"
    if limit is None:
        return warehouse.query(sql)[0][0]
    return warehouse.query(f"{sql} WHERE {warehouse.quote(source.cursor)} <= ?",
                           [limit.as_py()])[0][0]  # fmt: skip


def watermark_after(before: Any, staged: Staged, *, merged: bool) -> Any:
    """The table's highest cursor value after publishing `staged`, without scanning it: a
    cursor never moves back for a row, so a MERGE keeps the higher of the two."""
    if not staged.rows:
        return before if merged else None
    if merged and before is not None and staged.highest is not None:
        return max(before, staged.highest)
    return staged.highest


@dataclass
class Staged:
    """What streamed into the staging table: rows, columns, key proofs, the highest cursor
    value up to the watermark's limit, and the files with untrusted cursors."""

    columns: list[str]
    keys: KeyCheck
    cursor: str | None
    rows: int = 0
    highest: Any = None
    source: Source | None = None  # with its cursor bounds, to find untrusted rows
    trusted_until: pa.Scalar | None = None
    watermark_limit: pa.Scalar | None = None
    untrusted: dict[str, int] = field(default_factory=dict)  # file: rows seen

    def see(self, batch: pa.RecordBatch, file: str = "") -> None:
        """Take note of one batch of `file` on its way to the warehouse."""
        self.keys.see(batch)
        if self.cursor is None:
            return
        column = batch.column(self.cursor)
        untrusted = int(pc.sum(untrusted_mask(column, self.trusted_until)).as_py() or 0)
        if untrusted:
            self.untrusted[file] = self.untrusted.get(file, 0) + untrusted
        if self.watermark_limit is not None:
            column = pc.filter(column, pc.less_equal(column, self.watermark_limit))
        top = pc.max(column).as_py()
        if top is not None and (self.highest is None or top > self.highest):
            self.highest = top

    def untrusted_rows(self, limit: int) -> tuple[int, list[UntrustedRow]]:
        """How many staged rows have an untrusted cursor, and the first `limit` of them."""
        total, found = 0, list[UntrustedRow]()
        for file in self.untrusted:
            assert self.source is not None
            count, rows = find_untrusted_rows(self.source, file, self.trusted_until,
                                              limit - len(found))  # fmt: skip
            total, found = total + count, found + rows
        return total, found


def stage(
    warehouse: Warehouse,
    source: Source,
    staging: str,
    window: LoadWindow | None,
    batch_rows: int,
    *,
    files: Sequence[str] | None = None,
    temporary: bool = False,
    trusted_until: datetime | None = None,
    watermark_limit: datetime | None = None,
) -> Staged:
    """Stream the source's batches into a fresh staging table in one bulk load; refuse rows
    with an untrusted cursor unless the source loads and reports them."""
    loaded_at = pa.scalar(datetime.now(UTC).replace(tzinfo=None), pa.timestamp("us"))
    since, until = (window.since, window.until) if window else (None, None)
    schema = source.schema.append(pa.field(LOADED_AT, pa.timestamp("us")))
    staged = Staged(
        [name.lower() for name in schema.names], KeyCheck(source.primary_key), source.cursor,
        source=source, trusted_until=cursor_bound(source, trusted_until),
        watermark_limit=cursor_bound(source, watermark_limit),
    )  # fmt: skip
    failure: list[Exception] = []

    def stamped() -> Iterator[pa.RecordBatch]:
        try:
            for file, batch in read_file_batches(
                source, batch_rows, since, until, files=files, trusted_until=trusted_until
            ):
                staged.see(batch, file)
                if staged.untrusted and source.on_untrusted_cursor == "fail":
                    raise untrusted_cursor_error(source, staged, trusted_until)
                yield batch.append_column(LOADED_AT, pa.repeat(loaded_at, batch.num_rows))
        except Exception as exc:
            failure.append(exc)
            raise

    try:
        stream = pa.RecordBatchReader.from_batches(schema, stamped())
        staged.rows = warehouse.bulk_load(staging, stream, temporary=temporary)
    except Exception:
        # The warehouse wraps an error raised inside the stream; ours names table, file and row.
        if failure:
            raise failure[0] from None
        raise
    return staged


def untrusted_cursor_error(
    source: Source, staged: Staged, trusted_until: datetime | None
) -> LoadError:
    """The refusal of a table with untrusted cursor values, naming files, rows and values."""
    count, rows = staged.untrusted_rows(5)
    later = (
        f" or later than {trusted_until} (the run's start plus cursor_tolerance "
        f"{source.cursor_tolerance})"
        if trusted_until is not None and staged.trusted_until is not None
        else ""
    )
    return LoadError(
        source.name,
        f"{count} row(s) have a cursor value that can't be trusted ({source.cursor} NULL"
        f"{later}), so loading them would skip rows: {'; '.join(map(str, rows))}; fix them "
        "in the source, or declare it with on_untrusted_cursor='load and report' to load "
        "them and have them reported",
    )


@dataclass
class KeyCheck:
    """What the primary key showed while streaming past, so the checks in SQL can be skipped.

    A one-column key that strictly ascends through every batch is unique: append-only sources
    sorted by id (the common case) need no GROUP BY over the staged rows.
    """

    key: tuple[str, ...]
    nulls: int = 0
    ascending: bool = True
    last: pa.Scalar | None = None

    def see(self, batch: pa.RecordBatch) -> None:
        """Count the batch's rows with a null key and check the key still ascends."""
        columns = [batch.column(column) for column in self.key]
        if any(column.null_count for column in columns):
            missing = reduce(pc.or_, [column.is_null() for column in columns])
            self.nulls += int(pc.sum(missing).as_py())
            self.ascending = False
        if self.ascending and len(columns) == 1 and batch.num_rows:
            self.ascending = _ascends(columns[0], after=self.last)
            self.last = columns[0][-1]

    @property
    def unique(self) -> bool:
        """Whether the keys are proven unique without looking at the staged table."""
        return len(self.key) == 1 and self.ascending and self.nulls == 0


def _ascends(values: pa.Array, after: pa.Scalar | None) -> bool:
    """Whether `values` strictly ascend and all come after `after`."""
    if after is not None and not pc.greater(values[0], after).as_py():
        return False
    later, earlier = values.slice(1), values.slice(0, len(values) - 1)
    return len(later) == 0 or bool(pc.all(pc.greater(later, earlier)).as_py())


def check_staged(
    warehouse: Warehouse,
    source: Source,
    staging_table: str,
    staged: Staged,
    *,
    target_columns: Sequence[str] | None,
) -> None:
    """Refuse staged rows with a null or duplicate key, or columns the table doesn't have.
    `staging_table` is qualified."""
    keys, key = staged.keys, source.primary_key
    if keys.nulls:
        raise LoadError(
            source.name,
            f"{keys.nulls} row(s) in {source.location} have a null primary key "
            f"({', '.join(key)}); fix the source rows, the key must always be set",
        )
    columns = ", ".join(warehouse.quote(column) for column in key)
    duplicates = (
        []
        if keys.unique
        else warehouse.query(
            f"SELECT {columns}, COUNT(*) FROM {staging_table} GROUP BY {columns} "
            f"HAVING COUNT(*) > 1 ORDER BY {columns} LIMIT 3"
        )
    )
    if duplicates:
        examples = "; ".join(
            ", ".join(f"{name}={value!r}" for name, value in zip(key, row, strict=False))
            + f" ({row[-1]} times)"
            for row in duplicates
        )
        raise LoadError(
            source.name,
            f"duplicate primary key ({', '.join(key)}) in {source.location}: {examples}; "
            "each key may appear once per load",
        )
    if target_columns is not None:
        expected, found = target_columns, staged.columns
        added = [c for c in found if c not in expected]
        dropped = [c for c in expected if c not in found]
        if added or dropped:
            raise LoadError(
                source.name,
                f"the columns of {source.location} differ from the table: "
                f"new {added or 'none'}, missing {dropped or 'none'}; update the source "
                "declaration and rerun with full_refresh=True to rebuild the table",
            )


def publish(
    warehouse: Warehouse, source: Source, plan: LoadPlan, staging: str, staged: Staged
) -> tuple[int, int]:
    """Make the staged rows visible in one atomic step, as the plan decided; return
    (inserted, updated)."""
    if plan.publish_by == "merge":
        staging_table = warehouse.qualified(staging, temporary=plan.temporary_staging)
        return merge_into(warehouse, source, staging_table, staged)
    warehouse.replace_table(source.name, staging)
    return staged.rows, 0


def merge_into(
    warehouse: Warehouse, source: Source, staging_table: str, staged: Staged
) -> tuple[int, int]:
    """Upsert the staged rows on the primary key in one atomic MERGE; return (inserted, updated)."""
    target = warehouse.qualified(source.name)
    quote = warehouse.quote
    on = " AND ".join(f"t.{quote(column)} = s.{quote(column)}" for column in source.primary_key)
    matched = int(
        warehouse.query(f"SELECT COUNT(*) FROM {staging_table} s JOIN {target} t ON {on}")[0][0]
    )
    columns = staged.columns
    updates = ", ".join(
        f"{quote(c)} = s.{quote(c)}" for c in columns if c not in source.primary_key
    )
    # One MERGE statement is atomic on both DuckDB and Snowflake: all of it or none.
    warehouse.execute(
        f"MERGE INTO {target} AS t USING {staging_table} AS s ON {on} "
        f"WHEN MATCHED THEN UPDATE SET {updates} "
        f"WHEN NOT MATCHED THEN INSERT ({', '.join(map(quote, columns))}) "
        f"VALUES ({', '.join(f's.{quote(c)}' for c in columns)})"
    )
    return staged.rows - matched, matched


def describe_failure(source: Source, exc: BaseException) -> str:
    """A one-line reason that names the table, for the summary and the flow's error."""
    if isinstance(exc, LoadError | SourceError):
        return str(exc)
    return f"{source.name}: {type(exc).__name__}: {exc}"


class ExtractLoadError(RuntimeError):
    """One or more tables failed to load; the others were loaded."""

    def __init__(self, message: str, failures: list[str]) -> None:
        super().__init__(message)
        self.failures = failures  # the failed tables, named in the alert

    def __reduce__(self) -> tuple[Any, ...]:
        # Keep the tables when Prefect pickles the exception into a flow's state.
        return (type(self), (str(self), self.failures))


# Errors of a warehouse client that say the connection or the service failed, not the SQL
# or the data: Snowflake's connection and HTTP errors, DuckDB's I/O (a file locked by another
# process) and write-conflict errors. Named, so a DuckDB run needn't import Snowflake's client.
TRANSIENT_ERRORS = {
    "snowflake.connector.errors.OperationalError",
    "snowflake.connector.errors.InterfaceError",
    "snowflake.connector.errors.ServiceUnavailableError",
    "snowflake.connector.errors.GatewayTimeoutError",
    "snowflake.connector.errors.BadGatewayError",
    "snowflake.connector.errors.RequestTimeoutError",
    "snowflake.connector.errors.OtherHTTPRetryableError",
    "_duckdb.IOException",
    "_duckdb.TransactionException",
}


def is_transient(exc: BaseException) -> bool:
    """Whether a load that failed with `exc` may succeed if run again: a lost connection or
    an unreachable store, never bad data or a bad declaration."""
    if isinstance(exc, LoadError):
        return False
    if isinstance(exc, SourceError):
        return exc.transient
    if isinstance(exc, ConnectionError | TimeoutError):
        return True
    names = {f"{kind.__module__}.{kind.__qualname__}" for kind in type(exc).__mro__}
    return bool(names & TRANSIENT_ERRORS)


def retry_if_transient(task: Any, task_run: Any, state: State) -> bool:
    """A task's retry_condition_fn: retry a load (idempotent) only after a transient error."""
    exc = state.result(raise_on_failure=False)
    return isinstance(exc, BaseException) and is_transient(exc)


def table_result(source: Source, state: State) -> TableLoad:
    """The task's TableLoad, or a failed one carrying the reason."""
    if state.is_completed():
        return state.result()
    exc = state.result(raise_on_failure=False)
    reason = describe_failure(source, exc) if isinstance(exc, BaseException) else str(exc)
    return TableLoad(
        source.name, "full refresh" if source.cursor is None else "incremental", error=reason
    )


def table_results(
    sources: Sequence[Source],
    skipped: dict[str, TableLoad],
    loaded: Iterable[tuple[Source, State]],
) -> list[TableLoad]:
    """Every source's result in declaration order: skipped by `check_sources`, or its task's."""
    done = {source.name: table_result(source, state) for source, state in loaded}
    return [skipped.get(source.name) or done[source.name] for source in sources]


def raise_if_any_failed(results: list[TableLoad]) -> None:
    """Fail the run naming every table that failed; the others are loaded."""
    failed = [result for result in results if result.error]
    if failed:
        raise ExtractLoadError(
            f"{len(failed)} of {len(results)} tables failed to load (the others were loaded; "
            "failed tables are unchanged): " + " | ".join(result.error for result in failed),
            [result.table for result in failed],
        )
