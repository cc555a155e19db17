"""Datasets: loading and checking ``value(city, field, indicator)`` with its hierarchy (``load``), and the
hierarchy as arrays for the kernel (``tree``). The embedded datasets themselves live in ``engine/datasets/``."""

from .load import (
    EMBEDDED,
    TIDY_COLUMNS,
    DatasetInfo,
    data_hash,
    embedded_names,
    from_frames,
    level_names,
    list_datasets,
    load_dataset,
    nominal_settings,
    read_meta,
    read_table,
    validate,
)
from .tree import Tree

__all__ = ["EMBEDDED", "TIDY_COLUMNS", "DatasetInfo", "Tree", "data_hash", "embedded_names", "from_frames",
           "level_names", "list_datasets", "load_dataset", "nominal_settings", "read_meta", "read_table", "validate"]
