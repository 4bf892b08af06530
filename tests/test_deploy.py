"""Deployment files, validated offline: Dockerfile, docker-compose, Kubernetes, GitLab CI.

No Docker engine or cluster runs here. The compose file and the GitLab pipeline are
checked against their JSON schemas (check-jsonschema's builtin copies), the Kubernetes
manifests as `kubectl kustomize` renders them against the Kubernetes schemas
(kubernetes-validate), and every command and variable they use against the CLI and the
settings. Then the image's commands run as plain processes with the compose file's
environment, against the local PostgreSQL.
"""

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import kubernetes_validate
import pytest
import sqlalchemy as sa
import yaml
from typer.main import get_command

from notifyctl.cli import app
from notifyctl.config import Settings

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
KUBECTL = shutil.which("kubectl") or "/usr/bin/kubectl"
KUBERNETES = "1.32.0"
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
APP_SERVICES = {name: s for name, s in COMPOSE["services"].items() if "build" in s}


def cli_envvars() -> set[str]:
    """Every environment variable a CLI option reads."""
    found: set[str] = set()

    def walk(command) -> None:
        for param in command.params:
            envvar = getattr(param, "envvar", None)
            found.update([envvar] if isinstance(envvar, str) else envvar or [])
        for sub in getattr(command, "commands", {}).values():
            walk(sub)

    walk(get_command(app))
    return found


KNOWN_VARIABLES = {f"NOTIFY_{name.upper()}" for name in Settings.model_fields} | cli_envvars()


def resolve_cli(args: list[str]) -> None:
    """Parse ``notifyctl ARGS`` as the CLI would: unknown commands or options raise."""
    command = get_command(app)
    context = command.make_context("notifyctl", list(args))
    rest = [*context._protected_args, *context.args]
    while hasattr(command, "commands") and rest:
        name, command, rest = command.resolve_command(context, rest)
        context = command.make_context(name, rest, parent=context)
        rest = [*getattr(context, "_protected_args", []), *context.args]
    assert not hasattr(command, "commands"), f"{args} names a group, not a command"


def check_jsonschema(schema: str, path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN / "check-jsonschema"), "--builtin-schema", schema, str(path)],
        capture_output=True,
        text=True,
    )


# --- Dockerfile ------------------------------------------------------------------------


def dockerfile_stages() -> list[list[str]]:
    stages: list[list[str]] = []
    for line in (ROOT / "Dockerfile").read_text().replace("\\\n", " ").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("FROM "):
            stages.append([])
        if stages:
            stages[-1].append(line)
    return stages


def test_the_image_is_multi_stage_pinned_and_runs_as_a_user():
    text = (ROOT / "Dockerfile").read_text()
    base = re.search(r"ARG PYTHON_IMAGE=(\S+)", text).group(1)
    assert re.fullmatch(r"python:\d+\.\d+\.\d+-slim-\w+", base), base  # an exact release
    stages = dockerfile_stages()
    assert len(stages) >= 2
    final = stages[-1]
    assert any(
        re.fullmatch(r"USER (\d+)(:\d+)?", line) and not line.startswith("USER 0") for line in final
    )
    assert any(line.startswith("HEALTHCHECK") for line in final)
    assert not re.search(r"gcc|build-essential|apt-get install", " ".join(final))
    assert 'ENTRYPOINT ["notifyctl"]' in final
    cmd = next(line for line in final if line.startswith("CMD "))
    resolve_cli(yaml.safe_load(cmd.removeprefix("CMD ")))


def test_the_image_copies_every_package_we_ship():
    text = (ROOT / "Dockerfile").read_text()
    for package in ("notifyctl", "daemon", "mock", "web"):
        assert f"COPY {package} ./{package}" in text


# --- docker compose ---------------------------------------------------------------------


def test_compose_file_follows_the_compose_specification():
    result = check_jsonschema("vendor.compose-spec", ROOT / "docker-compose.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_runs_everything_the_issue_asks_for():
    services = COMPOSE["services"]
    assert {"postgres", "migrate", "api", "daemon", "mock", "prometheus"} <= set(services)
    assert "pgdata:/var/lib/postgresql/data" in services["postgres"]["volumes"]
    assert services["daemon"]["deploy"]["replicas"] == 2
    assert services["migrate"]["command"] == ["db", "upgrade"]
    for name in ("api", "daemon"):
        assert services[name]["depends_on"]["migrate"]["condition"] == (
            "service_completed_successfully"
        )
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert services["api"]["ports"] == ["${API_PORT:-8000}:8000"]
    mounted = services["prometheus"]["volumes"][0].split(":")[0]
    assert (ROOT / mounted).exists()


@pytest.mark.parametrize("name", sorted(APP_SERVICES))
def test_every_compose_command_exists_in_the_cli(name):
    resolve_cli(APP_SERVICES[name]["command"])


def test_every_variable_in_compose_and_env_example_is_a_setting_or_an_option():
    for name, service in APP_SERVICES.items():
        for variable in service.get("environment", {}):
            assert variable in KNOWN_VARIABLES, f"{name}: {variable}"
    compose_text = (ROOT / "docker-compose.yml").read_text()
    example = dotenv(ROOT / ".env.example")
    for variable in example:
        assert variable in KNOWN_VARIABLES or f"${{{variable}" in compose_text, variable
        assert f"${{{variable}" in compose_text, f"{variable} in .env.example is never used"
    for variable in re.findall(r"\$\{(\w+):\?", compose_text):
        assert variable in example, f"{variable} is required but not in .env.example"


def dotenv(path: Path) -> dict[str, str]:
    pairs = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            pairs[key.strip()] = value.strip()
    return pairs


def test_the_prometheus_config_scrapes_the_api_and_the_daemons():
    config = yaml.safe_load((ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert jobs["notifyctl-api"]["static_configs"][0]["targets"] == ["api:8000"]
    assert jobs["notifyctl-daemon"]["dns_sd_configs"][0] == {
        "names": ["daemon"],
        "type": "A",
        "port": Settings.model_fields["metrics_port"].default,
    }


#: Ports Prometheus's default port allocations list (its wiki) gives to exporters outside
#: its 9100-9999 range, which it has allocated to the last port: a daemon's metrics port
#: must be none of these (nor 8000/8001, our API and mock).
EXPORTER_PORTS = {2112, 3903, 4040, 5555, 6060, 7300, 8000, 8080, 8082, 8088, 8089, 8292}
EXPORTER_PORTS |= {8404, 9001, 9042, 9043, 9045, 9087, 9095, 9097, 9099, 10080, 12345}
EXPORTER_PORTS |= {15692, 16995, 19091, 19999, 24231, 42004, 44322, 61091}
EXPORTER_RANGES = (range(9090, 10000), range(10001, 10300))  # the core, exporters, 10001+


def test_the_default_metrics_port_is_no_exporters_and_leaves_room_for_workers():
    first = Settings.model_fields["metrics_port"].default
    for port in range(first, first + 8):  # --workers N: process k listens on port + k
        assert port not in EXPORTER_PORTS | {8000, 8001}, port
        assert not any(port in taken for taken in EXPORTER_RANGES), port


def test_every_deployment_file_serves_the_daemon_metrics_on_the_default_port(base):
    port = Settings.model_fields["metrics_port"].default  # (the tests' environment sets 0)
    daemon = by_kind(base, "Deployment")["notifyctl-daemon"]["spec"]["template"]
    assert daemon["metadata"]["annotations"]["prometheus.io/port"] == str(port)
    [container] = daemon["spec"]["containers"]
    assert {"name": "metrics", "containerPort": port} in container["ports"]
    [service] = [
        s for s in by_kind(base, "Service").values() if s["spec"].get("clusterIP") == "None"
    ]
    assert service["spec"]["ports"][0]["port"] == port
    config = next(doc for name, doc in by_kind(base, "ConfigMap").items() if "config" in name)
    assert config["data"]["NOTIFY_METRICS_PORT"] == str(port)
    environment = APP_SERVICES["daemon"]["environment"]
    assert environment["NOTIFY_METRICS_PORT"] == str(port)
    exposed = next(
        line for line in (ROOT / "Dockerfile").read_text().splitlines() if line.startswith("EXPOSE")
    )
    assert str(port) in exposed.split()
    scrape_configs = sorted(ROOT.glob("deploy/**/prometheus.yml"))
    assert scrape_configs
    for path in [ROOT / "README.md", ROOT / "docs" / "metrics.md", *scrape_configs]:
        assert str(port) in path.read_text(), path


# --- GitLab CI ---------------------------------------------------------------------------


def test_gitlab_pipeline_follows_gitlabs_schema():
    result = check_jsonschema("vendor.gitlab-ci", ROOT / ".gitlab-ci.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_gitlab_pipeline_lints_tests_on_postgres_and_builds_on_the_default_branch():
    pipeline = yaml.safe_load((ROOT / ".gitlab-ci.yml").read_text())
    assert pipeline["stages"] == ["lint", "test", "build"]
    assert "make lint" in pipeline["lint"]["script"]
    test = pipeline["test"]
    assert "make test" in test["script"]
    assert test["services"][0]["name"].startswith("postgres:")
    assert "postgres:5432" in test["variables"]["NOTIFY_TEST_POSTGRES_URL"]
    assert test["cache"]["paths"][0] == ".venv/"
    build = pipeline["build-image"]
    assert build["rules"] == [{"if": "$CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH"}]
    assert any("docker push" in line for line in build["script"])


# --- Kubernetes --------------------------------------------------------------------------


def kustomize(path: Path) -> list[dict]:
    if not Path(KUBECTL).exists():
        pytest.fail("kubectl (with kustomize v5) is needed to render deploy/k8s", False)
    rendered = subprocess.run(
        [KUBECTL, "kustomize", str(path)], capture_output=True, text=True, check=False
    )
    assert rendered.returncode == 0, rendered.stderr
    return [doc for doc in yaml.safe_load_all(rendered.stdout) if doc]


def render_overlay(tmp: Path, name: str, edits: dict[str, str] | None = None) -> list[dict]:
    """Overlay ``name`` rendered from a copy, secrets.env made from its example.

    ``edits`` replaces text in the copy's kustomization.yaml (each must be found), as a
    user does when they set a new image tag or a config value.
    """
    copy = tmp / "k8s"
    shutil.copytree(ROOT / "deploy" / "k8s", copy)
    overlay = copy / "overlays" / name
    shutil.copy(overlay / "secrets.env.example", overlay / "secrets.env")
    kustomization = overlay / "kustomization.yaml"
    text = kustomization.read_text()
    for old, new in (edits or {}).items():
        assert old in text, old
        text = text.replace(old, new)
    kustomization.write_text(text)
    return kustomize(overlay)


@pytest.fixture(scope="module")
def overlay(tmp_path_factory) -> list[dict]:
    """The example overlay: the real system, as a user copies it."""
    return render_overlay(tmp_path_factory.mktemp("example"), "example")


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> list[dict]:
    """The demo overlay: the real system and the mock sending API."""
    return render_overlay(tmp_path_factory.mktemp("demo"), "demo")


@pytest.fixture(scope="module")
def base() -> list[dict]:
    return kustomize(ROOT / "deploy" / "k8s" / "base")


RENDERINGS = ["base", "overlay", "demo"]


def by_kind(docs: list[dict], kind: str) -> dict[str, dict]:
    return {doc["metadata"]["name"]: doc for doc in docs if doc["kind"] == kind}


@pytest.mark.parametrize("which", RENDERINGS)
def test_every_rendered_manifest_is_valid_kubernetes(which, request):
    for doc in request.getfixturevalue(which):
        try:
            kubernetes_validate.validate(doc, KUBERNETES, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{doc['kind']}/{doc['metadata']['name']}: {exc.message}")


def test_the_base_has_every_piece(base):
    deployments = by_kind(base, "Deployment")
    assert set(deployments) == {"notifyctl-api", "notifyctl-daemon"}
    assert deployments["notifyctl-daemon"]["spec"]["replicas"] == 2
    assert set(by_kind(base, "Service")) >= {"notifyctl-api"}
    assert "notifyctl-api" in by_kind(base, "Ingress")
    pdb = by_kind(base, "PodDisruptionBudget")["notifyctl-daemon"]
    assert (
        pdb["spec"]["selector"]["matchLabels"]
        == (deployments["notifyctl-daemon"]["spec"]["selector"]["matchLabels"])
    )
    assert any(name.startswith("notifyctl-config") for name in by_kind(base, "ConfigMap"))
    assert any(name.startswith("notifyctl-secrets") for name in by_kind(base, "Secret"))


def pods(docs: list[dict]):
    """Every pod template: (its owner, the pod spec)."""
    for doc in docs:
        if doc["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
            yield doc, doc["spec"]["template"]["spec"]
        elif doc["kind"] == "CronJob":
            yield doc, doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]


def containers(docs: list[dict]):
    for doc, pod in pods(docs):
        for container in [*pod.get("initContainers", []), *pod["containers"]]:
            yield doc, container


@pytest.mark.parametrize("which", ["base", "demo"])
def test_every_container_has_probes_limits_and_an_existing_command(which, request):
    for doc, container in containers(request.getfixturevalue(which)):
        resources = container["resources"]
        assert resources["requests"], container["name"]
        assert resources["limits"], container["name"]
        init = container in doc["spec"]["template"]["spec"].get("initContainers", [])
        if doc["kind"] == "Deployment" and not init:
            assert "readinessProbe" in container
            assert "livenessProbe" in container
        resolve_cli(container["args"])
        for probe in ("readinessProbe", "livenessProbe"):
            command = container.get(probe, {}).get("exec", {}).get("command")
            if command:
                assert command[0] == "notifyctl"
                resolve_cli(command[1:])


@pytest.mark.parametrize("which", ["base", "demo"])
def test_every_variable_in_the_manifests_is_a_setting_or_an_option(which, request):
    docs = request.getfixturevalue(which)
    for doc in docs:
        if doc["kind"] in ("ConfigMap", "Secret"):
            for key in doc.get("data", {}):
                assert key in KNOWN_VARIABLES, f"{doc['metadata']['name']}: {key}"
    for _, container in containers(docs):
        for variable in container.get("env", []):
            assert variable["name"] in KNOWN_VARIABLES


@pytest.mark.parametrize("which", RENDERINGS)
def test_every_pod_runs_under_the_runtimes_default_seccomp_profile(which, request):
    found = {
        doc["metadata"]["name"]: pod.get("securityContext", {}).get("seccompProfile")
        for doc, pod in pods(request.getfixturevalue(which))
    }
    assert found
    assert {
        name: profile for name, profile in found.items() if profile != {"type": "RuntimeDefault"}
    } == {}


@pytest.mark.parametrize("which", RENDERINGS)
def test_every_pod_that_uses_the_database_migrates_it_first(which, request):
    """An init container runs `notifyctl db upgrade` with the pod's image and settings."""
    users = 0
    for doc, pod in pods(request.getfixturevalue(which)):
        main = pod["containers"][0]
        if not any("secretRef" in source for source in main.get("envFrom", [])):
            continue  # the mock: no database
        users += 1
        (init,) = pod.get("initContainers", [None])
        assert init is not None, doc["metadata"]["name"]
        assert init["args"] == ["db", "upgrade"]
        assert init["image"] == main["image"]
        assert init["envFrom"] == main["envFrom"]
        assert init["securityContext"] == main["securityContext"]
    assert users == 2  # the API and the daemon


def test_an_upgrade_is_one_apply_that_changes_no_immutable_field(tmp_path, overlay):
    """A new image and a changed setting render nothing `kubectl apply` must refuse.

    A Job's pod template cannot change: a migration Job under a fixed name had to be
    deleted by hand before each upgrade. Deployments roll; their pods migrate first.
    """
    upgraded = render_overlay(
        tmp_path,
        "example",
        {
            'newTag: "0.1.0"': 'newTag: "0.2.0"',
            "NOTIFY_DEFAULT_TIMEZONE=Europe/Moscow": "NOTIFY_DEFAULT_TIMEZONE=Europe/Berlin",
        },
    )
    before = {(doc["kind"], doc["metadata"]["name"]): doc for doc in overlay}
    changed = [
        doc["metadata"]["name"]
        for doc in upgraded
        if doc["kind"] == "Job"
        and (doc["kind"], doc["metadata"]["name"]) in before
        and before[doc["kind"], doc["metadata"]["name"]]["spec"]["template"]
        != doc["spec"]["template"]
    ]
    assert changed == []
    api = by_kind(upgraded, "Deployment")["notifyctl-api"]["spec"]["template"]["spec"]
    assert api["initContainers"][0]["image"].endswith(":0.2.0")


def _ingress_routes(path: str, ingress: dict) -> bool:
    """Whether a Prefix rule of ``ingress`` matches ``path`` (element-wise, as Kubernetes)."""
    parts = [part for part in path.split("/") if part]
    for rule in ingress["spec"]["rules"]:
        for entry in rule["http"]["paths"]:
            assert entry["pathType"] == "Prefix"
            prefix = [part for part in entry["path"].split("/") if part]
            if parts[: len(prefix)] == prefix:
                return True
    return False


def test_the_ingress_publishes_the_api_ui_and_docs_but_not_the_metrics(base, tmp_path):
    from web.app import create_app

    ingress = by_kind(base, "Ingress")["notifyctl-api"]
    app = create_app(settings=Settings(database_url=f"sqlite:///{tmp_path / 'db.sqlite'}"))
    documented = [path for path in app.openapi()["paths"] if path != "/metrics"]
    public = [*documented, "/admin", "/admin/", "/admin/login", "/admin/auth/callback"]
    public += ["/admin/static/app.js", "/docs", "/docs/", "/redoc/", "/openapi.json"]
    assert "/api/v1/clients" in public
    assert [path for path in public if not _ingress_routes(path, ingress)] == []
    assert not _ingress_routes("/metrics", ingress)
    assert not _ingress_routes("/metrics/", ingress)


def test_the_overlay_sets_namespace_image_host_secrets_and_scale(overlay):
    assert {doc["metadata"].get("namespace") for doc in overlay if doc["kind"] != "Namespace"} == {
        "notifyctl"
    }
    deployments = by_kind(overlay, "Deployment")
    assert deployments["notifyctl-daemon"]["spec"]["replicas"] == 3
    image = deployments["notifyctl-api"]["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == "registry.gitlab.com/your-group/notifyctl:0.1.0"
    ingress = by_kind(overlay, "Ingress")["notifyctl-api"]
    assert ingress["spec"]["rules"][0]["host"] == "notifyctl.mycompany.com"
    assert ingress["spec"]["tls"][0]["secretName"] == "notifyctl-mycompany-tls"
    (secret,) = by_kind(overlay, "Secret").values()
    assert set(secret["data"]) == set(
        dotenv(ROOT / "deploy/k8s/overlays/example/secrets.env.example")
    )
    referenced = deployments["notifyctl-api"]["spec"]["template"]["spec"]["containers"][0]
    assert referenced["envFrom"][1]["secretRef"]["name"] == secret["metadata"]["name"]


def config_of(docs: list[dict]) -> dict[str, str]:
    (config,) = by_kind(docs, "ConfigMap").values()
    return config["data"]


@pytest.mark.parametrize("which", ["base", "overlay"])
def test_the_base_and_the_example_deploy_the_real_system_without_the_mock(which, request):
    docs = request.getfixturevalue(which)
    assert [name for name in by_kind(docs, "Deployment") if "mock" in name] == []
    assert [args for _, c in containers(docs) if (args := c["args"])[0] == "mock"] == []
    assert "mock" not in config_of(docs)["NOTIFY_SENDER_URL"]
    (secret,) = by_kind(docs, "Secret").values()
    assert "MOCK_SECRET" not in secret["data"]


def test_the_demo_overlay_sends_through_the_mock(demo):
    assert {doc["metadata"].get("namespace") for doc in demo if doc["kind"] != "Namespace"} == {
        "notifyctl-demo"
    }
    mock = by_kind(demo, "Deployment")["notifyctl-mock"]["spec"]["template"]["spec"]
    assert mock["containers"][0]["args"][0] == "mock"
    service = by_kind(demo, "Service")["notifyctl-mock"]
    (port,) = service["spec"]["ports"]
    url = config_of(demo)["NOTIFY_SENDER_URL"]
    assert url == f"http://notifyctl-mock:{port['port']}/v1/send"
    assert mock["containers"][0]["args"][-1] == str(port["port"])
    assert {c["image"] for _, c in containers(demo)} == {
        "registry.gitlab.com/your-group/notifyctl:0.1.0"
    }
    assert by_kind(demo, "Ingress") == {}  # `kubectl port-forward`, as the README says


# --- production mode refuses the examples as they are ---------------------------------------


def test_compose_stops_before_starting_anything_on_env_example_as_it_is():
    example = dotenv(ROOT / ".env.example")
    required = set(re.findall(r"\$\{(\w+):\?", (ROOT / "docker-compose.yml").read_text()))
    assert required >= {"POSTGRES_PASSWORD", "NOTIFY_SENDER_TOKEN", "NOTIFY_SESSION_SECRET"}
    # Left empty (not "change-me"): PostgreSQL keeps the first password it starts with.
    assert all(example[name] == "" for name in required)
    for name in APP_SERVICES:
        with pytest.raises(AssertionError, match="compose needs"):
            compose_environment(name, example)


def compose_environment(name: str, values: dict[str, str]) -> dict[str, str]:
    """The environment compose gives service ``name``, from .env ``values``."""
    service = APP_SERVICES[name].get("environment", {})
    return {key: interpolate(str(value), values) for key, value in service.items()}


def test_every_compose_service_runs_in_production_mode():
    for name, service in APP_SERVICES.items():
        assert service["environment"]["NOTIFY_ENV"] == "prod", name


def run_with(env: dict[str, str], args: list[str]) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("NOTIFY_", "MOCK_"))}
    return subprocess.run(
        [sys.executable, "-m", "notifyctl", *args],
        env=base | env,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("which", "placeholders"),
    [
        ("overlay", ["NOTIFY_DATABASE_URL", "NOTIFY_SENDER_TOKEN", "NOTIFY_SENDER_URL"]),
        ("demo", ["NOTIFY_DATABASE_URL", "NOTIFY_SENDER_TOKEN", "NOTIFY_LOGIN_TOKEN"]),
    ],
)
def test_the_kubernetes_example_secrets_as_they_are_are_refused(which, placeholders, request):
    import base64

    docs = request.getfixturevalue(which)
    (secret,) = by_kind(docs, "Secret").values()
    values = config_of(docs) | {
        key: base64.b64decode(value).decode() for key, value in secret["data"].items()
    }
    app = {k: v for k, v in values.items() if k.startswith("NOTIFY_")}
    for command in (["db", "upgrade"], ["daemon", "--check"]):  # what every pod runs first
        checked = run_with(app, command)
        assert checked.returncode == 2, checked.stderr
        assert re.fullmatch(r"error: .*NOTIFY_ENV=prod refuses NOTIFY_\w+: .*\n", checked.stderr)
        for name in [*placeholders, "NOTIFY_SESSION_SECRET"]:
            assert name in checked.stderr
    mocks = [name for name in by_kind(docs, "Deployment") if "mock" in name]
    assert bool(mocks) == (which == "demo")
    for mock in mocks:
        pod = by_kind(docs, "Deployment")[mock]["spec"]["template"]["spec"]
        mock_env = {
            item["name"]: item.get("value") or values[item["valueFrom"]["secretKeyRef"]["key"]]
            for item in pod["containers"][0]["env"]
        }
        printed = run_with(mock_env, ["mock", "--print-token"])
        assert (printed.returncode, printed.stdout) == (2, ""), printed.stderr
        assert "MOCK_SECRET" in printed.stderr


# --- the image's commands as plain processes --------------------------------------------


def interpolate(value: str, values: dict[str, str]) -> str:
    """Compose's ${VAR}, ${VAR:-default} and ${VAR:?error}, from ``values``."""

    def one(match: re.Match) -> str:
        name, op, rest = match.group(1), match.group(2), match.group(3)
        if values.get(name):
            return values[name]
        if op == ":?":
            raise AssertionError(f"compose needs {name}: {rest}")
        return rest if op == ":-" else ""

    return re.sub(r"\$\{(\w+)(?:(:-|:\?)([^}]*))?\}", one, value)


def free_port() -> int:
    from tests.servers import free_port as pick

    return pick()


def wait_healthy(url: str, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stderr.read() if process.stderr else ""
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{url} never answered")


@pytest.fixture
def empty_postgres(postgres_url):
    """A database nobody migrated yet, like compose's first start."""
    import uuid

    import sqlalchemy as sa
    from sqlalchemy.engine import make_url

    from notifyctl.db import make_engine
    from tests.conftest import POSTGRES_ADMIN_URL

    name = f"notifyctl_deploy_{uuid.uuid4().hex[:8]}"
    admin = make_engine(POSTGRES_ADMIN_URL)
    with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    url = make_url(POSTGRES_ADMIN_URL).set(database=name)
    yield url.set(drivername="postgresql").render_as_string(hide_password=False)
    with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def test_pods_migrating_an_empty_postgres_at_once_all_start(empty_postgres):
    """Every API and daemon pod runs `notifyctl db upgrade` first, all at once on a new
    cluster: they queue on the migration lock, one migrates, and every one succeeds.

    The test holds the lock until all four wait for it, so they surely run together.
    """
    from notifyctl.db import HEAD_REVISION, MIGRATION_LOCK, current_revision, make_engine

    engine = make_engine(empty_postgres)
    base_env = {k: v for k, v in os.environ.items() if not k.startswith(("NOTIFY_", "MOCK_"))}
    waiting = sa.text(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
        " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
    )
    upgrades: list[subprocess.Popen] = []
    try:
        with engine.connect() as gate:
            gate.execute(sa.text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK})
            gate.commit()
            upgrades = [
                subprocess.Popen(
                    [sys.executable, "-m", "notifyctl", "db", "upgrade"],
                    env=base_env | {"NOTIFY_DATABASE_URL": empty_postgres},
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                )
                for _ in range(4)
            ]
            deadline = time.monotonic() + 30
            while gate.execute(waiting).scalar() < 4:
                gate.commit()
                assert [p.poll() for p in upgrades] == [None] * 4, "one did not wait"
                assert time.monotonic() < deadline, "they never all waited for the lock"
                time.sleep(0.1)
            gate.execute(sa.text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK})
            gate.commit()
        results = [(process.wait(60), process.stderr.read()) for process in upgrades]
        assert [code for code, _ in results] == [0] * 4, results
        assert current_revision(engine) == HEAD_REVISION
    finally:
        for process in upgrades:
            if process.poll() is None:
                process.kill()
        engine.dispose()


@pytest.mark.slow
def test_the_compose_services_run_as_plain_processes(empty_postgres, tmp_path):
    """migrate, mock, api and daemon: compose's commands and variables, local addresses."""
    ports = {"api": free_port(), "mock": free_port(), "metrics": free_port()}
    secrets = {  # long enough for production mode, which compose runs in
        "POSTGRES_PASSWORD": "unused-here",
        "MOCK_SECRET": "deploy-test-mock-secret-of-32-bytes",
        "NOTIFY_SESSION_SECRET": "deploy-test-session-secret-32-bytes",
        "NOTIFY_LOGIN_TOKEN": "nfy_deploy-test-login-token-32-chars",
    }
    base_env = {k: v for k, v in os.environ.items() if not k.startswith(("NOTIFY_", "MOCK_"))}
    # The token the README has you print with `mock --print-token`, signed with MOCK_SECRET.
    printed = subprocess.run(
        [sys.executable, "-m", "notifyctl", "mock", "--print-token"],
        env=base_env | {"MOCK_SECRET": secrets["MOCK_SECRET"]},
        capture_output=True,
        text=True,
        check=True,
    )
    secrets["NOTIFY_SENDER_TOKEN"] = printed.stdout.strip()
    local = {
        "@postgres:5432/notifyctl": None,  # the whole URL is replaced below
        "http://mock:8001": f"http://127.0.0.1:{ports['mock']}",
    }

    def environment(name: str) -> dict[str, str]:
        env = {
            key: interpolate(str(value), secrets)
            for key, value in APP_SERVICES[name].get("environment", {}).items()
        }
        for key, value in env.items():
            if key == "NOTIFY_DATABASE_URL":
                assert "@postgres:5432/notifyctl" in value
                env[key] = empty_postgres
            for there, here in local.items():
                if here and there in value:
                    env[key] = value.replace(there, here)
        if "NOTIFY_METRICS_PORT" in env:
            env["NOTIFY_METRICS_PORT"] = str(ports["metrics"])
        return base_env | env

    def command(name: str) -> list[str]:
        args = list(APP_SERVICES[name]["command"])
        if "--port" in args:
            args[args.index("--port") + 1] = str(ports[name])
        return [sys.executable, "-m", "notifyctl", *args]

    migrate = subprocess.run(
        command("migrate"), env=environment("migrate"), capture_output=True, text=True
    )
    assert migrate.returncode == 0, migrate.stderr
    running = {}
    try:
        for name in ("mock", "api", "daemon"):
            running[name] = subprocess.Popen(
                command(name),
                env=environment(name),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        wait_healthy(f"http://127.0.0.1:{ports['mock']}/healthz", running["mock"])
        wait_healthy(f"http://127.0.0.1:{ports['api']}/healthz", running["api"])
        assert len(set(ports.values())) == len(ports), ports
        health = subprocess.run(
            APP_SERVICES["daemon"]["healthcheck"]["test"][1:],
            env=environment("daemon") | {"PATH": f"{BIN}:{os.environ['PATH']}"},
            capture_output=True,
        )
        assert health.returncode == 0, health.stderr

        api = httpx.Client(
            base_url=f"http://127.0.0.1:{ports['api']}",
            headers={"Authorization": f"Bearer {secrets['NOTIFY_LOGIN_TOKEN']}"},
        )
        assert api.post("/api/v1/clients", json={"phone": "79161234567"}).status_code == 201
        mailing = api.post(
            "/api/v1/mailings",
            json={
                "text": "compose",
                "start_at": "2020-01-01T00:00:00Z",
                "end_at": "2099-01-01T00:00:00Z",
            },
        ).json()
        deadline = time.monotonic() + 30
        counts = {}
        while time.monotonic() < deadline and counts.get("sent") != 1:
            time.sleep(0.3)
            counts = api.get(f"/api/v1/mailings/{mailing['id']}/stats").json()["by_status"]
        assert counts["sent"] == 1
        assert api.get("/docs/").status_code == 200
        scraped = httpx.get(f"http://127.0.0.1:{ports['metrics']}/metrics").text
        assert 'notifyctl_messages_total{status="sent"} 1.0' in scraped
    finally:
        for process in running.values():
            process.send_signal(signal.SIGTERM)
        codes = {name: process.wait(40) for name, process in running.items()}
    # uvicorn shuts down gracefully, then re-raises the SIGTERM it caught (-15).
    assert codes["daemon"] == 0
    assert {codes["api"], codes["mock"]} <= {0, -signal.SIGTERM}


def test_the_ingress_lets_an_upload_as_large_as_the_api_takes(base):
    ingress = by_kind(base, "Ingress")["notifyctl-api"]
    size = ingress["metadata"]["annotations"]["nginx.ingress.kubernetes.io/proxy-body-size"]
    assert size.endswith("m")
    assert int(size[:-1]) * 2**20 >= Settings().max_upload_bytes


def test_every_setting_in_env_example_reaches_the_compose_containers():
    """Compose reads .env only to fill in ${...}: a line there that the compose file does
    not name changes nothing, silently."""
    compose_text = (ROOT / "docker-compose.yml").read_text()
    example = (ROOT / ".env.example").read_text()
    named = re.findall(r"^#?\s*(NOTIFY_\w+)=", example, re.M)
    assert named
    assert [name for name in named if f"${{{name}" not in compose_text] == []
