"""Fan-out/fan-in orchestrators that process a batch of customers in parallel."""

import logging
from collections.abc import Generator
from typing import Any

import azure.durable_functions as df

from .blueprint import bp

logger = logging.getLogger(__name__)

DEFAULT_CUSTOMERS: list[str] = ["cust1", "cust2", "cust3", "cust4", "cust5"]


def _fan_out(
    context: df.DurableOrchestrationContext, customer_ids: list[Any]
) -> Generator[Any, Any, list[str]]:
    """Process every customer in parallel; task_all returns results in input order."""
    if not customer_ids:
        # The SDK's task_all of an empty list resolves to None, not [].
        return []
    if not context.is_replaying:
        logger.info("Fanning out %d customers (instance %s)", len(customer_ids), context.instance_id)
    # Activities are called by their registered names: given a function object, the SDK
    # would send its Python __name__ instead.
    tasks = [context.call_activity("ProcessCustomerActivity", cid) for cid in customer_ids]
    results: list[str] = yield context.task_all(tasks)
    if not context.is_replaying:
        logger.info("Fan-in complete: %d results (instance %s)", len(results), context.instance_id)
    return results


@bp.function_name(name="ProcessCustomers")
@bp.orchestration_trigger(context_name="context")
def process_customers(context: df.DurableOrchestrationContext) -> Generator[Any, Any, list[str]]:
    """Input: a list of customer ids (the five defaults when there is no input)."""
    customer_ids = context.get_input()
    if customer_ids is None:
        customer_ids = DEFAULT_CUSTOMERS
    if not isinstance(customer_ids, list):
        raise TypeError(
            f"ProcessCustomers expects a JSON array of customer ids, got {type(customer_ids).__name__}"
        )
    return (yield from _fan_out(context, customer_ids))


@bp.function_name(name="ProcessCustomersDynamic")
@bp.orchestration_trigger(context_name="context")
def process_customers_dynamic(context: df.DurableOrchestrationContext) -> Generator[Any, Any, list[str]]:
    """Like ProcessCustomers, but the customer list is resolved by an activity at run time.

    Input: a list of ids, ``{"count": N}``, or nothing (validated by GetCustomersActivity).
    """
    customer_ids: list[Any] = yield context.call_activity("GetCustomersActivity", context.get_input())
    return (yield from _fan_out(context, customer_ids))
