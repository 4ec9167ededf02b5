#!/usr/bin/env bash
# The image's start-up without Docker (docs/deployment.md): the package installed from a wheel
# (not editable, as `pip install .` in the Dockerfile), run by uid 10001 with the Dockerfile's
# ENV and CMD, a HOME it cannot write (as with readOnlyRootFilesystem), then probed: /readyz,
# /healthz, the Dockerfile's HEALTHCHECK command, webhooks with and without a token, /metrics,
# and a SIGTERM stop. Needs root (setpriv, chown) and the project's .venv for the dependencies.
#   bash deploy/check/smoke_image.sh                       # SQLite, the image's CMD, no network
#   N=2 DB_URL=postgresql+psycopg://USER@127.0.0.1:5432/EMPTY_DB \
#     CMD="triagebot db upgrade && exec triagebot serve" bash deploy/check/smoke_image.sh
set -u
REPO=$(cd "$(dirname "$0")/../.." && pwd)
B=${OUT:-/tmp/deploycheck}
PYTHON=${PYTHON:-/usr/bin/python3}   # readable by uid 10001 (a python under /root is not)
if [ -z "${INNER:-}" ]; then
  mkdir -p "$B" && rm -rf "$B/wheel" "$B/imgvenv" && mkdir -p "$B/wheel"
  (cd "$REPO" && git archive HEAD --prefix=src/ pyproject.toml README.md bot knowledge \
    classifiers) \
    | tar x -C "$B/wheel"
  (cd "$B/wheel/src" && "$REPO/.venv/bin/python" -m pip wheel -q --no-deps --no-build-isolation \
    -w ../dist . 2>&1 | grep -v '^WARNING: Location')
  "$PYTHON" -m venv "$B/imgvenv"
  "$B/imgvenv/bin/pip" install -q --no-deps "$B"/wheel/dist/triagebot-*.whl 2>&1 \
    | grep -v '^WARNING: Location'
  # Dependencies from the project's venv, after the wheel on sys.path (its editable hook unused).
  site=$("$REPO/.venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  echo "$site" > "$(echo "$B"/imgvenv/lib/python3*/site-packages)/zz_project_deps.pth"
  if [ -z "${DB_URL:-}" ] && unshare -n true 2>/dev/null; then
    exec env INNER=1 HOST=${HOST:-0.0.0.0} unshare -n bash -c "ip link set lo up; bash $0"
  fi
  export INNER=1
fi
N=${N:-1}; DB_URL=${DB_URL:-}; RO_HOME=${RO_HOME:-1}; BASEPORT=${BASEPORT:-18180}
HOST=${HOST:-127.0.0.1}
DF=$REPO/deploy/Dockerfile
if [ "${CMD:-image}" = image ]; then
  CMD=$(python3 -c "import json, re; t = open('$DF').read()
print(json.loads(re.findall(r'^CMD (\[.*\])$', t, re.M)[-1])[2])")
fi
HC=$(python3 -c "import json, re; t = open('$DF').read().split('HEALTHCHECK', 1)[1]
print(re.search(r'^\s*CMD (\[.*\])$', t, re.M).group(1))")
echo "command: $CMD"
rm -rf $B/run && mkdir -p $B/run/home $B/run/app $B/run/models && chown 10001:10001 $B/run/models
[ "$RO_HOME" = 1 ] || chown 10001:10001 $B/run/home
PIDS=()
for i in $(seq 1 $N); do
  mkdir -p $B/run/data$i && chown 10001:10001 $B/run/data$i
  # models.shared: one claim at /data/models for all pods, /data itself per pod (its own claim
  # in the chart's StatefulSet, or an emptyDir)
  [ "$N" -gt 1 ] && ln -s $B/run/models $B/run/data$i/models
  port=$((BASEPORT + i))
  (cd $B/run/app && env -i PATH=$B/imgvenv/bin:/usr/bin:/bin HOME=$B/run/home \
    PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 \
    TRIAGEBOT_HOST=$HOST TRIAGEBOT_PORT=$port TRIAGEBOT_DATA_DIR=$B/run/data$i \
    TRIAGEBOT_LOG_JSON=true TRIAGEBOT_LOG_LEVEL=INFO TRIAGEBOT_WORKERS=4 \
    TRIAGEBOT_TORCH_THREADS=1 TRIAGEBOT_SCHEDULER_ENABLED=true \
    ${DB_URL:+TRIAGEBOT_DATABASE_URL=$DB_URL} \
    TRIAGEBOT_WEBHOOK_TOKENS='{"alertmanager": "deploycheck-token"}' \
    setpriv --reuid 10001 --regid 10001 --clear-groups sh -c "$CMD" >$B/run/server$i.log 2>&1) &
  PIDS+=($!)
  # docs/operations.md: let one pod migrate the schema first
  [ "$i" = 1 ] && [ "$N" -gt 1 ] && sleep 20
done

status() { curl -s -o "${2:-/dev/null}" -w '%{http_code}' "${@:3}" "$1"; }
alert() {  # a minimal Alertmanager webhook body (version 4)
  printf '{"version": "4", "status": "firing", "receiver": "triagebot", "alerts": [{"status": '
  printf '"firing", "labels": {"alertname": "DiskFull", "instance": "db-0%s"}, ' "$1"
  printf '"annotations": {"summary": "disk full on db-0%s"}, ' "$1"
  printf '"startsAt": "2026-12-02T13:00:00Z", "fingerprint": "f%s"}]}' "$1"
}
t0=$(date +%s)
for i in $(seq 1 $N); do
  url=http://127.0.0.1:$((BASEPORT + i))
  for k in $(seq 1 600); do
    code=$(status $url/readyz $B/run/ready$i.json)
    [ "$code" = 200 ] && break; sleep 1
  done
  echo "pod$i /readyz $code after $(( $(date +%s) - t0 ))s: $(head -c 300 $B/run/ready$i.json)"
  echo "pod$i /healthz $(status $url/healthz)"
  # The image's CMD ["python", "-c", ...], with this python.
  TRIAGEBOT_PORT=$((BASEPORT + i)) python3 -c 'import json, subprocess, sys
sys.exit(subprocess.call([sys.executable, *json.loads(sys.argv[1])[1:]]))' "$HC"
  echo "pod$i the Dockerfile's HEALTHCHECK command exits $?"
  echo "pod$i webhook without token: $(status $url/webhooks/alertmanager "" -X POST -d '{}')"
  echo "pod$i webhook with token: $(status $url/webhooks/alertmanager "" -X POST \
    -H 'Authorization: Bearer deploycheck-token' -H 'Content-Type: application/json' \
    -d "$(alert $i)")"
done
sleep 8
for i in $(seq 1 $N); do
  metrics=$(curl -s http://127.0.0.1:$((BASEPORT + i))/metrics \
    | grep -E '^triagebot_(ready|alert_grouping_leader|index_entries|events_total)')
  echo "pod$i metrics: $(echo "$metrics" | tr '\n' ' ')"
done
for i in $(seq 1 $N); do
  pid=${PIDS[$((i-1))]}; child=$(pgrep -P $pid); s=$(date +%s)
  kill -TERM $child
  for k in $(seq 1 40); do kill -0 $child 2>/dev/null || break; sleep 1; done
  kill -0 $child 2>/dev/null && { echo "pod$i still running 40s after SIGTERM"; kill -KILL $child; }
  wait $pid 2>/dev/null; rc=$?
  echo "pod$i stopped $(( $(date +%s) - s ))s after SIGTERM, exit status $rc"
done
echo "written under HOME: $(cd $B/run/home && find . -mindepth 1 | head -5 | tr '\n' ' ')"
echo "ERROR lines in the logs: $(grep -h -c -E '"level": ?"(ERROR|CRITICAL)"' $B/run/server*.log \
  | tr '\n' ' ')"
