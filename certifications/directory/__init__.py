"""The directory (SPEC §4): roles and the subjects certifications attach to, one at a time
(`service`) or in bulk and from CSV (`bulk`)."""
