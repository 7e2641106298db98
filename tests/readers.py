"""Read every table of an output directory with each engine exactly as docs/tables.md shows
(``tabledoc.read_examples``) and check what each engine sees against ``schema``."""

from __future__ import annotations

from pathlib import Path

import duckdb
import fastparquet
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds

from dask_pipeline import schema, store, tabledoc


def namespace() -> dict:
    """What the documented reading lines expect to be imported and bound."""
    ns = {"pd": pd, "duckdb": duckdb, "pa": pa, "ds": ds, "fastparquet": fastparquet}
    ns["DATES"] = eval(tabledoc.DATE_PARTITIONING, ns)
    return ns


def check_readers(out: Path) -> dict[str, int]:
    """Every table under ``out`` read by pandas, DuckDB, pyarrow and fastparquet as
    documented: same columns (in schema order), same rows as ``store.read_table``, DuckDB's
    types as documented, dates as dates. Returns the row count of each table."""
    ns = namespace()
    rows = {}
    for table, sch in schema.OUTPUTS.items():
        ours = store.read_table(out, table)
        code = tabledoc.read_examples(table, str(out))
        via_pd = eval(code["pandas"], ns)
        rel = eval(code["duckdb"], ns)
        via_arrow = eval(code["pyarrow"], ns)
        via_fp = eval(code["fastparquet"], ns)
        for engine, cols, n in (
            ("pandas", list(via_pd.columns), len(via_pd)),
            ("duckdb", rel.columns, len(rel.fetchall())),
            ("pyarrow", via_arrow.column_names, via_arrow.num_rows),
            ("fastparquet", list(via_fp.columns), len(via_fp)),
        ):
            assert cols == list(sch), (table, engine, cols)
            assert n == len(ours), (table, engine, n, len(ours))
        documented = [tabledoc.SQL_TYPES[t] for t in sch.values()]
        assert [str(t) for t in rel.types] == documented, (table, rel.types)
        for col, t in sch.items():
            if t == schema.DATE:
                assert via_arrow.schema.field(col).type == pa.date32(), (table, col)
        rows[table] = len(ours)
    return rows
