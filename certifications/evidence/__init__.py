"""Evidence: certificate documents per cycle, workers' submissions and the review queue."""
