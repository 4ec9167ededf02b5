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
    deployment = (CHART / "templates" / "workload.yaml").read_text(encoding="utf-8")
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
    deployment = (CHART / "templates" / "workload.yaml").read_text(encoding="utf-8")
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


# --- the chart: where /data lives -----------------------------------------------------------


def _template(name: str) -> str:
    return (CHART / "templates" / name).read_text(encoding="utf-8")


def _block(text: str, start: str) -> str:
    """From the line holding ``start`` to the next line indented as little or less."""
    lines = text[text.index(start):].splitlines()
    indent = len(lines[0]) - len(lines[0].lstrip())
    out = [lines[0]]
    for line in lines[1:]:
        if line.strip() and len(line) - len(line.lstrip()) <= indent:
            break
        out.append(line)
    return "\n".join(out)


def test_data_dir_contents_are_where_the_chart_mounts_them() -> None:
    # The chart sets TRIAGEBOT_DATA_DIR=/data and mounts models.shared at /data/models: the bot's
    # SQLite file, indexes and spool must lie under /data (the per-pod claim), its classifier
    # artifacts exactly at the shared mount.
    settings = Settings(_env_file=None, data_dir=Path("/data"), database_url=None)
    workload = _template("workload.yaml")
    assert '- name: TRIAGEBOT_DATA_DIR\n              value: "/data"' in workload
    assert "mountPath: /data\n" in workload
    assert f"mountPath: {settings.models_dir}\n" in workload
    for folder in (settings.index_dir, settings.spool_dir):
        assert folder.parent == Path("/data")
    assert settings.resolved_database_url == "sqlite:////data/triagebot.db"


def test_model_artifacts_are_files_so_per_pod_data_needs_shared_models() -> None:
    # The database records only an artifact's path (no blob): a model trained on one pod's
    # volume is missing on the others. Hence the chart's refusal of several replicas with a
    # claim per pod and no models.shared; if artifacts ever move into the database, relax it.
    from bot.store.models import ModelVersion

    types = {c.name: type(c.type).__name__ for c in ModelVersion.__table__.columns}
    assert "artifact_path" in types
    assert not {"LargeBinary", "BLOB", "BYTEA"} & set(types.values()), types
    validate = _helper("triagebot.validate")
    refusal = re.search(r'if include "triagebot.perPodData" \.(.*?)\{\{- end \}\}', validate, re.S)
    assert refusal and "not .Values.models.shared.enabled" in refusal.group(1)


def test_several_replicas_with_persistence_get_a_claim_per_pod() -> None:
    helper = _helper("triagebot.perPodData")
    # auto: per pod exactly when replicaCount > 1; an existing claim is one claim for all pods
    assert '(eq $mode "auto") (gt (int .Values.replicaCount) 1)' in helper
    assert "not .Values.persistence.existingClaim" in helper
    assert '$mode := "auto"' in helper  # a release without the value (--reuse-values) is auto
    values = _yaml(CHART / "values.yaml")
    assert values["persistence"]["perPod"] == "auto"
    assert values["statefulSet"]["podManagementPolicy"] == "Parallel"
    assert values["statefulSet"]["updateStrategy"] == {"type": "RollingUpdate"}
    production = _yaml(CHART / "ci" / "production-values.yaml")
    assert production["replicaCount"] > 1
    assert production["persistence"]["enabled"] is True
    assert production["persistence"]["perPod"] is True
    assert production["models"]["shared"]["enabled"] is True


def test_one_pod_template_for_both_workload_kinds() -> None:
    workload = _template("workload.yaml")
    # One file, one pod template: the StatefulSet's pods have the Deployment's probes, security
    # contexts, env and mounts by construction.
    assert "kind: {{ if $perPod }}StatefulSet{{ else }}Deployment{{ end }}" in workload
    assert workload.count("\n  template:\n") == 1
    assert "serviceName: {{ include \"triagebot.headlessServiceName\" . }}" in workload
    assert "podManagementPolicy: {{ $sts.podManagementPolicy }}" in workload
    # The per-pod claim replaces the pod volume "data"; the release's one claim is not made.
    volumes = _block(workload, "      volumes:")
    assert re.search(r"\{\{- if not \$perPod \}\}\s*- name: data\n", volumes)
    assert 'not (include "triagebot.perPodData" .)' in _template("pvc.yaml").split("---")[0]


def test_claim_template_has_only_stable_labels() -> None:
    # volumeClaimTemplates cannot change on an existing StatefulSet: a chart or app version
    # label there would make every upgrade of the chart fail.
    claims = _block(_template("workload.yaml"), "  volumeClaimTemplates:")
    assert "- metadata:\n        name: data\n" in claims
    assert 'include "triagebot.selectorLabels"' in claims
    assert 'include "triagebot.labels"' not in claims and ".Chart" not in claims
    assert "storage: {{ .Values.persistence.size }}" in claims
    assert 'dict "storageClass" .Values.persistence.storageClass' in claims
    selector = _helper("triagebot.selectorLabels")
    assert ".Chart" not in selector and "version" not in selector


def test_headless_service_is_not_scraped_twice() -> None:
    service = _template("service.yaml")
    headless = service.split("---", 1)[1]
    assert 'include "triagebot.perPodData"' in service.split("---", 1)[0].splitlines()[-1]
    assert 'name: {{ include "triagebot.headlessServiceName" . }}' in headless
    assert "clusterIP: None" in headless
    (label,) = re.findall(r"^    ([a-z0-9./-]+): \"true\"$", headless, re.M)
    monitor = _template("servicemonitor.yaml")
    assert f"- key: {label}\n        operator: DoesNotExist" in monitor


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
