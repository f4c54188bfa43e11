"""koalarization.evaluate."""
