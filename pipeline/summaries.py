"""What a run did, as the Markdown artifacts people read in the Prefect UI."""

from __future__ import annotations

from pipeline.loading import TableLoad
from pipeline.transform_result import TransformResult


def loads_markdown(results: list[TableLoad]) -> str:
    """A Markdown table of what each table's load did."""
    lines = [
        "| table | mode | rows read | inserted | updated | watermark before | watermark after "
        "| seconds | status |",
        "|---|---|--:|--:|--:|---|---|--:|---|",
    ]
    for r in results:
        status = f"failed: {r.error}" if r.error else "ok"
        lines.append(
            f"| {r.table} | {r.mode} | {r.rows_read:,} | {r.inserted:,} | {r.updated:,} "
            f"| {r.watermark_before or '-'} | {r.watermark_after or '-'} | {r.seconds:.2f} "
            f"| {status.replace('|', '/')} |"
        )
    return "\n".join(lines)


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
