"""A rebuild fills an insert-only projection's tables without indexes, then builds them once.

Maintaining a B-tree row by row while a million rows arrive in random key
order (event ids are UUIDs) costs far more than building it in one pass after
the rows are in, which PostgreSQL does by sorting. Only projections whose apply
just inserts and keeps any row already there (`Projection.insert_only`) may do
so: an upsert needs its unique index to find the row it updates.

The indexes are built from the live table's own definitions, under their own
names, so a swapped-in table is indexed exactly as the migrations made it.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

log = logging.getLogger(__name__)

# Every index of a table, its constraint if it backs one (primary key, unique), and its columns.
INDEXES = text("""
    SELECT pg_get_indexdef(i.indexrelid) AS definition,
           i.indisunique AS is_unique,
           con.conname AS constraint_name,
           pg_get_constraintdef(con.oid) AS constraint_definition,
           ARRAY(SELECT a.attname::text FROM pg_attribute a
                 WHERE a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)) AS columns
    FROM pg_index i
    LEFT JOIN pg_constraint con ON con.conindid = i.indexrelid AND con.conrelid = i.indrelid
    WHERE i.indrelid = CAST(:table AS regclass)
    ORDER BY i.indisprimary DESC, i.indexrelid
""")


def create_without_indexes(schema: str, table: str) -> str:
    """The copy's DDL: columns, defaults and NOT NULLs of the live table, no index."""
    return f"CREATE TABLE {schema}.{table} (LIKE public.{table} INCLUDING ALL EXCLUDING INDEXES)"


async def build_indexes(connection: AsyncConnection, schema: str, table: str) -> None:
    """Give `schema.table` every index `public.table` has."""
    for index in (await connection.execute(INDEXES, {"table": f"public.{table}"})).all():
        if index.constraint_name:
            name, definition = index.constraint_name, index.constraint_definition
            statement = f'ALTER TABLE {schema}.{table} ADD CONSTRAINT "{name}" {definition}'
        else:
            statement = index.definition.replace(f" ON public.{table} ", f" ON {schema}.{table} ", 1)
        await build_one(connection, schema, table, statement, index)


async def build_one(connection: AsyncConnection, schema: str, table: str, statement: str, index: Any) -> None:
    try:
        async with connection.begin_nested():
            await connection.execute(text(statement))
        return
    except IntegrityError:
        if not index.is_unique:
            raise
    # The log holds a row's key twice (say, a foreign producer's copy of an event). The live
    # projection kept the first it applied and ignored the other; the rebuild does the same.
    removed = await drop_duplicates(connection, schema, table, list(index.columns))
    log.warning("%s.%s: %d rows repeated a unique key %s; kept the first", schema, table, removed, index.columns)
    await connection.execute(text(statement))


async def drop_duplicates(connection: AsyncConnection, schema: str, table: str, columns: list[str]) -> int:
    key = ", ".join(f'"{column}"' for column in columns)
    result = await connection.execute(
        text(f"""
        DELETE FROM {schema}.{table} WHERE ctid IN (
            SELECT ctid FROM (
                SELECT ctid, row_number() OVER (PARTITION BY {key} ORDER BY ctid) AS n FROM {schema}.{table}
            ) numbered WHERE n > 1)
    """)
    )
    return int(result.rowcount)
