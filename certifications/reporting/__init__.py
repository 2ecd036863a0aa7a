"""Reporting (SPEC §6), read-only: subject views (`subjects`) and their CSV export (`export`),
compliance figures per certification and group (`compliance`), the renewal forecast
(`forecast`), and the list queries of the record endpoints (`listings`).
"""
