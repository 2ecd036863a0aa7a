"""Directory: locations (SPEC §4, §9); the routes are shared by every kind, see `directory.py`."""

from api.resources.directory import directory_blueprint

blp = directory_blueprint("locations")
