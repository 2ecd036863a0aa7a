"""Marshmallow schemas, one module per resource family. Unknown fields are refused (422)."""
