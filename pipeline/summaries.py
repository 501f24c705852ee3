"""What a run did, as the Markdown artifacts people read in the Prefect UI."""

from __future__ import annotations

from numbers import Number

from prefect.artifacts import create_markdown_artifact

from pipeline.loading import TableLoad
from pipeline.transform_result import TransformResult


def publish_loads(results: list[TableLoad]) -> None:
    """The loads as the run's summary artifact, and one line in its log."""
    create_markdown_artifact(
        key="extract-load-summary",
        markdown=loads_markdown(results),
        description="Rows and watermarks per table",
    )
    print(loads_line(results))


def loads_markdown(results: list[TableLoad]) -> str:
    """A Markdown table of what each table's load did."""
    lines = [
        "| table | mode | rows read | inserted | updated | watermark before | watermark after "
        "| seconds | status |",
        "|---|---|--:|--:|--:|---|---|--:|---|",
    ]
    for r in results:
        status = f"failed: {r.error}" if r.error else "ok"
        if r.untrusted_count:
            status += f", {r.untrusted_count:,} rows with an untrusted cursor loaded (below)"
        lines.append(
            f"| {r.table} | {r.mode} | {r.rows_read:,} | {r.inserted:,} | {r.updated:,} "
            f"| {r.watermark_before or '-'} | {r.watermark_after or '-'} | {r.seconds:.2f} "
            f"| {status.replace('|', '/')} |"
        )
    return "\n".join(lines + untrusted_rows_markdown(results))


def untrusted_rows_markdown(results: list[TableLoad]) -> list[str]:
    """The rows loaded although their cursor is NULL or later than the run's start."""
    reported = [r for r in results if r.untrusted_count]
    if not reported:
        return []
    lines = [
        "",
        "### Rows loaded with a cursor that can't be trusted",
        "NULL or later than the run's start (plus the source's cursor_tolerance): they don't "
        "move the watermark, and are reported on every load until fixed in the source.",
        "",
        "| table | file | row | key | cursor value |",
        "|---|---|--:|---|---|",
    ]
    for r in reported:
        lines += [
            f"| {r.table} | {row.file} | {row.row} | {row.key} "
            f"| {row.cursor} = {'NULL' if row.value is None else row.value} |"
            for row in r.untrusted_rows
        ]
        if r.untrusted_count > len(r.untrusted_rows):
            lines.append(f"| {r.table} | ... {r.untrusted_count - len(r.untrusted_rows):,} more "
                         "| | | |")  # fmt: skip
    return lines


def loads_line(results: list[TableLoad]) -> str:
    """The load in one line: tables, rows loaded and read, seconds, rows/s."""
    loaded = sum(r.inserted + r.updated for r in results)
    read = sum(r.rows_read for r in results)
    seconds = sum(r.seconds for r in results)
    rate = f", {read / seconds:,.0f} rows/s" if seconds else ""
    unchanged = sum(r.mode == "unchanged" for r in results)
    return (
        f"extract-load: {len(results)} tables ({unchanged} unchanged), {loaded:,} rows loaded "
        f"of {read:,} read in {seconds:.1f} s{rate}"
    )


def text_table(header: list[str], rows: list[tuple[object, ...]]) -> str:
    """Rows as an aligned plain-text table: numbers right-aligned, text left."""
    cells = [[str(value) for value in row] for row in [tuple(header), *rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    numeric = [all(isinstance(row[i], Number) for row in rows) for i in range(len(header))]
    return "\n".join(
        "  ".join(
            cell.rjust(width) if is_number else cell.ljust(width)
            for cell, width, is_number in zip(row, widths, numeric, strict=True)
        ).rstrip()
        for row in cells
    )


def elt_markdown(loads: list[TableLoad], built: TransformResult) -> str:
    """The run in a few lines: rows per table, models built, tests by outcome, timings."""
    rows_loaded = sum(load.inserted + load.updated for load in loads)
    lines = [
        "## ELT run",
        f"- Rows loaded: {rows_loaded:,} across {len(loads)} tables "
        f"in {sum(load.seconds for load in loads):.1f} s",
        f"- Transform ({built.runner}): {built.counts.get('models', 0)} models built, "
        f"{built.counts.get('tests_passed', 0)} tests passed, "
        f"{built.counts.get('tests_warned', 0)} warned, "
        f"{built.counts.get('tests_failed', 0)} failed; {built.scope_text}",
    ]
    untrusted = sum(load.untrusted_count for load in loads)
    if untrusted:
        lines.append(
            f"- Rows loaded with a cursor that can't be trusted: {untrusted:,} "
            "(listed in the extract-load-summary artifact)"
        )
    if built.run_url:
        lines.append(f"- [dbt Cloud run]({built.run_url})")
    lines += [
        "",
        "| table | mode | inserted | updated | watermark after |",
        "|---|---|--:|--:|---|",
    ]
    lines += [
        f"| {load.table} | {load.mode} | {load.inserted:,} | {load.updated:,} "
        f"| {load.watermark_after or '-'} |"
        for load in loads
    ]
    return "\n".join(lines)
