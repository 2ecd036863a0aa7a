"""The certifications domain: models, status rules, fan-out, notification rules.

Shared by the HTTP API (`api/`) and the background workers (`workers/`); knows nothing of
Flask requests or Dramatiq messages.
"""
