"""Concurrency and fault suite: real gunicorn and worker processes on PostgreSQL (issue 13)."""
