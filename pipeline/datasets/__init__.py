"""The datasets the extract-load flow can load, by name: each declared once, in its own module."""

from __future__ import annotations

from pipeline.datasets.base import Dataset, in_format, under_root
from pipeline.datasets.jaffle_shop import JAFFLE_SHOP

__all__ = ["DATASETS", "Dataset", "dataset", "in_format", "under_root"]

DATASETS: dict[str, Dataset] = {known.name: known for known in (JAFFLE_SHOP,)}


def dataset(name: str) -> Dataset:
    """The dataset registered as `name`."""
    try:
        return DATASETS[name]
    except KeyError:
        raise ValueError(
            f"unknown dataset {name!r}; known datasets: {', '.join(sorted(DATASETS))}. "
            "To add one, declare `Dataset(name, (Source(...), ...))` in a module of "
            "pipeline/datasets/ and list it in DATASETS in pipeline/datasets/__init__.py"
        ) from None
