"""The deployment files: docker-compose.yml is valid Compose (checked offline against the
Compose Specification's JSON schema), workers scale, and the image runs the `retail` CLI."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"


def check_jsonschema() -> str:
    beside_python = Path(sys.executable).parent / "check-jsonschema"
    found = str(beside_python) if beside_python.exists() else shutil.which("check-jsonschema")
    if found is None:
        pytest.fail("check-jsonschema is not installed (it is in the dev extras)")
    return found


def validate(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [check_jsonschema(), "--builtin-schema", "vendor.compose-spec", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def load(path: Path) -> dict[str, Any]:
    data = YAML(typ="safe", pure=True).load(path.read_text())
    assert isinstance(data, dict)
    return data


def environment(service: dict[str, Any]) -> dict[str, str]:
    """A service's environment, whichever of the two Compose forms it uses."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        return dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(k): str(v) for k, v in env.items()}


@pytest.fixture(scope="module")
def services() -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = load(COMPOSE)["services"]
    return found


def test_compose_file_is_valid_against_the_compose_spec() -> None:
    result = validate(COMPOSE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_schema_check_does_catch_a_broken_file(tmp_path: Path) -> None:
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(COMPOSE.read_text().replace('    command: ["retail", "worker"]', "    comand: 1", 1))
    assert broken.read_text() != COMPOSE.read_text()
    assert validate(broken).returncode != 0


def test_worker_is_scalable(services: dict[str, dict[str, Any]]) -> None:
    worker = services["worker"]
    assert "container_name" not in worker
    assert not worker.get("ports")
    assert worker.get("network_mode") != "host"
    assert worker["command"] == ["retail", "worker"]


def test_api_and_worker_share_database_and_temporal(services: dict[str, dict[str, Any]]) -> None:
    api, worker = environment(services["api"]), environment(services["worker"])
    assert api["DATABASE_URL"] == worker["DATABASE_URL"]
    assert api["DATABASE_URL"].startswith("postgresql+psycopg://")
    assert "@postgres:5432/" in api["DATABASE_URL"]
    assert api["RETAIL_TEMPORAL_ADDRESS"] == worker["RETAIL_TEMPORAL_ADDRESS"] == "temporal:7233"
    assert services["api"]["command"] == ["retail", "api", "--host", "0.0.0.0"]


def test_stack_services_are_wired(services: dict[str, dict[str, Any]]) -> None:
    assert {"postgres", "temporal", "temporal-ui", "api", "worker", "simulators"} <= set(services)
    assert services["postgres"]["image"].startswith("postgres:16")
    assert "healthcheck" in services["postgres"]
    temporal = environment(services["temporal"])
    assert (temporal["DB"], temporal["POSTGRES_SEEDS"]) == ("postgres12", "postgres")
    assert services["temporal"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert environment(services["temporal-ui"])["TEMPORAL_ADDRESS"] == "temporal:7233"
    simulators = environment(services["simulators"])
    assert simulators["RETAIL_PUBLIC_API_URL"] == "http://api:8000"
    assert simulators["DATABASE_URL"] == environment(services["api"])["DATABASE_URL"]
    assert services["simulators"]["command"] == ["retail", "simulators"]


def test_secrets_come_from_the_environment(services: dict[str, dict[str, Any]]) -> None:
    secret_names = re.compile(r"SECRET|PASSWORD|PWD")
    checked = 0
    for service in services.values():
        for name, value in environment(service).items():
            if secret_names.search(name):
                assert re.fullmatch(r"\$\{[A-Z0-9_]+:-[^}]*\}", value), f"{name} is not ${{VAR:-default}}"
                checked += 1
    assert checked >= 5
    assert re.search(r"\$\{POSTGRES_PASSWORD:-", environment(services["api"])["DATABASE_URL"])


def test_dockerfile_runs_the_retail_console_script() -> None:
    text = DOCKERFILE.read_text()
    instructions = [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]
    assert instructions[0].startswith("FROM python:3.11-slim")
    run_as = [line.split(None, 1)[1] for line in instructions if line.startswith("USER ")]
    assert run_as and run_as[-1] not in ("root", "0")

    [cmd] = [line for line in instructions if line.startswith("CMD ")]
    entrypoint = [line for line in instructions if line.startswith("ENTRYPOINT ")]
    command = json.loads(cmd.removeprefix("CMD "))
    assert (json.loads(entrypoint[0].removeprefix("ENTRYPOINT ")) + command if entrypoint else command)[
        0
    ] == "retail"

    assert "pip install -r requirements.lock" in text
    assert "pip install --no-deps ." in text
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert "retail" in scripts


def test_dockerignore_keeps_secrets_and_local_state_out() -> None:
    ignored = set((ROOT / ".dockerignore").read_text().split())
    assert {".env", ".venv", ".data", ".git"} <= ignored


# -- observability: Prometheus and Grafana ------------------------------------------------------


def mounted(service: dict[str, Any], container_path: str) -> Path:
    """The host path (relative to the compose file) a container path of the service comes from."""
    for volume in service.get("volumes", []):
        source, target, *_ = volume.split(":")
        if container_path == target or container_path.startswith(target.rstrip("/") + "/"):
            assert source.startswith("./"), f"{volume} is not a bind mount"
            return ROOT / str(source) / Path(container_path).relative_to(target)
    raise AssertionError(f"nothing is mounted at {container_path}")


def test_prometheus_scrapes_the_api_and_every_worker_and_loads_the_alerts(
    services: dict[str, dict[str, Any]],
) -> None:
    prometheus = services["prometheus"]
    args = prometheus["command"]
    [config_arg] = [a for a in args if a.startswith("--config.file=")]
    config = load(mounted(prometheus, config_arg.split("=", 1)[1]))
    [rules] = config["rule_files"]
    assert mounted(prometheus, rules).is_file()

    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert jobs["retail-api"]["static_configs"][0]["targets"] == ["api:8000"]
    assert "8000:8000" in services["api"]["ports"]
    # Workers scale, so they are found by DNS, on the port their exporter binds on all interfaces.
    [dns] = jobs["retail-worker"]["dns_sd_configs"]
    assert dns["names"] == ["worker"] and dns["type"] == "A"
    address = environment(services["worker"])["RETAIL_WORKER_METRICS_ADDRESS"]
    assert address == f"0.0.0.0:{dns['port']}"
    assert not services["worker"].get("ports")  # still scalable
    assert any(v.endswith(":/prometheus") for v in prometheus["volumes"])


def test_grafana_provisions_the_prometheus_datasource_and_the_dashboard(
    services: dict[str, dict[str, Any]],
) -> None:
    grafana = services["grafana"]
    provisioning = mounted(grafana, "/etc/grafana/provisioning")
    [datasource] = load(provisioning / "datasources" / "prometheus.yml")["datasources"]
    assert datasource["type"] == "prometheus" and datasource["url"] == "http://prometheus:9090"
    [provider] = load(provisioning / "dashboards" / "retail.yml")["providers"]
    dashboards = mounted(grafana, provider["options"]["path"])
    files = sorted(dashboards.glob("*.json"))
    assert [f.name for f in files] == ["retail-orders.json"]
    dashboard = json.loads(files[0].read_text())
    uids = {p["datasource"]["uid"] for p in dashboard["panels"] if "datasource" in p}
    assert uids == {datasource["uid"]}
    home = environment(grafana)["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert mounted(grafana, home) == files[0]
    assert "prometheus" in grafana["depends_on"]
    assert "prometheus" in services and services["prometheus"]["image"].startswith("prom/prometheus:")


def test_the_worker_books_in_the_tryton_service_on_postgresql(services: dict[str, dict[str, Any]]) -> None:
    from tests.cli_runner import invoke, plain

    worker, tryton = environment(services["worker"]), environment(services["tryton"])
    assert worker["RETAIL_ERP"] == "${RETAIL_ERP:-tryton}"
    assert worker["RETAIL_TRYTON_URL"] == "http://tryton:8000"
    assert worker["RETAIL_TRYTON_DATABASE"] == tryton["RETAIL_TRYTON_DATABASE"]
    assert tryton["RETAIL_TRYTON_DATABASE_URL"].startswith("postgresql://")
    assert "@postgres:5432/" in tryton["RETAIL_TRYTON_DATABASE_URL"]
    assert services["tryton"]["command"] == ["retail", "tryton", "serve", "--host", "0.0.0.0"]
    assert services["tryton"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert services["worker"]["depends_on"]["tryton"]["condition"] == "service_healthy"
    assert "healthcheck" in services["tryton"]
    # The command the service runs exists in the image's CLI.
    result = invoke(["tryton", "serve", "--help"])
    assert result.exit_code == 0 and "RETAIL_TRYTON_DATABASE_URL" in plain(result.output)
