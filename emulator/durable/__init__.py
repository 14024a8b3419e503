"""The durable engine: histories, replay, the orchestration and entity dispatchers, timers, leases."""
