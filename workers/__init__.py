"""What happens over time: the broker, Dramatiq actors, the outbox relay and the scheduler."""
