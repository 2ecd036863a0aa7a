"""The audit trail (SPEC §5): every change made on behalf of an actor (`trail`)."""
