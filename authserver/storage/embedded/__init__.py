"""In-process adapters for the single-process default: flow store, rate limiter, deny-list."""
