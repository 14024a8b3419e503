"""Running functions: bindings, invocations, activities and the non-durable triggers."""
