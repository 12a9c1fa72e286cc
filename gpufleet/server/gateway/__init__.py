"""The OpenAI-compatible gateway under ``/v1``: one endpoint for every deployed model."""
