"""The catalog (SPEC §4): certification definitions and their rules (`service`), the group tree
(`groups`) and form answers (`forms`)."""
