"""A real JupyterHub deployment: memguard in each user server, inside a container memory limit.

JupyterHub (subprocess) with its proxy, users alice and bob (and an admin user "admin"); each
single-user server runs in its own new memory cgroup of 1 GiB (as a container would, with
Spawner.mem_limit set to the same) and loads examples/jupyter_server_config.py. A real
Prometheus scrapes every user server's /metrics through the proxy. Checked through the proxy,
as users and admins would see it: the limit is detected from the cgroup, alice's runaway
kernel is halted by memguard (bob's server is untouched), the admin sees it across users in
Prometheus, every query of examples/grafana-dashboard.json works, and only admins may halt.
Fixtures: tests/hub.py.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from . import cgroups
from .hub import (
    EXAMPLES,
    GiB,
    Hub,
    Prometheus,
    execute,
    missing_components,
    runaway_code,
    running_hub,
    running_prometheus,
    wait_for,
)

pytestmark = [
    pytest.mark.skipif(
        missing_components() is not None,
        reason=f"JupyterHub deployment test {missing_components()}",
    ),
    pytest.mark.cgroup,
    pytest.mark.timeout(300),
]

USERS = ["alice", "bob"]
ADMIN = "admin"  # c.MemGuardAdminAuthorizer.admins in examples/jupyter_server_config.py
LIMIT = 1 * GiB
LIFETIME_S = 600  # every process of the deployment is SIGKILLed by then, whatever happens
HALTED = 'memguard_kernel_terminations_total{verdict="halted_by_memguard"}'


@dataclass
class Deployment:
    hub: Hub
    prometheus: Prometheus
    tokens: dict[str, str]  # user name -> a token of that user (made through the hub's API)

    def failure_report(self) -> str:
        """Attached to a failing test's report (see conftest.py)."""
        return self.hub.logs()

    def terminations(self, user: str, kernel_id: str | None = None) -> dict[str, Any]:
        query = f"?kernel_id={kernel_id}" if kernel_id else ""
        return self.hub.user_json(user, f"api/memguard/terminations{query}", self.tokens[user])

    def start_kernel(self, user: str) -> str:
        kernel = self.hub.user_json(
            user, "api/kernels", self.tokens[user], "POST", {"name": "python3"}
        )
        return kernel["id"]


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    root = tmp_path_factory.mktemp("hub")
    with running_hub(root, USERS, [ADMIN], LIMIT, lifetime_s=LIFETIME_S) as hub:
        try:
            tokens = {name: hub.new_token(name) for name in [*USERS, ADMIN]}
            for user in USERS:  # both spawn at once; the API answers 202 at once
                hub.start_server(user)
            for user in USERS:
                hub.wait_ready(user)
            with running_prometheus(root, hub, USERS, lifetime_s=LIFETIME_S) as prometheus:
                yield Deployment(hub, prometheus, tokens)
        except Exception:
            print(hub.logs())  # shown by pytest with the error in setup
            raise


def test_budget_is_the_container_limit(deployment: Deployment) -> None:
    hub, tokens = deployment.hub, deployment.tokens
    made = hub.registry.read_text().split()  # "version path" per cgroup the spawner made
    paths = set()
    for user in USERS:
        status = hub.user_json(user, "api/memguard/status", tokens[user])
        budget = status["budget"]
        assert budget["limit_bytes"] == LIMIT, budget
        assert budget["limit_source"].startswith("cgroup"), budget
        assert budget["candidates"]["spawner_mem_limit"] == LIMIT, budget  # MEM_LIMIT, a tie
        assert budget["cgroup_path"] in made, (budget, made)  # the spawner's "container"
        paths.add(budget["cgroup_path"])
        # The example config: each kernel may use 70 % of the container.
        assert status["settings"]["kernel_memory_limit_bytes"] == int(0.7 * LIMIT), status
        # ... and keeps the journal in the user's home.
        assert status["journal"]["path"] == str(
            hub.homes / user / ".local/share/jupyter/memguard/journal.sqlite"
        )
        assert status["can_halt"] is False  # not an admin
    assert len(paths) == len(USERS)  # one container each
    # A user's token is no key to another user's server.
    assert hub.user("bob", "api/memguard/status", tokens["alice"]).status == 403


def test_prometheus_scrapes_every_user_server_without_a_token(deployment: Deployment) -> None:
    hub, prometheus = deployment.hub, deployment.prometheus
    # The example config sets c.ServerApp.authenticate_prometheus = False, and JupyterHub's
    # single-user auth lets /metrics through: no token needed.
    response = hub.user("alice", "metrics", token=None)
    assert response.status == 200 and b"memguard_budget_limit_bytes" in response.body

    def scraped() -> bool:
        up = prometheus.by_user(f'up{{job="{prometheus.job}"}}')
        limits = prometheus.by_user("memguard_budget_limit_bytes")
        return up == dict.fromkeys(USERS, 1.0) and limits == dict.fromkeys(USERS, float(LIMIT))

    wait_for(scraped, 60, "both user servers scraped, each with its own 1 GiB budget")


def test_runaway_kernel_halted_and_seen_across_users(deployment: Deployment) -> None:
    hub, prometheus, tokens = deployment.hub, deployment.prometheus, deployment.tokens
    wait_for(lambda: set(prometheus.by_user(HALTED)) == set(USERS), 60, "the counters scraped")
    before = prometheus.by_user(HALTED)
    status = hub.user_json("alice", "api/memguard/status", tokens["alice"])
    group = cgroups.MemoryCgroup(
        Path(status["budget"]["cgroup_path"]), status["budget"]["cgroup_version"]
    )
    oom_kills = group.oom_kills()
    bob_before = hub.user_json("bob", "api/memguard/status", tokens["bob"])

    kernel_id = deployment.start_kernel("alice")
    execute(hub, "alice", kernel_id, tokens["alice"], runaway_code(deadline_s=60))

    def halted() -> dict[str, Any] | None:
        rows = deployment.terminations("alice", kernel_id)["terminations"]
        return rows[0] if rows else None

    record = wait_for(halted, 90, "alice's runaway kernel recorded as terminated", step=0.5)
    assert record["verdict"] == "halted_by_memguard", record
    assert group.oom_kills() == oom_kills, "the kernel OOM killer fired before memguard"
    kernel_limit = status["settings"]["kernel_memory_limit_bytes"]
    assert record["evidence"]["limit_bytes"] == kernel_limit, record
    assert record["evidence"]["peak_rss_bytes"] >= 0.8 * kernel_limit, record

    def gone() -> bool:
        kernels = hub.user_json("alice", "api/kernels", tokens["alice"])
        return kernel_id not in [k["id"] for k in kernels]

    wait_for(gone, 30, "the halted kernel removed from alice's server")

    # Alice's server lives on; bob's was not touched.
    assert hub.user_json("alice", "api/memguard/status", tokens["alice"])["budget"]
    assert deployment.terminations("bob")["total"] == 0
    bob = hub.user_json("bob", "api/memguard/status", tokens["bob"])
    assert bob["budget"]["cgroup_path"] == bob_before["budget"]["cgroup_path"]
    assert bob["journal"]["recorded_this_run"] == 0
    assert hub.api("users/bob")["servers"][""]["ready"]

    # The admin sees it, across users, in Prometheus.
    def counted() -> dict[str, float] | None:
        now = prometheus.by_user(HALTED)
        expected = {"alice": before["alice"] + 1, "bob": before["bob"]}
        return now if now == expected else None

    wait_for(counted, 30, "alice's halt counted in Prometheus, bob's counter unchanged")
    assert before["bob"] == 0

    # ... and on the dashboard's "OOM kills and memguard halts by user server" panel.
    (query,) = [e for _, e in dashboard_queries(prometheus) if "halted_by_memguard" in e]

    def on_the_panel() -> dict[str, float] | None:
        halts = {
            s["metric"]["instance"]: float(s["value"][1])
            for s in prometheus.vector(query)
            if s["metric"]["verdict"] == "halted_by_memguard"
        }
        return halts if set(halts) == set(USERS) and halts["alice"] > 0.5 else None

    assert wait_for(on_the_panel, 30, "alice's halt on the dashboard")["bob"] == 0


# Grafana's built-in variables, as a dashboard over the last hour would have them.
GRAFANA_BUILTINS = {
    "__rate_interval": "1m",
    "__interval": "15s",
    "__range": "1h",
    "__range_s": "3600",
}


def dashboard_queries(prometheus: Prometheus) -> list[tuple[str, str]]:
    """(panel title, PromQL) of every target of the example dashboard, variables filled in.

    A template variable ``label_values(metric, label)`` gets all the values Prometheus has
    (as Grafana's "All" does: a regex alternation); built-ins get GRAFANA_BUILTINS.
    """
    dashboard = json.loads((EXAMPLES / "grafana-dashboard.json").read_text())
    values = dict(GRAFANA_BUILTINS)
    for variable in dashboard["templating"]["list"]:
        if variable["type"] != "query":
            continue
        match = re.fullmatch(r"label_values\((\w+),\s*(\w+)\)", variable["query"])
        assert match, f"template variable query not understood: {variable}"
        metric, label = match.groups()
        answer = prometheus.api(f"label/{label}/values", **{"match[]": metric})
        assert answer["status"] == "success" and answer["data"], (variable, answer)
        values[variable["name"]] = "(" + "|".join(answer["data"]) + ")"
    found = []
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            expr = re.sub(
                r"\$\{?(\w+)\}?", lambda m: values.get(m.group(1), m.group(0)), target["expr"]
            )
            found.append((panel["title"], expr))
    return found


def test_every_dashboard_query_works(deployment: Deployment) -> None:
    prometheus = deployment.prometheus
    # A live kernel (in bob's server), so the kernel panels have something to show.
    kernel_id = deployment.start_kernel("bob")
    wait_for(
        lambda: prometheus.vector(f'memguard_kernel_peak_bytes{{kernel_id="{kernel_id}"}}'),
        60,
        "bob's kernel in Prometheus",
    )
    jobs = prometheus.api("label/job/values", **{"match[]": "memguard_kernels"})["data"]
    assert jobs == [prometheus.job]  # the dashboard's $job variable

    expressions = dashboard_queries(prometheus)
    assert expressions
    for title, expr in expressions:
        assert "$" not in expr, f"unknown Grafana variable in {title!r}: {expr}"
        answer = prometheus.query(expr)
        assert answer["status"] == "success", (title, expr, answer)
        # Every panel shows something (a scrape that failed under load leaves a gap: retry).
        wait_for(lambda e=expr: prometheus.vector(e), 30, f"panel {title!r} showing data")

    budget = [expr for _, expr in expressions if "memguard_budget_limit_bytes" in expr]
    assert budget

    def both_users() -> list[dict[str, Any]] | None:
        series = prometheus.vector(budget[0])
        return series if {s["metric"].get("instance") for s in series} == set(USERS) else None

    for series in wait_for(both_users, 30, "the budget panel showing both user servers"):
        assert 0 < float(series["value"][1]) < 1, series


def test_only_admins_may_halt(deployment: Deployment) -> None:
    hub, tokens = deployment.hub, deployment.tokens
    kernel_id = deployment.start_kernel("alice")
    halt = f"api/memguard/kernels/{kernel_id}/halt"

    # examples/memguard_authorizer.py, loaded by the example config, is in force on the hub's
    # single-user server: alice may read but not halt; the admin user may halt.
    assert hub.user_json("alice", "api/memguard/status", tokens["alice"])["can_halt"] is False
    assert hub.user_json("alice", "api/memguard/status", tokens[ADMIN])["can_halt"] is True
    refused = hub.user("alice", halt, tokens["alice"], "POST", {"reason": "by alice"})
    assert refused.status == 403, (refused.status, refused.body)
    assert kernel_id in [k["id"] for k in hub.user_json("alice", "api/kernels", tokens["alice"])]

    accepted = hub.user("alice", halt, tokens[ADMIN], "POST", {"reason": "by the admin"})
    assert accepted.status == 202, (accepted.status, accepted.body)

    def recorded() -> dict[str, Any] | None:
        rows = deployment.terminations("alice", kernel_id)["terminations"]
        return rows[0] if rows else None

    record = wait_for(recorded, 60, "the admin's halt recorded", step=0.5)
    assert record["verdict"] == "halted_by_memguard", record
    assert record["evidence"]["intent"] == "admin_halt", record
    trigger = record["evidence"]["trigger"]
    assert (trigger["kind"], trigger["by"], trigger["note"]) == ("admin", ADMIN, "by the admin")
