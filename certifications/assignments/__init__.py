"""Assignments (SPEC §4, §5): a certification held by one subject, and its status.

The status rules (`status`) and their set-based SQL (`recompute`), assignment writes
(`service`), role fan-out (`fanout`) and when each org's tick is due (`schedule`).
"""
