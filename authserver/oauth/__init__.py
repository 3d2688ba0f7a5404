"""The OAuth wire format: the only package that imports Authlib."""
