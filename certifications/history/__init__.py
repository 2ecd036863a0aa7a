"""Compliance over time: what applied and how it stood on a past date (`asof`), the history
that answer is read from (`periods`, written where requirements and exemptions start and end),
and the daily per-certification counts behind the trends (`snapshots`).
"""
