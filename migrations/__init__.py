"""Alembic environment and versions; `certifications.migrate` runs them."""
