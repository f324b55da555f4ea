"""docker-compose.yml, Prometheus' config and the Grafana dashboard, checked without Docker.

No Docker engine runs here, so these check what can be checked: the files parse, promtool
accepts the config and every dashboard query, the compose services would start with the
settings they are given and listen where Prometheus scrapes them, every mounted file exists,
and the dashboard queries only documented metrics.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from taskstream.core.security import core_exposure
from taskstream.core.settings import CoreSettings
from taskstream.executor.settings import ExecutorSettings
from taskstream.infra.security import InsecureConfigurationError, check_exposure
from taskstream.infra.settings import unknown_variables
from taskstream.monitor.security import monitor_exposure
from taskstream.monitor.settings import MonitorSettings
from tests.metrics_docs import ROOT, documented_metrics, metric_of_series

COMPOSE = ROOT / "docker-compose.yml"
PROMETHEUS = ROOT / "deploy" / "prometheus" / "prometheus.yml"
GRAFANA = ROOT / "deploy" / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "taskstream.json"
SERVICES = ("core", "executor", "monitor")
_METRIC = re.compile(r"\btaskstream_[a-z0-9_]+\b")


def _promtool() -> str:
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: run `bash scripts/system-packages.sh`"
    return promtool


def _yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = _yaml(COMPOSE)
    return loaded


def _mounts(service: dict[str, Any]) -> dict[str, str]:
    """A service's bind mounts: container path -> host path (relative to the compose file)."""
    mounts = {}
    for volume in service.get("volumes", []):
        source, target, *_ = volume.split(":")
        mounts[target] = source
    return mounts


def _expressions() -> list[tuple[str, str]]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [
        (panel["title"], target["expr"])
        for panel in dashboard["panels"]
        for target in panel.get("targets", [])
    ]


def test_promtool_accepts_the_prometheus_config() -> None:
    result = subprocess.run(
        [_promtool(), "check", "config", str(PROMETHEUS)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_compose_services_start_with_their_settings_and_are_scraped(
    compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    services = compose["services"]
    assert {"kafka", "postgres", *SERVICES, "prometheus", "grafana"} <= services.keys()
    targets = {
        job["job_name"]: [t for config in job["static_configs"] for t in config["targets"]]
        for job in _yaml(PROMETHEUS)["scrape_configs"]
    }
    assert targets.keys() == set(SERVICES)
    for name in SERVICES:
        env = {key: str(value) for key, value in services[name]["environment"].items()}
        assert unknown_variables([CoreSettings, ExecutorSettings, MonitorSettings], env) == []
        for key in [k for k in os.environ if k.startswith("TASKSTREAM_")]:
            monkeypatch.delenv(key)
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        core, executor, monitor = CoreSettings(), ExecutorSettings(), MonitorSettings()
        host, port = {
            "core": (core.api_host, core.api_port),
            "executor": (executor.executor_host, executor.executor_port),
            "monitor": (monitor.monitor_host, monitor.monitor_port),
        }[name]
        assert host == "0.0.0.0", f"{name} must listen beyond its container for Prometheus"
        assert targets[name] == [f"{name}:{port}"]
        if name != "executor":  # the core and the monitor refuse to start without tokens
            _check_tokens(services, name, core if name == "core" else monitor, tmp_path)


def _check_tokens(
    services: dict[str, Any], name: str, settings: CoreSettings | MonitorSettings, tmp: Path
) -> None:
    """It reads its tokens from the file the `tokens` service generates, and then starts."""
    if isinstance(settings, CoreSettings):
        tokens_file, field, exposure = settings.api_tokens_file, "api_tokens_file", core_exposure
    else:
        tokens_file, field = settings.monitor_tokens_file, "monitor_tokens_file"
        exposure = monitor_exposure
    assert tokens_file is not None, f"{name} listens on 0.0.0.0: it needs a tokens file"
    generator = services["tokens"]
    volume, mount = generator["volumes"][0].split(":")[:2]
    assert str(tokens_file.parent) == mount
    assert f"{volume}:{mount}:ro" in services[name]["volumes"]
    assert services[name]["depends_on"]["tokens"] == {"condition": "service_completed_successfully"}
    with pytest.raises(InsecureConfigurationError, match="TOKENS_FILE"):
        check_exposure(exposure(settings))  # not generated here
    # run the generator's script against a temporary file instead of the volume's
    local = tmp / "tokens"
    script = generator["entrypoint"][-1].replace(str(tokens_file), str(local))
    subprocess.run([sys.executable, "-c", script], check=True, timeout=30)
    token = local.read_text().strip()
    assert len(token) >= 32 and local.stat().st_mode & 0o077 == 0
    subprocess.run([sys.executable, "-c", script], check=True, timeout=30)
    assert local.read_text().strip() == token, "kept across restarts"
    generated = exposure(settings.model_copy(update={field: local}))
    assert generated.tokens == (token,)
    check_exposure(generated)


def test_every_mounted_file_exists(compose: dict[str, Any]) -> None:
    mounted = [
        source
        for service in compose["services"].values()
        for source in _mounts(service).values()
        if source.startswith(".")
    ]
    assert mounted
    for source in mounted:
        assert (COMPOSE.parent / source).exists(), f"{source} is mounted but missing"
    prometheus = _mounts(compose["services"]["prometheus"])
    assert prometheus["/etc/prometheus/prometheus.yml"] == "./deploy/prometheus/prometheus.yml"
    assert (
        "--config.file=/etc/prometheus/prometheus.yml"
        in compose["services"]["prometheus"]["command"]
    )


def test_grafana_is_provisioned_with_the_datasource_and_the_dashboard(
    compose: dict[str, Any],
) -> None:
    grafana = _mounts(compose["services"]["grafana"])
    assert grafana["/etc/grafana/provisioning"] == "./deploy/grafana/provisioning"
    [datasource] = _yaml(GRAFANA / "provisioning" / "datasources" / "prometheus.yml")["datasources"]
    assert datasource["type"] == "prometheus"
    assert datasource["url"] == "http://prometheus:9090"
    [provider] = _yaml(GRAFANA / "provisioning" / "dashboards" / "taskstream.yml")["providers"]
    assert grafana[provider["options"]["path"]] == "./deploy/grafana/dashboards"

    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] == "taskstream"
    for panel in dashboard["panels"]:
        for owner in (panel, *panel["targets"]):
            assert owner["datasource"] == {"type": "prometheus", "uid": datasource["uid"]}, panel[
                "title"
            ]


def test_the_dashboard_queries_only_documented_metrics() -> None:
    documented = documented_metrics()
    used = set()
    for title, expr in _expressions():
        names = _METRIC.findall(expr)
        assert names, f"{title!r} queries no taskstream metric: {expr}"
        for name in names:
            metric = metric_of_series(name, documented)
            assert metric, f"{title!r} queries {name}, which docs/metrics.md does not list"
            used.add(metric)
    wanted = {  # the panels
        "taskstream_executions_total",
        "taskstream_execution_duration_seconds",
        "taskstream_schedule_lag_seconds",
        "taskstream_dispatch_latency_seconds",
        "taskstream_executions_in_flight",
        "taskstream_executor_consumer_lag",
        "taskstream_dead_letters_total",
        "taskstream_retries_scheduled_total",
    }
    assert wanted <= used, f"no panel shows {sorted(wanted - used)}"


def test_promtool_parses_every_dashboard_query(tmp_path: Path) -> None:
    """Each query as a recording rule: `promtool check rules` parses its PromQL."""
    rules = [
        {"record": f"dashboard:query_{i}", "expr": expr.replace("$__rate_interval", "1m")}
        for i, (_, expr) in enumerate(_expressions())
    ]
    path = tmp_path / "dashboard-rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = subprocess.run(
        [_promtool(), "check", "rules", str(path)], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules)} rules found" in result.stdout
