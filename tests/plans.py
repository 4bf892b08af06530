"""Query plans as the database tells them, and the indexes they read.

On PostgreSQL a partitioned table's index shows in a plan under its partitions' names
(``message_p0_sent_at_idx``): ``indexes_read`` names each by the index it belongs to
(``ix_message_sent_at``), as on SQLite.
"""

import re

import sqlalchemy as sa

_INDEX = re.compile(r"(?:using|USING (?:COVERING )?INDEX|Index Scan on) (\w+)")


def explain(connection: sa.Connection, statement: str, parameters=()) -> str:
    """The plan of ``statement``: PostgreSQL's EXPLAIN, SQLite's EXPLAIN QUERY PLAN."""
    postgres = connection.dialect.name == "postgresql"
    prefix = "EXPLAIN " if postgres else "EXPLAIN QUERY PLAN "
    rows = connection.exec_driver_sql(prefix + statement, parameters).all()
    return "\n".join(str(row[-1]) for row in rows)


def indexes_read(connection: sa.Connection, plan: str) -> set[str]:
    """The indexes ``plan`` reads, by the names the models give them."""
    names = set(_INDEX.findall(plan))
    if connection.dialect.name != "postgresql" or not names:
        return names
    parents = dict(
        connection.exec_driver_sql(
            "SELECT c.relname, p.relname FROM pg_inherits AS i "
            "JOIN pg_class AS c ON c.oid = i.inhrelid JOIN pg_class AS p ON p.oid = i.inhparent "
            "WHERE c.relkind = 'i' AND c.relname = ANY(%s)",
            (list(names),),
        ).all()
    )
    return {parents.get(name, name) for name in names}
