"""koalarization.video."""
