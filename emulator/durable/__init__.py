"""The durable engine: histories, replay, the orchestration and entity dispatchers, timers, leases.

``_history`` is the history events, ``_replay`` turns an orchestrator's state into decisions,
``_worker`` runs the orchestrator through the SDK and ``_episode`` is one episode without I/O; the
dispatchers (``_orchestrations``, ``_entities``), ``_timers``, ``_leases`` and ``_partitions`` run
them against the task hub. Nothing is re-exported.
"""
