"""Pydantic wire models: ``*Create`` / ``*Update`` / ``*Public`` per resource."""
