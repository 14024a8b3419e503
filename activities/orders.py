"""Order activities backed by Azure Table storage (tables ``orders`` and ``inventory``)."""

import hashlib
import json
import logging
import random
import time
from collections import Counter
from datetime import datetime, timedelta, timezone
from typing import Any, TypedDict

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import TableEntity, UpdateMode

from .blueprint import bp
from .storage import INVENTORY_TABLE, ORDERS_TABLE, get_table

logger = logging.getLogger(__name__)

ORDERS_PARTITION = "orders"
INVENTORY_PARTITION = "inventory"
INITIAL_STOCK = 1000
CATALOG: list[str] = [f"SKU-{n:03d}" for n in range(1, 9)]
MAX_STOCK_UPDATE_ATTEMPTS = 100


class OrderLine(TypedDict):
    sku: str
    quantity: int


class Order(TypedDict):
    orderId: str
    customerId: str
    items: list[OrderLine]
    status: str


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _digest(order_id: str) -> bytes:
    # A stable hash (unlike hash()), so a given order id always yields the same sample order.
    return hashlib.sha256(order_id.encode("utf-8")).digest()


def _sample_order(order_id: str) -> Order:
    d = _digest(order_id)
    line_count = 1 + d[1] % 3
    first_sku = d[2] % len(CATALOG)
    # Consecutive catalog entries keep the skus of one order distinct.
    items: list[OrderLine] = [
        {"sku": CATALOG[(first_sku + i) % len(CATALOG)], "quantity": 1 + d[3 + i] % 5}
        for i in range(line_count)
    ]
    return {"orderId": order_id, "customerId": f"cust{1 + d[0] % 5}", "items": items, "status": "Received"}


def _order_from_entity(entity: TableEntity) -> Order:
    return {
        "orderId": entity["RowKey"],
        "customerId": entity["CustomerId"],
        "items": json.loads(entity["Items"]),
        "status": entity["Status"],
    }


def _merge_into_order(order_id: str, columns: dict[str, Any]) -> None:
    """Merge columns into an existing order row (fails if the order does not exist)."""
    entity = {"PartitionKey": ORDERS_PARTITION, "RowKey": order_id, **columns}
    get_table(ORDERS_TABLE).update_entity(entity, mode=UpdateMode.MERGE)


@bp.function_name(name="GetOrderDetailsActivity")
@bp.activity_trigger(input_name="order_id")
def get_order_details_activity(order_id: str) -> Order:
    """Read the order, creating a deterministic sample order the first time an id is seen."""
    orders = get_table(ORDERS_TABLE)
    try:
        return _order_from_entity(orders.get_entity(ORDERS_PARTITION, order_id))
    except ResourceNotFoundError:
        pass

    order = _sample_order(order_id)
    try:
        orders.create_entity(
            {
                "PartitionKey": ORDERS_PARTITION,
                "RowKey": order_id,
                "CustomerId": order["customerId"],
                "Items": json.dumps(order["items"]),
                "Status": order["status"],
                "CreatedAt": _now(),
            }
        )
    except ResourceExistsError:
        # A concurrent or retried execution created it first; its row is the truth.
        return _order_from_entity(orders.get_entity(ORDERS_PARTITION, order_id))
    logger.info("Created sample order %s for %s", order_id, order["customerId"])
    return order


@bp.function_name(name="NotifyCustomerActivity")
@bp.activity_trigger(input_name="order")
def notify_customer_activity(order: Order) -> str:
    """Record the notification on the order row (a real app would send an email here)."""
    _merge_into_order(order["orderId"], {"NotifiedAt": _now()})
    return f"Notified {order['customerId']} about order {order['orderId']}"


def _decrement_stock(sku: str, quantity: int) -> int:
    """Subtract ``quantity`` from one sku with optimistic concurrency; return the new stock.

    Many orders update the same rows at once, so every write is conditional on the ETag (or on
    the row not existing yet) and a lost race re-reads and tries again.
    """
    inventory = get_table(INVENTORY_TABLE)
    for attempt in range(MAX_STOCK_UPDATE_ATTEMPTS):
        try:
            try:
                current = inventory.get_entity(INVENTORY_PARTITION, sku)
            except ResourceNotFoundError:
                stock = INITIAL_STOCK - quantity
                # Insert fails with 409 if another writer created the row meanwhile.
                inventory.create_entity({"PartitionKey": INVENTORY_PARTITION, "RowKey": sku, "Stock": stock})
                return stock
            stock = int(current["Stock"]) - quantity
            inventory.update_entity(
                {"PartitionKey": INVENTORY_PARTITION, "RowKey": sku, "Stock": stock},
                mode=UpdateMode.MERGE,
                etag=current.metadata["etag"],
                match_condition=MatchConditions.IfNotModified,
            )
            return stock
        except (ResourceModifiedError, ResourceExistsError):
            # Jittered, capped backoff spreads out writers that collided.
            time.sleep(random.uniform(0, min(0.2, 0.005 * 2**attempt)))
    raise RuntimeError(f"Could not update stock of {sku} after {MAX_STOCK_UPDATE_ATTEMPTS} attempts")


@bp.function_name(name="UpdateInventoryActivity")
@bp.activity_trigger(input_name="order")
def update_inventory_activity(order: Order) -> dict[str, int]:
    """Take the order's items out of stock; return the new stock level of each sku."""
    quantities: Counter[str] = Counter()
    for line in order["items"]:
        quantities[line["sku"]] += int(line["quantity"])
    levels = {sku: _decrement_stock(sku, quantity) for sku, quantity in sorted(quantities.items())}
    for sku, stock in levels.items():
        if stock < 0:
            logger.warning(
                "Stock of %s is negative (%d): order %s is backordered", sku, stock, order["orderId"]
            )
    return levels


@bp.function_name(name="ScheduleShippingActivity")
@bp.activity_trigger(input_name="order")
def schedule_shipping_activity(order: Order) -> dict[str, str]:
    """Book shipping two days out; the tracking id is derived from the order so retries agree."""
    shipping = {
        "shippingDate": (_now() + timedelta(days=2)).date().isoformat(),
        "trackingId": "TRK-" + _digest(order["orderId"]).hex()[:12].upper(),
    }
    _merge_into_order(
        order["orderId"], {"ShippingDate": shipping["shippingDate"], "TrackingId": shipping["trackingId"]}
    )
    return shipping


@bp.function_name(name="CompleteOrderActivity")
@bp.activity_trigger(input_name="order_id")
def complete_order_activity(order_id: str) -> str:
    """Mark the order completed."""
    status = "Completed"
    _merge_into_order(order_id, {"Status": status, "CompletedAt": _now()})
    return status
