"""An app a browser front end calls: ``hello`` answers any method, ``Waiter`` runs until told.

The browser tests serve a page from another loopback port and call these across origins; the
local.settings.json with the CORS settings is written by each test.
"""

from __future__ import annotations

import json
from collections.abc import Generator
from typing import Any

import azure.durable_functions as df
import azure.functions as func

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)


@app.route(route="hello", methods=["GET", "POST", "PUT", "DELETE"])
def hello(req: func.HttpRequest) -> func.HttpResponse:
    body = {"method": req.method, "trace": req.headers.get("x-trace")}
    return func.HttpResponse(json.dumps(body), mimetype="application/json")


@app.orchestration_trigger(context_name="context")
def Waiter(context: df.DurableOrchestrationContext) -> Generator[Any, Any, Any]:
    value = yield context.wait_for_external_event("Go")
    return value
