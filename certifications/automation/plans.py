"""Reminder plans: a certification's stages of reminders, and how they become notifications.

A plan is data on the certification: `{"stages": [...], "stop_when": "renewed"}`. A stage
counts from the expiry (`offset_days` before, negative, or after it) or from a status
(`event`: expired, revoked, missing), notifies its recipients over its channels, and may repeat
every N days up to `max_repeats` times. Today's `notification_rules` are the one-stage-per-rule
plans of `plan_from_rules`; a stage they can express keeps the rule's identity (`stage_key`), so
reminders sent before plans existed are never sent again.

Exactly once per (assignment, stage, repetition, cycle, channel, recipient): the notifications'
unique key. Only the latest due repetition of a stage is created on a day, so a tick that comes
late sends one reminder, not the ones it missed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from certifications.vocabulary import BEFORE_EXPIRY, EXPIRED

DEFAULT_STOP_WHEN = "renewed"
MAX_REPEATS = 52


@dataclass(frozen=True)
class Window:
    """One (stage, repetition) due on `today`: the expiries it applies to, (lo, hi]."""

    rule_key: str
    trigger: str
    event: str
    offset: int
    repetition: int
    expires_after: date | None  # expires_on > this (the next repetition is not due yet)
    expires_until: date | None  # expires_on <= this (this repetition is due)


def stage_key(stage: dict[str, Any]) -> str:
    """A stage's identity in the notifications' unique key; a rule's `rule_key` for the same
    moment (`before_expiry:30`, `expired`, …), so migrated rules never notify twice."""
    event = stage.get("event", "expiry")
    if event != "expiry":
        return str(event)
    offset = int(stage["offset_days"])
    return f"before_expiry:{-offset}" if offset <= 0 else f"after_expiry:{offset}"


def stage_trigger(stage: dict[str, Any]) -> str:
    """The message wording (automation.messages) a stage's reminders use."""
    event = stage.get("event", "expiry")
    if event != "expiry":
        return str(event)
    return BEFORE_EXPIRY if int(stage["offset_days"]) <= 0 else EXPIRED


def plan_from_rules(rules: list[dict[str, Any]] | None) -> dict[str, Any]:
    """The plan today's `notification_rules` mean: one stage per rule, nothing repeating."""
    stages = []
    for rule in rules or []:
        stage: dict[str, Any] = {
            "recipients": list(rule.get("recipients") or []),
            "channels": list(rule.get("channels") or ["email"]),
            "repeat_every_days": None,
            "max_repeats": 0,
        }
        if rule.get("trigger") == BEFORE_EXPIRY:
            stage = {"offset_days": -int(rule.get("days") or 0), **stage}
        else:
            stage = {"event": rule.get("trigger"), "offset_days": 0, **stage}
        stages.append(stage)
    return {"stages": stages, "stop_when": DEFAULT_STOP_WHEN}


def rules_from_plan(plan: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The stages a rule can say (no repeat, holder/admins/addresses, not after the expiry),
    as rules: what the compatible `notification_rules` field shows."""
    rules = []
    for stage in (plan or {}).get("stages") or []:
        recipients = stage.get("recipients") or []
        if stage.get("repeat_every_days") or any(
            r in ("manager", "location_managers", "custodian") for r in recipients
        ):
            continue
        event = stage.get("event", "expiry")
        rule: dict[str, Any]
        if event == "expiry":
            if int(stage["offset_days"]) > 0:
                continue
            rule = {"trigger": BEFORE_EXPIRY, "days": -int(stage["offset_days"])}
        else:
            rule = {"trigger": event}
        rules.append({**rule, "recipients": recipients, "channels": stage.get("channels")})
    return rules


def effective_plan(cert: Any) -> dict[str, Any]:
    """The plan a certification runs: its own, or the one its rules make."""
    if cert.reminder_plan is not None:
        return dict(cert.reminder_plan)
    return plan_from_rules(cert.notification_rules)


def windows(stage: dict[str, Any], today: date) -> list[Window]:
    """The (repetition, expiry range) pairs of a stage on `today`: for an expiry stage,
    repetition r is the latest due when expires_on + offset + r·N <= today < … + (r+1)·N."""
    key, trigger, event = stage_key(stage), stage_trigger(stage), stage.get("event", "expiry")
    offset = int(stage.get("offset_days") or 0)
    if event != "expiry":
        return [Window(key, trigger, event, offset, 0, None, None)]
    every = stage.get("repeat_every_days") or 0
    repeats = min(int(stage.get("max_repeats") or 0), MAX_REPEATS) if every else 0
    out = []
    for r in range(repeats + 1):
        until = today - timedelta(days=offset + r * every)
        after = today - timedelta(days=offset + (r + 1) * every) if r < repeats else None
        out.append(Window(key, trigger, event, offset, r, after, until))
    return out
