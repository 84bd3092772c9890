"""Results database: schema, sessions and migrations (SQLAlchemy, Alembic). No JAX, no Ray."""
