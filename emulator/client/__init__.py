"""The durable client and the management API: starts, queries, events, purges, entity operations."""
