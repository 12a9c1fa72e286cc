"""Level-triggered reconcile loops. An event only enqueues a key; ``reconcile(key)`` converges."""
