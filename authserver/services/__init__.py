"""Services: orchestrate the domain with the ports; they own every side effect."""
