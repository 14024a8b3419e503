"""Running functions: bindings, invocations, activities and the non-durable triggers.

``_user_code`` calls a function as the worker does (with ``_invocation_context``'s ``context``) and
logs its failure as the host does; ``_bindings`` (with ``_binding_expressions``,
``_storage_bindings`` and ``_accounts``) prepares its inputs and writes its outputs; ``_invocations``
records every invocation. ``_activities`` dispatches activity work items and ``_activity_worker``
runs one; ``triggers`` holds the timer, queue and blob listeners. Nothing is re-exported.
"""
