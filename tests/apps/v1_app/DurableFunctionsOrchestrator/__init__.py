# This function is not intended to be invoked directly. Instead it will be
# triggered by an HTTP starter function.
# Before running this sample, please:
# - create a Durable activity function (default name is "Hello")
# - create a Durable HTTP starter function
# - add azure-functions-durable to requirements.txt
# - run pip install -r requirements.txt


import azure.durable_functions as df


def orchestrator_function(context: df.DurableOrchestrationContext):
    cities = context.get_input() or ["Tokyo", "Seattle", "London"]
    # Fan out: one activity per city, all running at once; fan in: wait for every result.
    tasks = [context.call_activity("Hello", city) for city in cities]
    results = yield context.task_all(tasks)
    return results


main = df.Orchestrator.create(orchestrator_function)
