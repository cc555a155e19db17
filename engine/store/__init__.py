"""The zarr v3 result store: layout I/O (``zarrio``), the writer's lock (``lock``) and ``verify``.

The store's variables, dimensions and attributes are documented in ``results/README.md``."""

from .attributes import CONVENTIONS, VARIABLES, city_column, describe
from .lock import lock, lock_path
from .verify import lost_chunks, verify, verify_cli
from .zarrio import (
    CHOICE_VARS,
    STRING,
    BigArray,
    check_store,
    consolidate,
    create,
    dataset_from_store,
    done_chunks,
    finalise,
    is_store,
    open_group,
    open_meta,
    open_store,
    read_attrs,
    remove,
    vlen_strings,
    write_chunk,
    write_index,
)

__all__ = ["CHOICE_VARS", "CONVENTIONS", "STRING", "VARIABLES", "BigArray", "check_store", "city_column",
           "consolidate", "create", "describe", "dataset_from_store", "done_chunks", "finalise",
           "is_store", "lock", "lock_path", "lost_chunks", "open_group", "open_meta", "open_store", "read_attrs",
           "remove", "verify", "verify_cli", "vlen_strings", "write_chunk", "write_index"]
