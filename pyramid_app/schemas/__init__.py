"""colander schemas, one module per resource. They validate requests and,
through openapi.py, document them: one source of truth."""
