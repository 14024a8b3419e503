"""The durable client and the management API: starts, queries, events, purges, entity operations.

``_client`` is every instance management operation; ``_durable_http`` serves them as the HTTP
management API, ``_task_hubs`` for the task hub a request names, ``_entity_client`` for entities and
``_purges`` for what a purge leaves behind. Nothing is re-exported.
"""
