"""Many rows in one statement: `insert into t (...) select * from unnest($1::type[], ...)`.

The bridge records every event of a batch (a store back online brings thousands at once). `executemany` runs the
statement once per row; one `unnest` insert sends each column as one array and runs once, a fraction of the time
per row (`freshmesh load catchup`). The statement's text depends only on the table and columns, so it is prepared
once per connection like any other.
"""
from __future__ import annotations

from collections.abc import Sequence

Column = tuple[str, str]  # (name, PostgreSQL type)


def insert_sql(table: str, columns: Sequence[Column], tail: str = "on conflict do nothing") -> str:
    names = ", ".join(name for name, _ in columns)
    arrays = ", ".join(f"${i}::{kind}[]" for i, (_, kind) in enumerate(columns, 1))
    # the names are this program's constants, never input: the values travel as parameters
    return f"insert into {table} ({names}) select * from unnest({arrays}) {tail}"  # noqa: S608


async def insert_rows(conn, table: str, columns: Sequence[Column], rows: Sequence[tuple],
                      tail: str = "on conflict do nothing") -> None:
    """Insert `rows` (tuples in the order of `columns`); `tail` is the statement's conflict clause."""
    if rows:
        await conn.execute(insert_sql(table, columns, tail), *(list(column) for column in zip(*rows, strict=True)))
