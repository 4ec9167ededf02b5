"""The deployment files agree with the code: image, Helm chart, compose file, Slack manifest.

No Docker, helm or cluster is needed: these read the files and compare them with the settings
the bot reads (bot/config.py) and the routes its HTTP server serves (bot/server.py). Rendering
the chart and linting the Dockerfile are done with scratch tools, see docs/deployment.md.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from starlette.routing import Route

from bot.config import Settings, env_names
from bot.server import Runtime, create_http_app

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
CHART = DEPLOY / "helm" / "triagebot"


def _yaml(path: Path) -> dict:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _dockerfile() -> str:
    # Backslash continuations joined, so each instruction is one line.
    return (DEPLOY / "Dockerfile").read_text(encoding="utf-8").replace("\\\n", " ")


def _dockerfile_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for line in _dockerfile().splitlines():
        if line.startswith("ENV "):
            env.update(re.findall(r"([A-Za-z_][A-Za-z0-9_]*)=(\S+)", line))
    return env


def _helper(name: str) -> str:
    """The body of a named template in _helpers.tpl (up to the next comment or define)."""
    text = (CHART / "templates" / "_helpers.tpl").read_text(encoding="utf-8")
    start = text.find(f'define "{name}" -}}}}')
    assert start >= 0, f"no {name} in _helpers.tpl"
    body = re.split(r"\{\{/\*|\{\{- define ", text[start:].split("}}", 1)[1], maxsplit=1)[0]
    return body.strip().removesuffix("{{- end }}")


def _secret_env_vars() -> dict[str, str]:
    """secrets.keys field -> environment variable, as the chart maps them."""
    return yaml.safe_load(_helper("triagebot.secretEnvVars"))


@pytest.fixture(scope="module")
def get_routes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, set[str]]]:
    """Path -> methods of every route the server serves."""
    settings = Settings(
        _env_file=None, data_dir=tmp_path_factory.mktemp("data"), scheduler_enabled=False
    )
    runtime = Runtime(settings)
    app = create_http_app(settings, runtime)
    routes = {r.path: set(r.methods or ()) for r in app.routes if isinstance(r, Route)}
    yield routes
    runtime.components["workers"].shutdown(wait=False)


# --- the image ---------------------------------------------------------------------------------


def test_image_installs_the_torch_that_pyproject_pins() -> None:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    (pin,) = [d for d in deps if re.match(r"torch\s*==", d)]
    version = pin.split("==", 1)[1].strip()
    assert f'"torch=={version}"' in _dockerfile(), f"Dockerfile must install torch=={version}"


def test_image_runs_offline_as_a_numeric_non_root_user_that_the_chart_expects() -> None:
    env = _dockerfile_env()
    assert env.get("HF_HUB_OFFLINE") == "1" and env.get("TRANSFORMERS_OFFLINE") == "1"
    (user,) = re.findall(r"^USER (\S+)$", _dockerfile(), re.M)
    uid, _, gid = user.partition(":")
    assert uid.isdigit() and int(uid) != 0, f"USER {user}: numeric, not root"
    pod = _yaml(CHART / "values.yaml")["podSecurityContext"]
    assert pod["runAsNonRoot"] is True
    assert (pod["runAsUser"], pod["runAsGroup"]) == (int(uid), int(gid or uid))


def test_image_env_names_are_settings_and_listen_where_the_chart_probes() -> None:
    env = _dockerfile_env()
    app_env = {k for k in env if k.startswith(("TRIAGEBOT_", "SLACK_"))}
    assert app_env <= env_names(), f"not settings: {sorted(app_env - env_names())}"
    assert env["TRIAGEBOT_HOST"] == "0.0.0.0"  # reachable from outside the container
    assert int(env["TRIAGEBOT_PORT"]) == _yaml(CHART / "values.yaml")["containerPort"]
    assert f"EXPOSE {env['TRIAGEBOT_PORT']}" in _dockerfile()


def test_image_healthcheck_and_start_command(get_routes: dict[str, set[str]]) -> None:
    text = _dockerfile()
    (healthcheck,) = re.findall(r"^HEALTHCHECK .*? CMD (\[.*\])$", text, re.M)
    command = " ".join(json.loads(healthcheck))
    path = re.search(r"/healthz|/readyz", command)
    assert path and "GET" in get_routes[path.group(0)]
    assert "TRIAGEBOT_PORT" in command  # follows the port the server listens on
    cmds = re.findall(r"^CMD (\[.*\])$", text, re.M)
    assert json.loads(cmds[-1])[-1].endswith("exec triagebot serve")  # SIGTERM reaches serve


# --- the Helm chart ----------------------------------------------------------------------------


def test_chart_probes_hit_get_routes_on_the_named_port(get_routes: dict[str, set[str]]) -> None:
    values = _yaml(CHART / "values.yaml")
    deployment = (CHART / "templates" / "deployment.yaml").read_text(encoding="utf-8")
    assert "- name: http\n              containerPort: {{ .Values.containerPort }}" in deployment
    paths = {}
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        get = values[probe]["httpGet"]
        assert get["port"] == "http"
        assert "GET" in get_routes.get(get["path"], set()), f"{probe}: no GET {get['path']}"
        paths[probe] = get["path"]
    # /healthz is 200 even when start-up failed: only /readyz says the pod can serve.
    assert paths["readinessProbe"] == paths["startupProbe"] == "/readyz"
    assert paths["livenessProbe"] == "/healthz"


def test_chart_env_names_are_settings() -> None:
    values_text = (CHART / "values.yaml").read_text(encoding="utf-8")
    names = set(_yaml(CHART / "values.yaml")["env"])
    # The commented examples under env: are meant to be uncommented as they are.
    names |= set(re.findall(r"^  # (TRIAGEBOT_[A-Z0-9_]+):", values_text, re.M))
    deployment = (CHART / "templates" / "deployment.yaml").read_text(encoding="utf-8")
    names |= set(re.findall(r"- name: ([A-Z][A-Z0-9_]+)$", deployment, re.M))
    names |= set(_secret_env_vars().values())
    assert {"TRIAGEBOT_HOST", "TRIAGEBOT_PORT", "TRIAGEBOT_DATA_DIR"} <= names
    assert names <= env_names(), f"not settings: {sorted(names - env_names())}"


def test_chart_maps_every_secret_setting_and_refuses_it_in_plain_env() -> None:
    secret_vars = _secret_env_vars()
    # The secrets the bot reads: tokens, signing secrets, the database URL (holds a password).
    secret_settings = {
        n for n in env_names() if re.search(r"TOKEN|SECRET|DATABASE_URL", n)
    }
    assert set(secret_vars.values()) == secret_settings
    values = _yaml(CHART / "values.yaml")
    assert set(values["secrets"]["keys"]) == set(secret_vars)
    assert values["secrets"]["existingSecret"] == ""  # the chart never holds secret values
    assert not set(values["env"]) & secret_settings
    validate = _helper("triagebot.validate")
    assert "values $secretVars" in validate and "is a secret" in validate


def test_chart_refuses_several_replicas_without_postgresql() -> None:
    validate = _helper("triagebot.validate")
    condition = re.search(r"if and \(gt \(int \.Values\.replicaCount\) 1\)(.*?)\}\}", validate)
    assert condition, "the chart must refuse replicaCount > 1 on SQLite"
    assert ".Values.secrets.existingSecret" in condition.group(1)
    assert ".Values.secrets.keys.databaseUrl" in condition.group(1)


def test_ingress_exposes_only_slack_and_webhooks(get_routes: dict[str, set[str]]) -> None:
    paths = [p for h in _yaml(CHART / "values.yaml")["ingress"]["hosts"] for p in h["paths"]]
    exposed = set()
    for entry in paths:
        if entry["pathType"] == "Exact":
            assert entry["path"] in get_routes, entry
            exposed.add(entry["path"])
        else:
            prefix = entry["path"].rstrip("/") + "/"
            matched = {r for r in get_routes if r.startswith(prefix)}
            assert matched, f"{entry['path']} reaches no route"
            exposed |= matched
    assert exposed == {"/slack/events", "/webhooks/{source}"}


def test_servicemonitor_scrapes_the_metrics_route(get_routes: dict[str, set[str]]) -> None:
    text = (CHART / "templates" / "servicemonitor.yaml").read_text(encoding="utf-8")
    (path,) = re.findall(r"path: (\S+)", text)
    assert "GET" in get_routes[path]
    assert "- port: http" in text
    assert "name: http" in (CHART / "templates" / "service.yaml").read_text(encoding="utf-8")


# --- compose -----------------------------------------------------------------------------------


def test_compose_env_overrides_what_a_local_env_file_would_break() -> None:
    bot = _yaml(DEPLOY / "compose.yaml")["services"]["bot"]
    env = bot["environment"]
    assert set(env) <= env_names()
    # ../.env (copied from .env.example for `make run`) says 127.0.0.1 and ./data:
    # `environment` wins over env_file, so these must be set here.
    assert env["TRIAGEBOT_HOST"] == "0.0.0.0"
    assert bot["ports"] == [f"{env['TRIAGEBOT_PORT']}:{env['TRIAGEBOT_PORT']}"]
    assert f"botdata:{env['TRIAGEBOT_DATA_DIR']}" in bot["volumes"]
    assert env["TRIAGEBOT_DATABASE_URL"].startswith("postgresql+psycopg://")


# --- the Slack app manifest --------------------------------------------------------------------

EVENT_SCOPES = {
    "app_mention": "app_mentions:read",
    "message.channels": "channels:history",
    "message.groups": "groups:history",
    "message.im": "im:history",
    "message.mpim": "mpim:history",
    "app_home_opened": None,
}


def test_slack_manifest_scopes_match_its_events_and_the_docs() -> None:
    manifest = _yaml(DEPLOY / "slack-app-manifest.yaml")
    scopes = set(manifest["oauth_config"]["scopes"]["bot"])
    events = manifest["settings"]["event_subscriptions"]["bot_events"]
    needed = {EVENT_SCOPES[e] for e in events} - {None}
    assert needed <= scopes, f"events without their scope: {sorted(needed - scopes)}"
    history = {s for s in scopes if s.endswith(":history")}
    assert history <= needed, f"history scopes without their event: {sorted(history - needed)}"
    table = (ROOT / "docs" / "slack.md").read_text(encoding="utf-8").split("| scope |", 1)[1]
    table = table.split("\n\n", 1)[0]
    documented = set(re.findall(r"`([a-z_.]+:[a-z_.]+|commands)`", table))
    assert documented == scopes, (
        f"docs/slack.md lists {sorted(documented - scopes)} too many, "
        f"{sorted(scopes - documented)} missing"
    )
