"""Redis adapters: flow store, rate limiter and deny-list shared by every server process."""
