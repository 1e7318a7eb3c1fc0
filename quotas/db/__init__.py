"""Persistence of the books: SQLAlchemy models, sessions, repositories and Alembic migrations.

SQLite (a file) by default, PostgreSQL in production and CI. All SQL lives in the repositories;
the edge (a CLI command, a request, a scheduler step) owns the transaction.
"""
