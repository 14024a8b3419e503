"""Azure Functions app (Python v2 programming model) with Durable Functions.

Orchestrators and activities live in their own packages as blueprints; this module creates the
app, registers them, and defines the HTTP starter.
"""

import json
import logging

import azure.durable_functions as df
import azure.functions as func

from activities import bp as activities_bp
from orchestrators import bp as orchestrators_bp

logger = logging.getLogger(__name__)

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)
app.register_functions(orchestrators_bp)
app.register_functions(activities_bp)


@app.route(route="orchestrators/{functionName}", methods=[func.HttpMethod.POST])
@app.durable_client_input(client_name="client")
async def http_start(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    """Start the orchestrator named in the route with the JSON request body as its input.

    An unknown orchestrator name makes ``start_new`` raise; that is left unhandled on purpose so
    the host reports it like any other function failure.
    """
    function_name = req.route_params["functionName"]
    body = req.get_body()
    client_input = None
    if body.strip():
        try:
            client_input = json.loads(body)
        except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
            return func.HttpResponse(
                json.dumps({"error": f"Request body is not valid JSON: {exc}"}),
                status_code=400,
                mimetype="application/json",
            )

    instance_id = await client.start_new(function_name, client_input=client_input)
    logger.info("Started orchestration '%s' with ID = '%s'", function_name, instance_id)
    return client.create_check_status_response(req, instance_id)
