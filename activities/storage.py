"""Table storage access for the order activities, through the AzureWebJobsStorage connection."""

import os
import threading

from azure.data.tables import TableClient, TableServiceClient

CONNECTION_SETTING = "AzureWebJobsStorage"
ORDERS_TABLE = "orders"
INVENTORY_TABLE = "inventory"

_clients: dict[tuple[str, str], TableClient] = {}
_clients_lock = threading.Lock()


def _connection_string() -> str:
    # azure-data-tables maps "UseDevelopmentStorage=true" to the local Azurite account itself,
    # but only when it is the whole string, so drop a trailing ";".
    value = os.environ.get(CONNECTION_SETTING, "").strip().rstrip(";")
    if not value:
        raise RuntimeError(f"The {CONNECTION_SETTING} app setting is not set")
    return value


def get_table(name: str) -> TableClient:
    """Return a cached client for table ``name``, creating the table on first use.

    Clients are thread-safe and reused by every invocation in this worker process; the cache is
    keyed by connection string too, so a changed setting gets fresh clients.
    """
    connection = _connection_string()
    key = (connection, name)
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            service = TableServiceClient.from_connection_string(connection)
            client = service.create_table_if_not_exists(name)
            _clients[key] = client
        return client
