"""The PostgreSQL store (issue 23): several relay nodes share one database.

db.py: the pool (PgDatabase) and its transactions; migrate.py: migrations/postgresql/; queue.py and
audit.py: the repositories, async twins of relay/store/queue.py and relay/store/audit.py with the
same method names, arguments (less the connection) and return types. docs/postgresql.md.
"""
