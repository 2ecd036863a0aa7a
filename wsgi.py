"""WSGI entry point for gunicorn: `gunicorn wsgi:app` (reads the environment, once, here)."""

from api import create_app
from infra import heap
from infra.settings import load_settings

app = create_app(load_settings())
heap.settle()  # freeze start-up objects, a young generation sized for a request (infra/heap.py)
