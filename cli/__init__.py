"""The `certs` command line: the one place that composes the API, the workers and the scheduler."""
