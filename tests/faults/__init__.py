"""Fault injection (issue 8): real servers while Redis, PostgreSQL or a worker fail.

Run alone with `pytest -m faults` (or `pytest tests/faults`); they also run in the normal
suite and in CI, where a missing redis-server or PostgreSQL binary is a failure.

    dependencies.py  private Redis / PostgreSQL: pause (SIGSTOP), resume, kill -9, restart
    proxy.py         FaultProxy: pause, delay, drop, blackhole, hold_after, restore
    processes.py     /proc: descendants, stopped or not, who owns a TCP connection
    servers.py       `authserver serve --workers 2` / `authserver demo` with 1 s timeouts
    actors.py        the PC, the phone and a resource server, every answer timed
    conftest.py      the stack (two workers behind both proxies) and the embedded server

Nothing here touches the machine's shared Redis (6379) or PostgreSQL (5432).
"""
