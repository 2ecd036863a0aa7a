"""Event webhooks: endpoints an organization subscribes, the events it emits, their deliveries."""
