"""Thin routers: parse, authorise, call a service, return a ``*Public`` schema."""
