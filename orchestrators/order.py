"""Order workflow: look up the order, run the independent steps in parallel, then complete it."""

import logging
from collections.abc import Generator
from typing import Any

import azure.durable_functions as df

from .blueprint import bp

logger = logging.getLogger(__name__)


@bp.function_name(name="ProcessOrder")
@bp.orchestration_trigger(context_name="context")
def process_order(context: df.DurableOrchestrationContext) -> Generator[Any, Any, dict[str, Any]]:
    """The instance id doubles as the order id, so each order maps to exactly one instance."""
    order_id = context.instance_id
    order: dict[str, Any] = yield context.call_activity("GetOrderDetailsActivity", order_id)
    if not context.is_replaying:
        logger.info("Order %s for %s: %d item line(s)", order_id, order["customerId"], len(order["items"]))

    # Notification, stock and shipping do not depend on each other.
    notification, stock, shipping = yield context.task_all(
        [
            context.call_activity("NotifyCustomerActivity", order),
            context.call_activity("UpdateInventoryActivity", order),
            context.call_activity("ScheduleShippingActivity", order),
        ]
    )
    status: str = yield context.call_activity("CompleteOrderActivity", order_id)
    if not context.is_replaying:
        logger.info("Order %s is %s", order_id, status)

    return {
        "orderId": order["orderId"],
        "customerId": order["customerId"],
        "items": order["items"],
        "notification": notification,
        "inventory": stock,
        "shipping": shipping,
        "status": status,
    }
