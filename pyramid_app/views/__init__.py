"""Thin views, one module per resource: validate (done by `endpoint`), call
the model, return its JSON."""
