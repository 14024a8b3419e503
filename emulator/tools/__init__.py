"""Command-line tools: the CLI, the durable commands, offline replay of saved histories.

``_cli`` is ``python -m emulator``, ``_durable_cli`` its ``durable`` commands, ``_replay_cli`` its
``replay`` command over ``_offline_replay`` (with ``_history_files`` and ``_recorded_episodes``).
Nothing is re-exported.
"""
