"""koalarization.train."""
