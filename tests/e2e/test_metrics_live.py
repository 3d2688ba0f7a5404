"""/metrics on `authserver serve --workers 2`: one scrape adds up what every worker counted,
parsed with Prometheus's own text parser, while flows run."""

from __future__ import annotations

import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.conftest import LiveServer

ROUTE = "/oauth/device_authorization"
LOGINS = 12  # several new connections: granian hands them to both workers


def device_authorizations(server: LiveServer) -> tuple[float, set[str]]:
    """(device authorizations answered 200 by all workers together, metric family names)."""
    text = requests.get(f"{server.base_url}/metrics", timeout=10).text
    families = list(text_string_to_metric_families(text))
    count = sum(
        sample.value
        for family in families
        for sample in family.samples
        if sample.name == "authserver_requests_total"
        and sample.labels == {"method": "POST", "route": ROUTE, "status": "200"}
    )
    return count, {family.name for family in families}


def test_one_scrape_counts_every_worker(live_server_redis: LiveServer) -> None:
    server = live_server_redis
    before, _ = device_authorizations(server)
    for _ in range(LOGINS):
        with requests.Session() as fresh:  # a new connection each time
            answer = fresh.post(
                f"{server.base_url}{ROUTE}", data={"client_id": server.client_id}, timeout=10
            )
            assert answer.status_code == 200
    after, names = device_authorizations(server)
    assert after - before == LOGINS
    # The multiprocess registry: the workers' files, not one process's own default metrics.
    assert "authserver_events" in names and "python_gc_objects_collected" not in names
