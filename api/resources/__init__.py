"""Blueprints: every module here exposing `blp` is registered by the app factory."""
