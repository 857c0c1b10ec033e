"""deploy/compose.yaml, checked as far as a machine without a Docker engine can.

No image of Milvus, etcd, MinIO or nginx can be pulled here, so the stack never runs in these
tests (tests/deploy/test_replicas.py runs the same topology as processes). What is checked:
the files parse, every file and folder they name exists, each service reaches the others by the
names and ports they listen on, every SEARCH_* variable is a setting the service reads, and
deploy/nginx-replicas.conf is deploy/nginx.conf plus its replica lines. Where ``docker compose``
or ``podman-compose`` is installed, its ``config`` must accept both files.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from app.settings import Settings
from tests.utils.paths import REPO

DEPLOY = REPO / "deploy"
COMPOSE = DEPLOY / "compose.yaml"
ELSEWHERE = DEPLOY / "compose.milvus-elsewhere.yaml"
REPLICAS = ("search-a", "search-b")
MILVUS_PORT = 19530


class ComposeLoader(yaml.SafeLoader):
    """YAML with Compose's merge tags (!reset, !override), kept as what they tag."""


def _tagged(loader: yaml.SafeLoader, node: yaml.Node) -> tuple[str, Any]:
    if isinstance(node, yaml.MappingNode):
        value: Any = loader.construct_mapping(node, deep=True)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_scalar(node)
    return (node.tag, value)


for _tag in ("!reset", "!override"):
    ComposeLoader.add_constructor(_tag, _tagged)


def load(path: Path) -> dict[str, Any]:
    data = yaml.load(path.read_text(), Loader=ComposeLoader)
    assert isinstance(data, dict)
    return data


def default(value: str) -> str:
    """``value`` with each ``${VAR:-default}`` as its default (the variable unset)."""
    return re.sub(r"\$\{\w+(?::?-([^}]*))?\}", lambda found: found[1] or "", value)


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {name: default(str(value)) for name, value in env.items()}


def settings_variables() -> set[str]:
    """Every environment variable the service's settings read."""
    names = set()
    for name, field in Settings.model_fields.items():
        alias = field.validation_alias
        choices = getattr(alias, "choices", None)
        names |= set(choices) if choices else {f"SEARCH_{name}".upper()}
    return names


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load(COMPOSE)


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    services = compose["services"]
    assert isinstance(services, dict)
    return services


def test_the_stack_has_milvus_an_index_job_two_replicas_and_nginx(
    services: dict[str, dict[str, Any]],
) -> None:
    assert set(services) == {
        "etcd",
        "minio",
        "milvus-standalone",
        "index",
        *REPLICAS,
        "nginx",
    }
    assert services["milvus-standalone"]["image"].startswith("milvusdb/milvus:v2.5.")
    assert services["milvus-standalone"]["command"] == ["milvus", "run", "standalone"]
    milvus_env = environment(services["milvus-standalone"])
    assert milvus_env["ETCD_ENDPOINTS"] == "etcd:2379"
    assert milvus_env["MINIO_ADDRESS"] == "minio:9000"
    assert services["nginx"]["image"].startswith("nginx:")


def test_every_file_and_folder_named_exists(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    for name, service in services.items():
        if "build" in service:
            context = (DEPLOY / service["build"]["context"]).resolve()
            assert context == REPO, name
            assert (context / service["build"].get("dockerfile", "Dockerfile")).is_file(), name
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith((".", "/")):
                assert (DEPLOY / source).exists(), f"{name}: {volume}"
            else:
                assert source in compose["volumes"], f"{name}: {volume}"
        for dependency in service.get("depends_on", {}):
            assert dependency in services, f"{name} depends on {dependency}"


def test_the_index_job_builds_the_mounted_corpus_into_milvus_only_when_missing(
    services: dict[str, dict[str, Any]],
) -> None:
    job = services["index"]
    command = job["command"]
    assert command[:4] == ["python", "-m", "indexer", "build"]
    assert command[command.index("--store") + 1] == "milvus"
    assert "--if-stale" in command
    assert "--force" not in command
    source = command[command.index("--source") + 1]
    mounts = {volume.split(":")[1]: volume.split(":")[0] for volume in job["volumes"]}
    assert (DEPLOY / mounts[source]).resolve() == REPO / "seeds"
    assert job["depends_on"]["milvus-standalone"]["condition"] == "service_healthy"
    assert job["restart"] == "no"
    for replica in REPLICAS:
        dependency = services[replica]["depends_on"]["index"]
        assert dependency["condition"] == "service_completed_successfully"


def test_the_index_job_and_the_replicas_share_one_collection_on_the_bundled_milvus(
    services: dict[str, dict[str, Any]],
) -> None:
    known = settings_variables()
    milvus = environment(services["index"])
    assert milvus["SEARCH_STORE"] == "milvus"
    assert milvus["SEARCH_MILVUS_URI"] == f"http://milvus-standalone:{MILVUS_PORT}"
    published = services["milvus-standalone"]["ports"]
    assert any(port.endswith(f":{MILVUS_PORT}") for port in published)
    for name in ("index", *REPLICAS):
        env = environment(services[name])
        unknown = {variable for variable in env if variable not in known}
        assert not unknown, f"{name}: no such setting {unknown}"
        shared = {key: env[key] for key in milvus}
        assert shared == milvus, name
        # One image, built once.
        assert services[name]["image"] == services["index"]["image"]
        assert services[name]["build"] == services["index"]["build"]
        # The settings parse as the service would read them.
        Settings(**{key.removeprefix("SEARCH_").lower(): value for key, value in env.items()})


def test_nginx_reaches_each_replica_where_it_listens_and_serves_their_prefix(
    services: dict[str, dict[str, Any]],
) -> None:
    nginx = services["nginx"]
    mounts = {volume.split(":")[1]: volume.split(":")[0] for volume in nginx["volumes"]}
    config_file = (DEPLOY / mounts["/etc/nginx/conf.d/default.conf"]).resolve()
    assert config_file == DEPLOY / "nginx-replicas.conf"
    config = config_file.read_text()
    upstream = re.search(r"upstream semantic_search \{(.*?)\}", config, re.DOTALL)
    assert upstream is not None
    servers = re.findall(r"^\s*server\s+([\w.-]+):(\d+)", upstream[1], re.MULTILINE)
    # The image's PORT (the service's default port too).
    port = re.search(r"^\s*PORT=(\d+)", (REPO / "Dockerfile").read_text(), re.MULTILINE)
    assert port is not None
    assert servers == [(replica, port[1]) for replica in REPLICAS]
    [listen] = re.findall(r"^\s*listen (\d+);", config, re.MULTILINE)
    assert any(mapping.endswith(f":{listen}") for mapping in nginx["ports"])
    prefix = re.search(r"location (/[\w-]+)/ \{", config)
    assert prefix is not None
    for replica in REPLICAS:
        env = environment(services[replica])
        assert env["SEARCH_ROOT_PATH"] == prefix[1]
        assert "PORT" not in env
        assert replica in nginx["depends_on"]


def test_the_override_for_a_milvus_elsewhere_only_drops_the_index_jobs_wait_for_milvus() -> None:
    override = load(ELSEWHERE)
    assert override == {"services": {"index": {"depends_on": ("!reset", {})}}}


def directives(path: Path) -> list[str]:
    """The configuration's lines without comments, blank lines or indentation."""
    lines = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
    return [line for line in lines if line]


def test_the_replicas_nginx_config_is_the_single_one_plus_its_replica_lines() -> None:
    """Every directive of deploy/nginx.conf is in deploy/nginx-replicas.conf, in order, but
    the upstream's server and the connect timeout: a change to one reaches the other."""
    single = [
        line
        for line in directives(DEPLOY / "nginx.conf")
        if not line.startswith(("server 127.0.0.1:", "proxy_connect_timeout "))
    ]
    replicas = iter(directives(DEPLOY / "nginx-replicas.conf"))
    for line in single:
        # `in` consumes the iterator up to the match: the order is checked too.
        assert line in replicas, f"deploy/nginx-replicas.conf lacks (or moved): {line}"


def compose_tools() -> list[list[str]]:
    tools = []
    if shutil.which("docker") is not None:
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True, check=False)
        if probe.returncode == 0:
            tools.append(["docker", "compose"])
    # The test extra installs podman-compose into this interpreter's environment, which need
    # not be on PATH (make test runs .venv/bin/python).
    beside = Path(sys.executable).parent / "podman-compose"
    podman_compose = str(beside) if beside.exists() else shutil.which("podman-compose")
    if podman_compose is not None:
        tools.append([podman_compose])
    return tools


@pytest.mark.parametrize("files", [[COMPOSE], [COMPOSE, ELSEWHERE]], ids=["bundled", "elsewhere"])
def test_compose_config_accepts_the_files(files: list[Path]) -> None:
    tools = compose_tools()
    assert tools, "neither docker compose nor podman-compose is installed (make install-test)"
    for tool in tools:
        command = [*tool, *(argument for file in files for argument in ("-f", str(file)))]
        result = subprocess.run(
            [*command, "config"], capture_output=True, text=True, timeout=60, check=False
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert "search-a" in result.stdout
