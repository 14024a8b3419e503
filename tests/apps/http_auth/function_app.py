"""HTTP functions at each auth level, and one that echoes binary bodies."""

import hashlib

import azure.functions as func

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)


@app.route(route="open", auth_level=func.AuthLevel.ANONYMOUS)
def Open(req: func.HttpRequest) -> str:
    return "open"


@app.route(route="guarded")
def Guarded(req: func.HttpRequest) -> str:
    return "guarded"


@app.route(route="other")
def Other(req: func.HttpRequest) -> str:
    return "other"


@app.route(route="admin", auth_level=func.AuthLevel.ADMIN)
def Admin(req: func.HttpRequest) -> str:
    return "admin"


@app.route(route="bytes", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
def Bytes(req: func.HttpRequest) -> func.HttpResponse:
    body = req.get_body()
    return func.HttpResponse(
        body,
        mimetype="application/octet-stream",
        headers={"X-Body-Sha256": hashlib.sha256(body).hexdigest(), "X-Body-Type": type(body).__name__},
    )
