#!/usr/bin/env bash
# Prometheus and Grafana for a running `fak serve`: Prometheus scrapes its /metrics every
# 5 s, and Grafana shows tools/grafana/dashboards/fak.json at http://127.0.0.1:3000/d/fak.
#
#   tools/grafana/up.sh [--target HOST:PORT] [--docker | --local]
#   tools/grafana/up.sh --down
#
#   --target HOST:PORT  the address `fak serve` listens on (default: $FAK_METRICS_TARGET,
#                       else 127.0.0.1:8080)
#   --docker            run both with docker compose (the default when it works)
#   --local             run the local `prometheus` and `grafana server` (or `grafana-server`)
#                       binaries (the default when docker compose does not work)
#   --down              stop what the last run started
#
# Prometheus listens on 127.0.0.1:9090 and Grafana on 127.0.0.1:3000; Grafana lets you in as
# an admin without a login. Generated configuration, data and logs live in the state directory,
# $FAK_GRAFANA_STATE (default: ${XDG_STATE_HOME:-~/.local/state}/fak-grafana). A local Grafana
# is looked for in $GRAFANA_HOME, /usr/share/grafana, or beside its binary.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
state=${FAK_GRAFANA_STATE:-${XDG_STATE_HOME:-$HOME/.local/state}/fak-grafana}
target=${FAK_METRICS_TARGET:-127.0.0.1:8080}
mode=auto
down=0
project=fak-grafana
prom_port=9090
grafana_port=3000

die() {
    echo "up.sh: $*" >&2
    exit 1
}

usage() {
    sed -n '2,/^set -euo pipefail$/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'
}

while [[ $# -gt 0 ]]; do
    case $1 in
        --target)
            [[ $# -ge 2 ]] || die "--target needs HOST:PORT"
            target=$2
            shift 2
            ;;
        --target=*)
            target=${1#--target=}
            shift
            ;;
        --docker | --local)
            mode=${1#--}
            shift
            ;;
        --down)
            down=1
            shift
            ;;
        -h | --help)
            usage
            exit 0
            ;;
        *) die "unknown argument: $1 (see --help)" ;;
    esac
done

# `fak serve` prints `listening on http://HOST:PORT`: take that as it is.
target=${target#http://}
target=${target%/}
if ! [[ $target =~ ^[A-Za-z0-9._-]+:[0-9]+$ || $target =~ ^\[[0-9A-Fa-f:.]+\]:[0-9]+$ ]]; then
    die "the target must be HOST:PORT (like 127.0.0.1:8080), not: $target"
fi

# docker compose works when a compose command exists and a daemon answers.
compose=()
if docker compose version >/dev/null 2>&1; then
    compose=(docker compose)
elif command -v docker-compose >/dev/null 2>&1; then
    compose=(docker-compose)
fi
docker_problem=""
if ! command -v docker >/dev/null 2>&1; then
    docker_problem="docker is not installed"
elif [[ ${#compose[@]} -eq 0 ]]; then
    docker_problem="docker has no compose (neither \`docker compose\` nor \`docker-compose\`)"
elif ! { if command -v timeout >/dev/null; then timeout 15 docker info; else docker info; fi; } >/dev/null 2>&1; then
    docker_problem="no docker daemon answers (\`docker info\` failed)"
fi

# The local binaries. Grafana's packages put theirs in /usr/sbin, often not on PATH.
prometheus_bin=$(command -v prometheus || true)
grafana_bin=""
for candidate in "${GRAFANA_BIN:-}" "$(command -v grafana || true)" /usr/sbin/grafana \
    "$(command -v grafana-server || true)" /usr/sbin/grafana-server; do
    if [[ -n $candidate && -x $candidate ]]; then
        grafana_bin=$candidate
        break
    fi
done
local_problem=""
if [[ -z $prometheus_bin ]]; then
    local_problem="no \`prometheus\` on PATH (Debian and Ubuntu: apt-get install prometheus)"
fi
if [[ -z $grafana_bin ]]; then
    local_problem="${local_problem:+$local_problem; }no \`grafana\` or \`grafana-server\` (install Grafana from Grafana's own packages, or set GRAFANA_BIN)"
fi

# Whether something answers on 127.0.0.1:PORT.
listening() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# The pid in a pid file, when that process is still the one this script started (its command
# line names the state directory).
our_pid() {
    local file=$1 pid
    [[ -r $file ]] || return 1
    pid=$(<"$file")
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    ps -o args= -p "$pid" 2>/dev/null | grep -qF -- "$state" || return 1
    echo "$pid"
}

stop_local() {
    local name pid
    for name in grafana prometheus; do
        if pid=$(our_pid "$state/$name.pid"); then
            kill "$pid"
            for _ in $(seq 50); do
                kill -0 "$pid" 2>/dev/null || break
                sleep 0.2
            done
            echo "stopped $name (pid $pid)"
        fi
        rm -f "$state/$name.pid"
    done
}

if [[ $down -eq 1 ]]; then
    last=$(cat "$state/mode" 2>/dev/null || true)
    case $last in
        docker)
            [[ -z $docker_problem ]] || die "the last run used docker compose, but $docker_problem"
            "${compose[@]}" -p "$project" -f "$here/docker-compose.yml" down
            ;;
        local) stop_local ;;
        *) echo "up.sh: nothing to stop (no run recorded in $state)" ;;
    esac
    rm -f "$state/mode"
    exit 0
fi

if [[ $mode == auto ]]; then
    if [[ -z $docker_problem ]]; then
        mode=docker
    elif [[ -z $local_problem ]]; then
        mode=local
    else
        die "cannot start Prometheus and Grafana: docker compose does not work ($docker_problem), and the local binaries are missing ($local_problem)"
    fi
fi
if [[ $mode == docker && -n $docker_problem ]]; then
    die "--docker: $docker_problem"
fi
if [[ $mode == local && -n $local_problem ]]; then
    die "--local: $local_problem"
fi

# Escapes text for the replacement side of a sed `s|...|...|`.
sed_escape() {
    printf '%s' "$1" | sed -e 's/[\\&|]/\\&/g'
}

mkdir -p "$state"
# Prometheus does not expand variables in its targets: the file gets the target written in.
sed "s|'127.0.0.1:8080'|'$(sed_escape "$target")'|" "$here/prometheus.yml" >"$state/prometheus.yml"
grep -qF "'$target'" "$state/prometheus.yml" || die "could not write the target into $state/prometheus.yml"
chmod 644 "$state/prometheus.yml"

# Waits until http://127.0.0.1:PORT/PATH answers, or the process in PIDFILE exits: then
# shows its log.
wait_for() {
    local what=$1 port=$2 path=$3 pidfile=$4 log=$5 pid
    pid=$(<"$pidfile")
    for _ in $(seq 120); do
        if command -v curl >/dev/null; then
            curl -fsS -o /dev/null "http://127.0.0.1:$port$path" 2>/dev/null && return 0
        else
            listening "$port" && return 0
        fi
        if ! kill -0 "$pid" 2>/dev/null; then
            tail -n 20 "$log" >&2 || true
            die "$what exited (its log: $log)"
        fi
        sleep 0.5
    done
    die "$what did not answer on 127.0.0.1:$port within 60 s (its log: $log)"
}

if [[ $mode == docker ]]; then
    export FAK_PROMETHEUS_CONFIG="$state/prometheus.yml"
    "${compose[@]}" -p "$project" -f "$here/docker-compose.yml" up -d
    # A Prometheus already running reads the rewritten file (the same one, mounted) on SIGHUP.
    "${compose[@]}" -p "$project" -f "$here/docker-compose.yml" kill -s SIGHUP prometheus >/dev/null
    echo docker >"$state/mode"
else
    # A run before this one is replaced (with the target given now).
    stop_local
    for port in $prom_port $grafana_port; do
        if listening "$port"; then
            die "something already listens on 127.0.0.1:$port (a Prometheus or Grafana started otherwise?); stop it first"
        fi
    done

    grafana_home=""
    for candidate in "${GRAFANA_HOME:-}" /usr/share/grafana "$(dirname "$(dirname "$grafana_bin")")" \
        "$(dirname "$(dirname "$grafana_bin")")/share/grafana"; do
        if [[ -n $candidate && -f $candidate/conf/defaults.ini ]]; then
            grafana_home=$candidate
            break
        fi
    done
    [[ -n $grafana_home ]] || die "cannot find Grafana's home (conf/defaults.ini) for $grafana_bin: set GRAFANA_HOME"

    # Grafana's provisioning, with the dashboards directory's own path in place of the
    # container's.
    mkdir -p "$state/provisioning/datasources" "$state/provisioning/dashboards" "$state/grafana"
    cp "$here/provisioning/datasources/prometheus.yml" "$state/provisioning/datasources/"
    sed "s|path: /etc/grafana/dashboards|path: $(sed_escape "$here/dashboards")|" \
        "$here/provisioning/dashboards/fak.yml" >"$state/provisioning/dashboards/fak.yml"
    grep -qF "path: $here/dashboards" "$state/provisioning/dashboards/fak.yml" ||
        die "could not write the dashboards path into $state/provisioning/dashboards/fak.yml"
    cat >"$state/grafana.ini" <<EOF
[server]
http_addr = 127.0.0.1
http_port = $grafana_port

[paths]
data = $state/grafana
logs = $state/grafana/log
plugins = $state/grafana/plugins
provisioning = $state/provisioning

[auth]
disable_login_form = true

[auth.anonymous]
enabled = true
org_role = Admin

[analytics]
reporting_enabled = false
check_for_updates = false

[dashboards]
default_home_dashboard_path = $here/dashboards/fak.json
EOF

    nohup "$prometheus_bin" \
        --config.file="$state/prometheus.yml" \
        --storage.tsdb.path="$state/prometheus-data" \
        --storage.tsdb.retention.time=15d \
        --web.listen-address="127.0.0.1:$prom_port" \
        >"$state/prometheus.log" 2>&1 </dev/null &
    echo $! >"$state/prometheus.pid"

    grafana_args=(--homepath "$grafana_home" --config "$state/grafana.ini")
    if [[ $(basename "$grafana_bin") == grafana ]]; then
        grafana_args=(server "${grafana_args[@]}")
    fi
    (cd "$grafana_home" && exec nohup "$grafana_bin" "${grafana_args[@]}" >"$state/grafana.log" 2>&1 </dev/null) &
    echo $! >"$state/grafana.pid"
    echo local >"$state/mode"

    wait_for Prometheus "$prom_port" /-/ready "$state/prometheus.pid" "$state/prometheus.log"
    wait_for Grafana "$grafana_port" /api/health "$state/grafana.pid" "$state/grafana.log"
fi

echo "Prometheus: http://127.0.0.1:$prom_port (scraping http://$target/metrics every 5 s; targets: http://127.0.0.1:$prom_port/targets)"
echo "Grafana:    http://127.0.0.1:$grafana_port/d/fak"
echo "Stop them:  $0 --down"
