"""koalarization.model."""
