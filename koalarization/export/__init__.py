"""koalarization.export."""
