"""Plumbing every process shares: settings, logging, the database, request/tenant context,
domain errors, migrations and SQL dialect helpers."""
