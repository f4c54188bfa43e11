"""koalarization.colorize."""
