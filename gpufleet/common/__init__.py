"""Small shared building blocks with no dependency on the server or the worker."""
