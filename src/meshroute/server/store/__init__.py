"""Persistence: SQLAlchemy tables, a unit of work and repositories that speak core objects."""
