"""Customer activities used by the ProcessCustomers* orchestrators."""

import logging
import math
import os
import time
from typing import Any

from .blueprint import bp

logger = logging.getLogger(__name__)

DELAY_SETTING = "PROCESS_CUSTOMER_DELAY_SECONDS"
DEFAULT_DELAY_SECONDS = 1.0
DEFAULT_CUSTOMERS: list[str] = ["cust1", "cust2", "cust3", "cust4", "cust5"]


def _delay_seconds() -> float:
    """Read at every call so the delay can be changed without restarting the worker."""
    raw = os.environ.get(DELAY_SETTING)
    if raw is None or not raw.strip():
        return DEFAULT_DELAY_SECONDS
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if value < 0 or not math.isfinite(value):
        logger.warning(
            "Invalid %s=%r (expected a non-negative number of seconds); using %s",
            DELAY_SETTING,
            raw,
            DEFAULT_DELAY_SECONDS,
        )
        return DEFAULT_DELAY_SECONDS
    return value


@bp.function_name(name="ProcessCustomerActivity")
@bp.activity_trigger(input_name="customer_id")
def process_customer_activity(customer_id: str) -> str:
    """Simulate a slow per-customer job."""
    time.sleep(_delay_seconds())
    return f"Processed customer: {customer_id}"


@bp.function_name(name="GetCustomersActivity")
@bp.activity_trigger(input_name="request")
def get_customers_activity(request: object) -> list[Any]:
    """Resolve the customer list: a list of ids, ``{"count": N}``, or None for the defaults."""
    if request is None:
        return list(DEFAULT_CUSTOMERS)
    if isinstance(request, list):
        return request
    if isinstance(request, dict) and set(request) == {"count"}:
        count = request["count"]
        # bool is an int subclass; {"count": true} is almost certainly a mistake.
        if isinstance(count, int) and not isinstance(count, bool) and count >= 0:
            return [f"cust{i}" for i in range(1, count + 1)]
    raise ValueError(
        'GetCustomersActivity expects a list of customer ids, {"count": N} with N >= 0, '
        f"or null; got {request!r}"
    )
