"""Automation (SPEC §5): what an org's tick does after recomputing statuses.

Rule evaluation: notification rules (`notifications`) and renewal task rules (`tasks`), run
together by `pipeline`, which also queues the deliveries. Delivery of one notification: claim
and record the outcome (`delivery`), what it says (`messages`), how it leaves (`transports`).
"""
