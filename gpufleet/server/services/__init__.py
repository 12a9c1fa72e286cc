"""Business operations, each in one transaction. Routes call these; they never talk HTTP."""
