"""The blueprint every activity module registers on."""

import azure.durable_functions as df

bp = df.Blueprint()
