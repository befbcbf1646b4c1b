#!/usr/bin/env bash
# A local multi-process Ray cluster for trying quasar-dist jobs on one machine: one head and N
# worker nodes, each its own `ray start` with its own --num-cpus, on free loopback ports, with
# token authentication, all state in one temporary folder.
#
#   cluster/local_cluster.sh start [--workers N] [--head-cpus C] [--worker-cpus C]
#                                  [--object-store-mb M] [--no-auth]
#   cluster/local_cluster.sh status [STATE_DIR]
#   cluster/local_cluster.sh stop   [STATE_DIR]
#
# `start` prints the Ray address, the dashboard / job-submission address, and a file to source
# (`source STATE_DIR/env.sh`) that sets RAY_ADDRESS (the job API), RAY_AUTH_MODE and
# RAY_AUTH_TOKEN_PATH for `ray job ...`; with it sourced, `ray status --address GCS_ADDRESS` and
# `quasar run --address GCS_ADDRESS` work too (GCS_ADDRESS is in STATE_DIR/address).
# `stop` ends only the processes this script started: their pids are in STATE_DIR/pids, and each
# is checked against its command line (it must name this cluster's temp dir) before it is signalled.
# Never use `ray stop` to end this cluster: it kills every Ray process on the machine.
#
# Without STATE_DIR, status/stop use the last cluster started (recorded in $QUASAR_LOCAL_CLUSTER_FILE,
# default ${TMPDIR:-/tmp}/quasar-local-cluster-$UID).
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CURRENT_FILE="${QUASAR_LOCAL_CLUSTER_FILE:-${TMPDIR:-/tmp}/quasar-local-cluster-$(id -u)}"

# Prefer the project's venv; RAY / PYTHON override.
if [[ -x "$REPO_ROOT/.venv/bin/ray" ]]; then
    RAY="${RAY:-$REPO_ROOT/.venv/bin/ray}"
    PYTHON="${PYTHON:-$REPO_ROOT/.venv/bin/python}"
else
    RAY="${RAY:-ray}"
    PYTHON="${PYTHON:-python3}"
fi

die() { echo "local_cluster: error: $*" >&2; exit 1; }

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}"; }

# N distinct free TCP ports on 127.0.0.1 (all bound at once, so they differ from each other).
free_ports() {
    "$PYTHON" - "$1" <<'PY'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
for s in socks:
    s.close()
PY
}

# True if pid is alive and its command line contains the given text (guards against pid reuse).
pid_matches() {
    local pid="$1" needle="$2"
    [[ -r "/proc/$pid/cmdline" ]] || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$needle"
}

resolve_state() {
    local state="${1:-}"
    if [[ -z "$state" ]]; then
        [[ -r "$CURRENT_FILE" ]] || die "no cluster recorded in $CURRENT_FILE; pass STATE_DIR"
        state="$(cat "$CURRENT_FILE")"
    fi
    [[ -f "$state/pids" ]] || die "$state is not a local_cluster state folder (no pids file)"
    echo "$state"
}

# Start one `ray start --block` in the background; record "role pid" in STATE/pids.
launch() {
    local role="$1"; shift
    nohup "$RAY" start --block "$@" >"$STATE/logs/$role.out" 2>&1 </dev/null &
    echo "$role $!" >>"$STATE/pids"
}

wait_for_port() {
    local port="$1" pid="$2" deadline=$((SECONDS + 120))
    until "$PYTHON" -c "import socket,sys; socket.create_connection(('127.0.0.1', int(sys.argv[1])), 1)" "$port" 2>/dev/null; do
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "local_cluster: head exited; see $STATE/logs/head.out" >&2; return 1
        fi
        if (( SECONDS >= deadline )); then
            echo "local_cluster: head did not open port $port within 120 s" >&2; return 1
        fi
        sleep 1
    done
}

# Wait until the GCS reports `want` alive nodes (a short-lived driver, no resources used).
wait_for_nodes() {
    local want="$1"
    "$PYTHON" - "$ADDRESS" "$want" "${QUASAR_LOCAL_CLUSTER_JOIN_TIMEOUT:-180}" <<'PY'
import sys, time, ray
address, want = sys.argv[1], int(sys.argv[2])
ray.init(address=address, logging_level="ERROR", log_to_driver=False)
deadline = time.time() + float(sys.argv[3])
while True:
    alive = sum(1 for n in ray.nodes() if n["Alive"])
    if alive >= want:
        break
    if time.time() > deadline:
        sys.exit(f"only {alive} of {want} nodes joined within {sys.argv[3]} s")
    time.sleep(1)
resources = ray.cluster_resources()
print(f"nodes: {alive}, CPU: {resources.get('CPU', 0):g}, GPU: {resources.get('GPU', 0):g}")
ray.shutdown()
PY
}

cmd_start() {
    local workers=2 head_cpus=1 worker_cpus=1 object_store_mb=256 auth=token
    while [[ $# -gt 0 ]]; do
        case "$1" in
            --workers) workers="$2"; shift 2 ;;
            --head-cpus) head_cpus="$2"; shift 2 ;;
            --worker-cpus) worker_cpus="$2"; shift 2 ;;
            --object-store-mb) object_store_mb="$2"; shift 2 ;;
            --no-auth) auth=disabled; shift ;;
            -h|--help) usage; exit 0 ;;
            *) die "unknown option: $1 (see --help)" ;;
        esac
    done
    [[ "$workers" =~ ^[0-9]+$ ]] || die "--workers takes a number"
    command -v "$RAY" >/dev/null || die "ray not found ($RAY); run make setup or set RAY=..."

    # Short path: Ray puts unix sockets under the temp dir and those paths are length-limited.
    STATE="$(mktemp -d "${TMPDIR:-/tmp}/qd-ray.XXXXXX")"
    mkdir -p "$STATE/logs" "$STATE/ray"
    : >"$STATE/pids"
    # Interrupted or failed half-way: stop whatever was started, keep the logs.
    trap 'echo "local_cluster: interrupted; stopping what was started" >&2; KEEP_STATE=1 cmd_stop "$STATE"; exit 130' INT TERM

    # Isolate from the caller's Ray settings: an inherited RAY_ADDRESS would make the head try to
    # join another cluster, an inherited RAY_AUTH_TOKEN would override our token file.
    unset RAY_ADDRESS RAY_AUTH_TOKEN
    export RAY_AUTH_MODE="$auth"
    if [[ "$auth" == token ]]; then
        (umask 077; "$PYTHON" -c "import secrets; print(secrets.token_hex(32), end='')" >"$STATE/auth_token")
        export RAY_AUTH_TOKEN_PATH="$STATE/auth_token"
    else
        unset RAY_AUTH_TOKEN_PATH
    fi
    export RAY_USAGE_STATS_ENABLED=0
    # Job entrypoints (`python jobs/...`) run in a shell with the nodes' PATH: put the Python
    # that has ray and quasar_dist first.
    PATH="$(dirname "$(command -v "$RAY")"):$PATH"
    export PATH

    # Head: gcs, dashboard, client server, + 6 per-node ports. Each worker: 6 per-node ports.
    local n_ports=$((3 + 6 * (workers + 1)))
    local -a ports
    read -r -a ports <<<"$(free_ports "$n_ports")"
    local gcs_port="${ports[0]}" dash_port="${ports[1]}" client_port="${ports[2]}"
    ADDRESS="127.0.0.1:$gcs_port"
    local object_store_bytes=$((object_store_mb * 1024 * 1024))

    node_ports() {  # per-node ports for node index $1 (0 = head)
        local base=$((3 + 6 * $1))
        echo "--node-manager-port=${ports[base]} --object-manager-port=${ports[base + 1]}" \
             "--metrics-export-port=${ports[base + 2]} --dashboard-agent-listen-port=${ports[base + 3]}" \
             "--dashboard-agent-grpc-port=${ports[base + 4]} --runtime-env-agent-port=${ports[base + 5]}"
    }

    # shellcheck disable=SC2046  # node_ports is meant to split into separate flags
    launch head --head --node-ip-address=127.0.0.1 --port="$gcs_port" \
        --dashboard-host=127.0.0.1 --dashboard-port="$dash_port" --include-dashboard=true \
        --ray-client-server-port="$client_port" --num-cpus="$head_cpus" --num-gpus=0 \
        --object-store-memory="$object_store_bytes" --temp-dir="$STATE/ray" \
        --disable-usage-stats $(node_ports 0)
    if ! wait_for_port "$gcs_port" "$(awk '$1 == "head" {print $2}' "$STATE/pids")"; then
        tail -n 15 "$STATE/logs/head.out" >&2 || true
        KEEP_STATE=1 cmd_stop "$STATE"
        exit 1
    fi

    local i
    for ((i = 1; i <= workers; i++)); do
        # shellcheck disable=SC2046
        launch "worker$i" --address="$ADDRESS" --node-ip-address=127.0.0.1 \
            --num-cpus="$worker_cpus" --num-gpus=0 --object-store-memory="$object_store_bytes" \
            --temp-dir="$STATE/ray" --disable-usage-stats $(node_ports "$i")
    done

    {
        echo "# source this file to talk to the local quasar-dist Ray cluster in $STATE"
        echo "export RAY_ADDRESS=http://127.0.0.1:$dash_port"
        echo "export RAY_AUTH_MODE=$auth"
        if [[ "$auth" == token ]]; then
            echo "export RAY_AUTH_TOKEN_PATH=$STATE/auth_token"
            echo "unset RAY_AUTH_TOKEN"
        fi
    } >"$STATE/env.sh"
    echo "$ADDRESS" >"$STATE/address"
    for ((i = 0; i <= workers; i++)); do   # Prometheus targets, one per node
        echo "127.0.0.1:${ports[3 + 6 * i + 2]}"
    done >"$STATE/metrics_targets"
    echo "$dash_port" >"$STATE/dashboard_port"
    echo "$STATE" >"$CURRENT_FILE"

    if ! wait_for_nodes $((workers + 1)); then
        echo "local_cluster: nodes did not all join; stopping what was started (logs kept)" >&2
        local role pid
        while read -r role pid; do
            if ! kill -0 "$pid" 2>/dev/null; then
                echo "--- $role (pid $pid) exited early; last lines of $STATE/logs/$role.out:" >&2
                tail -n 15 "$STATE/logs/$role.out" >&2 || true
            fi
        done <"$STATE/pids"
        KEEP_STATE=1 cmd_stop "$STATE"
        exit 1
    fi

    trap - INT TERM
    cat <<EOF
Local Ray cluster up: 1 head ($head_cpus CPU) + $workers workers ($worker_cpus CPU each), auth: $auth
  Ray (GCS) address : $ADDRESS
  Dashboard / jobs  : http://127.0.0.1:$dash_port
  Metrics targets   : $(tr '\n' ' ' <"$STATE/metrics_targets")
  State, logs       : $STATE
Use it:
  source $STATE/env.sh
  ray job submit --working-dir . -- python jobs/batch_reason.py --config configs/runs/sample.yaml
  (or: quasar run --address $ADDRESS   with the same env)
Stop it (only these processes):
  $0 stop $STATE
EOF
}

cmd_status() {
    local state; state="$(resolve_state "${1:-}")"
    local role pid
    echo "state: $state"
    [[ -r "$state/address" ]] && echo "address: $(cat "$state/address")"
    while read -r role pid; do
        if pid_matches "$pid" "$state/ray"; then echo "  $role pid $pid running"
        else echo "  $role pid $pid not running"; fi
    done <"$state/pids"
}

cmd_stop() {
    local state; state="$(resolve_state "${1:-}")"
    local role pid
    local -a ours=()
    # Workers first, the head last (tac reverses the start order).
    while read -r role pid; do
        if pid_matches "$pid" "$state/ray"; then
            ours+=("$pid")
            kill -TERM "$pid" 2>/dev/null || true
            echo "stopping $role (pid $pid)"
        fi
    done < <(tac "$state/pids")
    # `ray start --block` tears its node down on SIGTERM; give it time, then SIGKILL what is left
    # of the node's process group (`ray start --block` makes itself its group's leader), but only
    # processes whose command line names this cluster's temp dir.
    local deadline=$((SECONDS + 30))
    for pid in "${ours[@]}"; do
        while kill -0 "$pid" 2>/dev/null && (( SECONDS < deadline )); do sleep 0.5; done
    done
    local member
    for pid in "${ours[@]}"; do
        for member in $(pgrep -g "$pid" 2>/dev/null || true); do
            if pid_matches "$member" "$state/ray"; then
                echo "killing leftover process $member (group $pid)"
                kill -KILL "$member" 2>/dev/null || true
            fi
        done
    done
    if [[ -r "$CURRENT_FILE" && "$(cat "$CURRENT_FILE")" == "$state" ]]; then
        rm -f "$CURRENT_FILE"
    fi
    if [[ "${KEEP_STATE:-0}" == 1 ]]; then
        echo "stopped; logs kept in $state"
    else
        rm -rf "$state"
        echo "stopped; removed $state (KEEP_STATE=1 keeps it)"
    fi
}

main() {
    local sub="${1:-}"
    [[ $# -gt 0 ]] && shift
    case "$sub" in
        start) cmd_start "$@" ;;
        stop) cmd_stop "$@" ;;
        status) cmd_status "$@" ;;
        -h|--help|help|"") usage ;;
        *) die "unknown command: $sub (start | status | stop)" ;;
    esac
}

main "$@"
