"""A dataset: the one declaration of its source tables, placed under a root at run time."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

import pyarrow as pa

from pipeline.sources import REMOTE_SCHEMES, Format, Source


@dataclass(frozen=True)
class Dataset:
    """Named source tables whose locations are relative to the dataset's root (data_dir)."""

    name: str
    declared: tuple[Source, ...]

    def __post_init__(self) -> None:
        names = [source.name for source in self.declared]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ValueError(f"dataset {self.name}: tables {repeated} are declared twice")

    @property
    def table_names(self) -> list[str]:
        """The raw tables, in load order."""
        return [source.name for source in self.declared]

    def source(self, table: str) -> Source:
        """The declaration of `table` (its location relative to the root)."""
        for source in self.declared:
            if source.name == table:
                return source
        raise KeyError(f"dataset {self.name} has no table {table!r}; it has {self.table_names}")

    def schema(self, table: str) -> pa.Schema:
        """The Arrow schema `table` is declared with."""
        return self.source(table).schema

    def sources(
        self, root: Path | str, formats: Mapping[str, Format] | None = None
    ) -> list[Source]:
        """The tables as concrete sources under `root` (a local folder or an `s3://`, `gs://`
        or `https://` prefix); `formats` overrides the declared format of some tables."""
        chosen = dict(formats or {})
        unknown = sorted(set(chosen) - set(self.table_names))
        if unknown:
            raise ValueError(
                f"dataset {self.name}: formats given for undeclared tables {unknown}; "
                f"its tables are {self.table_names}"
            )
        return [
            under_root(in_format(source, chosen.get(source.name, source.format)), root)
            for source in self.declared
        ]


def in_format(source: Source, fmt: Format) -> Source:
    """The source stored as `fmt` instead: its location's file extension follows the format."""
    if fmt == source.format:
        return source
    suffix = f".{source.format}"
    if not source.location.endswith(suffix):
        raise ValueError(
            f"source {source.name}: can't switch it to {fmt}: its location {source.location!r} "
            f"doesn't end in {suffix}; declare the location with its format's extension"
        )
    return replace(source, format=fmt, location=f"{source.location[: -len(suffix)]}.{fmt}")


def under_root(source: Source, root: Path | str) -> Source:
    """The source with its relative location joined to `root`; absolute or remote ones stay."""
    location = source.location
    if location.startswith((*REMOTE_SCHEMES, "/")):
        return source
    return replace(source, location=f"{str(root).rstrip('/')}/{location}")
