"""An app that reads, and optionally sets, the garbage collector's thresholds at import."""

import gc
import json
import os

import azure.functions as func

app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)

AT_IMPORT = gc.get_threshold()
if os.environ.get("GC_APP_THRESHOLDS"):
    gc.set_threshold(*(int(part) for part in os.environ["GC_APP_THRESHOLDS"].split(",")))


@app.route(route="thresholds", methods=["GET"])
def thresholds(req: func.HttpRequest) -> func.HttpResponse:
    body = {"at_import": AT_IMPORT, "now": gc.get_threshold()}
    return func.HttpResponse(json.dumps(body), mimetype="application/json")
