"""Benchmarks of what users feel: device authorizations, pending polls, whole QR logins.

Run `python -m bench --help` from the repository root; bench/README.md has the method,
what to install (wrk) and the numbers.
"""
