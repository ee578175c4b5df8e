"""The DuckDB cache: all SQL of the project, parameterised (store.py), its schema and migrations (schema.py)."""
from engine.store.schema import SCHEMA_VERSION
from engine.store.store import Store

__all__ = ["SCHEMA_VERSION", "Store"]
