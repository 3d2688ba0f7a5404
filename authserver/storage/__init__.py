"""Storage adapters: SQL repositories and flow stores behind the domain's ports."""
