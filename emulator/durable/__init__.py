"""The durable engine: histories, replay, the orchestration and entity dispatchers, timers, leases.

``_history`` is the history events, ``_replay`` turns an orchestrator's state into decisions,
``_worker`` runs the orchestrator through the SDK and ``_episode`` is one episode without I/O; the
dispatchers (``_orchestrations``, ``_entities``), ``_timers``, ``_leases`` and ``_partitions`` run
them against the task hub. The orchestration dispatcher's parts: ``_reconcile`` (which events
apply, pure), ``_episode_runner`` (the replay, on a thread or inline), ``_outbound`` (what an
episode sends), ``_checkpoints`` (history appends, held and flushed), ``_status_writer``
(Instances-row updates and message deletes), ``_instance`` (what is kept of an instance); both
dispatchers work each instance off through ``_mailbox``, and ``_routing`` names what they deliver
to. Nothing is re-exported.
"""
