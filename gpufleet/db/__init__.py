"""Persistence: typed ORM tables, the database handle, query functions and migrations."""
