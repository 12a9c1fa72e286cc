"""Scheduler plugins: filters (may this worker host it?), candidate kinds (how could it fit?), scorers."""
