"""The table reference: generated from schema.py and never out of date; every column
documented, none an SQL reserved word; every table readable by every engine when empty."""

from __future__ import annotations

import datetime as dt

import duckdb
import pandas as pd
import pytest

from dask_pipeline import schema, store, tabledoc

from .readers import check_readers, namespace

#: Words PostgreSQL reserves (and ClickHouse or DuckDB reject unquoted in some places) that
#: could plausibly name a column; DuckDB's own reserved list is asked from DuckDB.
SQL_RESERVED = {
    "all", "analyse", "analyze", "and", "any", "array", "as", "asc", "both", "case", "cast",
    "check", "collate", "column", "constraint", "create", "current_date", "current_time",
    "current_timestamp", "current_user", "default", "desc", "distinct", "do", "else", "end",
    "except", "false", "fetch", "for", "foreign", "from", "grant", "group", "having", "in",
    "into", "leading", "limit", "localtime", "localtimestamp", "not", "null", "offset", "on",
    "only", "or", "order", "placing", "primary", "references", "returning", "select",
    "session_user", "some", "table", "then", "to", "trailing", "true", "union", "unique",
    "user", "using", "when", "where", "window", "with",
}  # fmt: skip


def test_committed_reference_is_the_generated_one():
    assert tabledoc.DOC.read_text() == tabledoc.reference(), (
        "docs/tables.md is out of date: run python -m dask_pipeline.tabledoc --write"
    )


def test_readme_table_list_is_the_generated_one():
    text = tabledoc.README.read_text()
    assert tabledoc.readme_with_block(text) == text, (
        "README's table list is out of date: run python -m dask_pipeline.tabledoc --write"
    )


def test_generator_prints_the_reference(capsys):
    assert tabledoc.main([]) == 0
    assert capsys.readouterr().out == tabledoc.reference()


def test_every_column_documented_with_a_known_type():
    for name, table in schema.OUTPUTS.items():
        assert table.row and table.doc, name
        assert set(table.keys) <= set(table), name
        for col, c in table.columns.items():
            assert len(c.doc) > 20 and c.doc.endswith("."), (name, col)
            assert c.dtype in tabledoc.SQL_TYPES, (name, col)
            assert f"| `{col}` |" in tabledoc.reference()


def test_no_column_is_a_reserved_word():
    duck = {
        r[0]
        for r in duckdb.sql(
            "SELECT keyword_name FROM duckdb_keywords() WHERE keyword_category = 'reserved'"
        ).fetchall()
    }
    assert "end" in duck and "select" in duck  # the list is the real one
    for name, table in schema.OUTPUTS.items():
        for col in table:
            assert col not in duck | SQL_RESERVED, (name, col)


def test_documented_types_are_what_duckdb_reads_and_columns_need_no_quoting(tmp_path):
    # one row of every table written the way the job writes it, then selected unquoted
    out = tmp_path / "out"
    v = store.version_dir(out, "r1")
    for name, table in schema.OUTPUTS.items():
        row = {c: _value(t) for c, t in table.items()}
        df = schema.conform(pd.DataFrame([row]), table)
        if name == "segments":
            store.write_segments_part(v, "000000", df)
        else:
            store.write_table_part(v, name, "000000", df)
    store.write_json({}, v / store.RUN_JSON)
    store.commit(out, "r1")
    assert check_readers(out) == dict.fromkeys(schema.OUTPUTS, 1)
    ns = namespace()
    for name, table in schema.OUTPUTS.items():
        files = tabledoc.read_examples(name, str(out))["duckdb"].split("'")[1]
        got = duckdb.sql(f"SELECT {', '.join(table)} FROM '{files}'").fetchall()
        assert len(got) == 1 and len(got[0]) == len(table), name
        assert eval(tabledoc.read_examples(name, str(out))["pandas"], ns).shape == (1, len(table))


def test_every_table_readable_with_its_columns_when_empty(tmp_path):
    out = tmp_path / "out"
    v = store.version_dir(out, "r1")
    store.ensure_empty_tables(v)
    store.write_json({}, v / store.RUN_JSON)
    store.commit(out, "r1")
    assert check_readers(out) == dict.fromkeys(schema.OUTPUTS, 0)


def test_segment_dates_read_as_dates(tmp_path):
    out = tmp_path / "out"
    v = store.version_dir(out, "r1")
    seg = {c: _value(t) for c, t in schema.SEGMENTS.items()}
    days = ["2026-01-05", "2026-01-06"]
    df = schema.conform(pd.DataFrame([{**seg, "date": d} for d in days]), schema.SEGMENTS)
    assert store.write_segments_part(v, "000000", df) == days
    assert sorted(p.name for p in (v / "segments").iterdir()) == [f"date={d}" for d in days]
    store.ensure_empty_tables(v)
    store.write_json({}, v / store.RUN_JSON)
    store.commit(out, "r1")
    files = tabledoc.read_examples("segments", str(out))["duckdb"].split("'")[1]
    got = duckdb.sql(f"SELECT date FROM '{files}' ORDER BY date").fetchall()
    assert got == [(dt.date(2026, 1, 5),), (dt.date(2026, 1, 6),)]
    arrow = eval(tabledoc.read_examples("segments", str(out))["pyarrow"], namespace())
    assert sorted(arrow.column("date").to_pylist()) == [dt.date(2026, 1, 5), dt.date(2026, 1, 6)]
    via_pandas = eval(tabledoc.PANDAS_DATES.replace("OUT", str(out)), namespace())
    assert sorted(via_pandas["date"]) == [dt.date(2026, 1, 5), dt.date(2026, 1, 6)]
    assert list(store.read_table(out, "segments")["date"]) == [
        dt.date(2026, 1, 5),
        dt.date(2026, 1, 6),
    ]


@pytest.mark.parametrize("argv", [["--help"], ["--bogus"]])
def test_generator_cli_usage(argv, capsys):
    with pytest.raises(SystemExit) as e:
        tabledoc.main(argv)
    assert e.value.code == (0 if argv == ["--help"] else 2)


def _value(dtype):
    """One plausible non-null value of a dtype."""
    return {
        schema.STR: "x",
        schema.TIME: pd.Timestamp("2026-01-05T10:00:00Z"),
        schema.F64: 1.5,
        schema.I64: 3,
        schema.INT: 2,
        schema.BOOL: True,
        schema.DATE: dt.date(2026, 1, 5),
    }[dtype]
