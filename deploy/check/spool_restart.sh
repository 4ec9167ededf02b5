#!/usr/bin/env bash
# Why each pod needs its own persistent /data (chart 0.2.0, docs/deployment.md): a pod that is
# restarted during a database outage keeps the alerts it accepted (202) only if its /data/spool
# survives the restart. Runs `triagebot serve` from the project's .venv (no Docker) on a private
# PostgreSQL cluster (initdb under $OUT, port $PGPORT; the machine's own server is not touched):
#   1. the server starts on an empty database with its own data folder ("the pod's claim");
#   2. the database stops; an Alertmanager webhook is answered 202 and spooled;
#   3. the server stops (SIGTERM, as when Kubernetes replaces the pod); the database starts
#      again: the alert is not in it (only the spool holds it);
#   4. a new server on the SAME data folder (a StatefulSet pod with its claim) replays the spool:
#      the alert is stored. With an emptyDir the folder would be new, and the alert lost.
# Needs root (PostgreSQL runs as the postgres user).  usage: bash deploy/check/spool_restart.sh
set -u
REPO=$(cd "$(dirname "$0")/../.." && pwd)
OUT=${OUT:-/tmp/deploycheck/spool}
PGPORT=${PGPORT:-55432}
PORT=${PORT:-18190}
PGBIN=${PGBIN:-$(dirname "$(readlink -f "$(command -v pg_ctl)")")}
DB=postgresql+psycopg://postgres@127.0.0.1:$PGPORT/spoolcheck
failures=0
ok() { echo "ok: $*"; }
bad() { echo "FAILED: $*"; failures=$((failures + 1)); }

rm -rf "$OUT" && mkdir -p "$OUT/pg" "$OUT/data" && chown postgres "$OUT/pg"
pg() { runuser -u postgres -- "$PGBIN/$@"; }
pg initdb -D "$OUT/pg" -U postgres --auth=trust >"$OUT/initdb.log" 2>&1 \
  || { echo "initdb failed: $(tail -3 "$OUT/initdb.log")"; exit 1; }
pgctl() { pg pg_ctl -D "$OUT/pg" -l "$OUT/pg/log" -w "$@" >/dev/null; }
pgctl -o "-p $PGPORT -k $OUT/pg -c listen_addresses=127.0.0.1" start || exit 1
"$PGBIN/createdb" -h 127.0.0.1 -p "$PGPORT" -U postgres spoolcheck
sql() { "$PGBIN/psql" -h 127.0.0.1 -p "$PGPORT" -U postgres -d spoolcheck -tAc "$1"; }

serve() {  # the chart's production command, the chart's fixed settings, the data folder
  (cd "$OUT" && env -i PATH="$REPO/.venv/bin:/usr/bin:/bin" HOME="$OUT" \
    PYTHONDONTWRITEBYTECODE=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 \
    TRIAGEBOT_HOST=127.0.0.1 TRIAGEBOT_PORT=$PORT TRIAGEBOT_DATA_DIR="$OUT/data" \
    TRIAGEBOT_DATABASE_URL="$DB" TRIAGEBOT_LOG_JSON=true TRIAGEBOT_SCHEDULER_ENABLED=false \
    TRIAGEBOT_TORCH_THREADS=1 TRIAGEBOT_WEBHOOK_TOKENS='{"alertmanager": "spool-token"}' \
    sh -c "triagebot db upgrade && exec triagebot serve" >>"$OUT/server$1.log" 2>&1) &
  SERVER=$!
  for _ in $(seq 1 300); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/readyz")" = 200 ] && return 0
    sleep 1
  done
  return 1
}
metric() { curl -s "http://127.0.0.1:$PORT/metrics" | grep -E "^$1" | tr '\n' ' '; }
stop() {  # SIGTERM to `triagebot serve` (sh exec'd into it), as Kubernetes does
  kill -TERM "$(pgrep -P "$SERVER")" 2>/dev/null; wait "$SERVER" 2>/dev/null
  echo "server stopped (SIGTERM), exit status $?"
}

serve 1 && ok "server 1 ready" || bad "server 1 not ready: $(tail -c 400 "$OUT/server1.log")"
pgctl stop -m fast && ok "database stopped"
body='{"version": "4", "status": "firing", "receiver": "triagebot", "alerts": [{"status":
 "firing", "labels": {"alertname": "SpoolCheck", "instance": "db-01"}, "annotations": {"summary":
 "accepted during the outage"}, "startsAt": "2026-12-02T13:00:00Z", "fingerprint": "spool1"}]}'
code=$(curl -s -o "$OUT/webhook.json" -w '%{http_code}' -X POST \
  -H 'Authorization: Bearer spool-token' -H 'Content-Type: application/json' \
  -d "$body" "http://127.0.0.1:$PORT/webhooks/alertmanager")
[ "$code" = 202 ] && ok "webhook during the outage: 202 $(cat "$OUT/webhook.json")" \
  || bad "webhook during the outage: $code $(cat "$OUT/webhook.json")"
echo "server 1: $(metric 'triagebot_spool_(pending|records_total)')"
echo "spool files: $(cd "$OUT/data/spool" && ls | tr '\n' ' ')"
stop
pgctl -o "-p $PGPORT -k $OUT/pg -c listen_addresses=127.0.0.1" start && ok "database started"
n=$(sql "select count(*) from events where title like '%SpoolCheck%' or text like '%outage%'")
[ "$n" = 0 ] && ok "the alert is not in the database (only in $OUT/data/spool)" \
  || bad "$n matching events before the restart"

serve 2 && ok "server 2 ready on the same data folder" \
  || bad "server 2 not ready: $(tail -c 400 "$OUT/server2.log")"
for _ in $(seq 1 30); do
  n=$(sql "select count(*) from events where title like '%SpoolCheck%' or text like '%outage%'")
  [ "$n" = 1 ] && break; sleep 1
done
[ "$n" = 1 ] && ok "replayed: $(sql "select source, title, outcome from events")" \
  || bad "the alert was not stored after the restart ($n events)"
echo "server 2: $(metric 'triagebot_spool_(pending|records_total)')"
stop
pgctl stop -m fast
printf '\n%s check(s) failed\n' "$failures"
[ "$failures" = 0 ]
