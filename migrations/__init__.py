"""Alembic environment and versions; `infra.migrate` runs them."""
