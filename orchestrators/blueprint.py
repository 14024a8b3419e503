"""The blueprint every orchestrator module registers on."""

import azure.durable_functions as df

bp = df.Blueprint()
