"""/metrics: Prometheus text that a scraper parses, counting what operators alert on."""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.functional.harness import Harness


def scrape(h: Harness, **kwargs: Any) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = h.http.get("/metrics", **kwargs)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.headers["Cache-Control"] == "no-store"
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.get_data(as_text=True))
        for sample in family.samples
    }


def value(samples: dict[Any, float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_a_login_shows_in_the_metrics(harness: Harness) -> None:
    before = scrape(harness)
    started = harness.authorize()
    harness.approve(started)
    assert harness.poll(started["device_code"]).status_code == 200
    harness.poll(started["device_code"])  # a replay: invalid_grant
    after = scrape(harness)

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    route = "/oauth/device_authorization"
    assert grew("authserver_requests_total", method="POST", route=route, status="200") == 1
    assert grew("authserver_request_seconds_count", route="/mobile/v1/scan") == 1
    for event in ("flow.created", "flow.scanned", "flow.approved", "token.issued"):
        assert grew("authserver_events_total", event=event) == 1, event
    assert grew("authserver_errors_total", error="InvalidGrant") == 1


@pytest.mark.parametrize("environ", [{"REMOTE_ADDR": "203.0.113.9"}, {"REMOTE_ADDR": "127.0.0.1"}])
def test_metrics_are_not_public(harness: Harness, environ: dict[str, str]) -> None:
    forwarded = {"X-Forwarded-For": "198.51.100.1"} if environ["REMOTE_ADDR"] == "127.0.0.1" else {}
    # From another machine, or through a proxy on this one: refused without a token.
    response = harness.http.get("/metrics", environ_base=environ, headers=forwarded)
    assert response.status_code == 403
    assert "authserver_" not in response.get_data(as_text=True)


class TestWithAToken:
    @pytest.fixture
    def settings(self) -> dict[str, Any]:
        return {"metrics_token": "scrape-me"}

    def test_only_the_token_opens_them(self, harness: Harness) -> None:
        assert harness.http.get("/metrics").status_code == 403  # loopback is not enough now
        wrong = {"Authorization": "Bearer nope"}
        assert harness.http.get("/metrics", headers=wrong).status_code == 403
        scrape(
            harness,
            headers={"Authorization": "Bearer scrape-me"},
            environ_base={"REMOTE_ADDR": "203.0.113.9"},
        )
