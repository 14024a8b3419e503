"""The task hub: where durable state lives."""
