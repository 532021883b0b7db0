"""The edges: FastAPI routes, sessions and their clocks, executors, limits, metrics."""
