"""Device detection: a registry of detectors, or a simulated inventory from a file."""
