# shellcheck shell=bash
# Bring up the servers the integration tests use. Sourced by .ci/run; it can also be run on its
# own (`bash .ci/services.sh`), which leaves the stand-ins running and prints their URLs.
#
# 1. Shared servers on standard ports: PostgreSQL 5432, Redis 6379, RabbitMQ 5672, MariaDB 3306.
#    A missing package is installed with apt-get (apt-get update only then); a server that is
#    down is started with its standard command. Running servers are never restarted.
#    A headless browser for the HTML report test: Debian's chromium (with a font), installed the
#    same way, in its own apt-get call so that a repository without it fails only that test.
# 2. Stand-ins on free ports, unless their URL is already set: noida-db (Elasticsearch REST)
#    and SecantusDB (MongoDB wire protocol), pip-installed when missing. Exports
#    UUID_FORGE_TEST_ELASTICSEARCH_URL and UUID_FORGE_TEST_MONGODB_URL, and UF_STANDIN_PIDS;
#    call uf_stop_standins to stop them (.ci/run does it in its EXIT trap).
#
# With CI=true any server that cannot be brought up fails the script (non-zero). Without it a
# warning is printed and the tests that need that server skip with the reason.

UF_HOST=127.0.0.1
UF_STANDIN_PIDS="${UF_STANDIN_PIDS:-}"
UF_STANDIN_DIRS="${UF_STANDIN_DIRS:-}"
_uf_failed=""

_uf_log() { printf '[services] %s\n' "$*" >&2; }

_uf_problem() {
    _uf_failed="${_uf_failed}${_uf_failed:+; }$1"
    if [[ "${CI:-}" == "true" ]]; then
        _uf_log "ERROR: $1"
    else
        _uf_log "WARNING: $1 (tests needing it will skip)"
    fi
}

_uf_port_open() { (exec 3<>"/dev/tcp/$UF_HOST/$1") 2>/dev/null; }

# _uf_wait SECONDS COMMAND...: retry COMMAND every 0.5 s until it succeeds or time runs out
_uf_wait() {
    local deadline=$((SECONDS + $1)); shift
    until "$@" >/dev/null 2>&1; do
        ((SECONDS < deadline)) || return 1
        sleep 0.5
    done
}

_uf_free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

_uf_http_ok() {
    python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' "$1"
}

# ------------------------------------------------------------------ packages

_uf_apt_updated=""
_uf_apt_install() {
    _uf_log "installing with apt-get: $*"
    if [[ -z "$_uf_apt_updated" ]]; then
        DEBIAN_FRONTEND=noninteractive apt-get update -qq || return 1
        _uf_apt_updated=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" </dev/null
}

_uf_pg_version() { find /etc/postgresql -mindepth 1 -maxdepth 1 -printf '%f\n' 2>/dev/null | sort -V | tail -n 1; }

_uf_ensure_packages() {
    local missing=()
    command -v pg_ctlcluster >/dev/null && [[ -n "$(_uf_pg_version)" ]] || missing+=(postgresql postgresql-contrib)
    command -v redis-server >/dev/null || missing+=(redis-server)
    [[ -x /usr/sbin/rabbitmq-server ]] || missing+=(rabbitmq-server)
    [[ -x /usr/sbin/mariadbd ]] || missing+=(mariadb-server)
    ((${#missing[@]} == 0)) && return 0
    if ! _uf_apt_install "${missing[@]}"; then
        _uf_problem "apt-get install ${missing[*]} failed"
        return 0
    fi
    # fresh installs: match the machine's setup (trust auth, root without password, db test)
    if [[ " ${missing[*]} " == *" postgresql "* ]]; then
        local hba
        hba="/etc/postgresql/$(_uf_pg_version)/main/pg_hba.conf"
        if [[ -f "$hba" ]]; then
            printf 'local all all trust\nhost all all 127.0.0.1/32 trust\nhost all all ::1/128 trust\n' >"$hba"
        fi
        _UF_PG_FRESH=1
    fi
    if [[ " ${missing[*]} " == *" mariadb-server "* ]]; then
        _UF_MARIADB_FRESH=1
    fi
}

_uf_ensure_browser() {
    { command -v chromium || command -v chromium-browser; } >/dev/null && return 0
    if ! _uf_apt_install chromium fonts-dejavu-core; then
        _uf_problem "apt-get install chromium failed (headless browser for the HTML report test)"
        return 0
    fi
    command -v chromium >/dev/null || _uf_problem "chromium installed but not on PATH"
}

# ------------------------------------------------------------------ shared servers

_uf_postgres_up() { _uf_port_open 5432 && { ! command -v pg_isready >/dev/null || pg_isready -q -h "$UF_HOST" -p 5432; }; }
_uf_redis_up() { _uf_port_open 6379 && { ! command -v redis-cli >/dev/null || [[ "$(redis-cli -h "$UF_HOST" -p 6379 ping 2>/dev/null)" == PONG ]]; }; }
_uf_rabbit_up() { _uf_port_open 5672; }
_uf_mariadb_up() { _uf_port_open 3306; }

_uf_start_postgres() {
    local v
    v="$(_uf_pg_version)"
    if [[ -n "${_UF_PG_FRESH:-}" ]]; then
        pg_ctlcluster --skip-systemctl-redirect "$v" main restart || true
    else
        pg_ctlcluster --skip-systemctl-redirect "$v" main start
    fi
}
_uf_start_redis() { redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no; }
_uf_start_rabbit() { rabbitmq-server -detached; }
_uf_start_mariadb() {
    install -d -o mysql -g mysql /run/mysqld 2>/dev/null || true
    start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd
}

# _uf_service NAME PORT WAIT_SECONDS: start NAME if down, then wait until it answers
_uf_service() {
    local name=$1 port=$2 wait=$3
    if "_uf_${name}_up"; then
        _uf_log "$name is up on $port"
        return 0
    fi
    _uf_log "$name is down on $port: starting it"
    "_uf_start_${name}" </dev/null >/dev/null 2>&1 || _uf_log "$name: start command returned non-zero"
    if _uf_wait "$wait" "_uf_${name}_up"; then
        _uf_log "$name is up on $port"
    else
        _uf_problem "$name did not come up on $UF_HOST:$port within ${wait}s"
    fi
}

_uf_prepare_databases() {
    # idempotent: the tests use the database "test" on both SQL servers
    if _uf_postgres_up && command -v psql >/dev/null; then
        if [[ "$(psql -h "$UF_HOST" -U postgres -d postgres -Atc "select 1 from pg_database where datname = 'test'" 2>/dev/null)" != 1 ]]; then
            psql -h "$UF_HOST" -U postgres -d postgres -qc 'create database test' >/dev/null 2>&1 \
                || _uf_problem "PostgreSQL: cannot create database test (user postgres, trust auth expected)"
        fi
    fi
    if _uf_mariadb_up && command -v mariadb >/dev/null; then
        if [[ -n "${_UF_MARIADB_FRESH:-}" ]]; then
            # Debian's root uses unix_socket; the tests log in over TCP with no password
            mariadb -uroot -e "CREATE USER IF NOT EXISTS 'root'@'127.0.0.1' IDENTIFIED BY '';
                GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION;
                FLUSH PRIVILEGES;" >/dev/null 2>&1 || true
        fi
        mariadb -h "$UF_HOST" -P 3306 -uroot -e 'CREATE DATABASE IF NOT EXISTS test' >/dev/null 2>&1 \
            || _uf_problem "MariaDB: root without password cannot log in on $UF_HOST:3306 or create database test"
    fi
}

# ------------------------------------------------------------------ stand-ins

uf_stop_standins() {
    local pid dir
    for pid in $UF_STANDIN_PIDS; do
        kill -TERM "$pid" 2>/dev/null || continue
    done
    for pid in $UF_STANDIN_PIDS; do
        for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
        kill -KILL "$pid" 2>/dev/null || true
    done
    for dir in $UF_STANDIN_DIRS; do rm -rf "$dir"; done
    UF_STANDIN_PIDS=""
    UF_STANDIN_DIRS=""
}

_uf_pip_ensure() { # _uf_pip_ensure COMMAND PACKAGE
    command -v "$1" >/dev/null && return 0
    _uf_log "pip install $2"
    python3 -m pip install -q --disable-pip-version-check "$2" >/dev/null 2>&1 || true
    hash -r
    command -v "$1" >/dev/null
}

_uf_start_elasticsearch_standin() {
    if [[ -n "${UUID_FORGE_TEST_ELASTICSEARCH_URL:-}" ]]; then
        _uf_log "Elasticsearch: using UUID_FORGE_TEST_ELASTICSEARCH_URL=$UUID_FORGE_TEST_ELASTICSEARCH_URL"
        return 0
    fi
    if ! _uf_pip_ensure noida-db noida-db; then
        _uf_problem "pip install noida-db failed (Elasticsearch stand-in)"
        return 0
    fi
    # run the packaged binary itself: the noida-db script is a wrapper that does not pass
    # SIGTERM on to it
    local bin dir port pid
    bin="$(python3 -c 'from importlib.resources import files; print(files("noida_db").joinpath("noida-db"))' 2>/dev/null || true)"
    if [[ -f "$bin" ]]; then chmod 755 "$bin"; else bin="$(command -v noida-db)"; fi
    dir="$(mktemp -d "${TMPDIR:-/tmp}/uf-es.XXXXXX")"
    port="$(_uf_free_port)"
    "$bin" start --only elasticsearch --host "$UF_HOST" --elasticsearch-port "$port" \
        --data-dir "$dir/data" </dev/null >"$dir/noida-db.log" 2>&1 &
    pid=$!
    UF_STANDIN_PIDS="$UF_STANDIN_PIDS $pid"
    UF_STANDIN_DIRS="$UF_STANDIN_DIRS $dir"
    if _uf_wait 60 _uf_http_ok "http://$UF_HOST:$port/"; then
        export UUID_FORGE_TEST_ELASTICSEARCH_URL="elasticsearch+http://$UF_HOST:$port"
        _uf_log "Elasticsearch stand-in (noida-db, pid $pid): $UUID_FORGE_TEST_ELASTICSEARCH_URL"
    else
        tail -n 20 "$dir/noida-db.log" >&2 || true
        _uf_problem "Elasticsearch stand-in did not answer on $UF_HOST:$port within 60s"
    fi
}

_uf_start_mongodb_standin() {
    if [[ -n "${UUID_FORGE_TEST_MONGODB_URL:-}" ]]; then
        _uf_log "MongoDB: using UUID_FORGE_TEST_MONGODB_URL=$UUID_FORGE_TEST_MONGODB_URL"
        return 0
    fi
    if ! _uf_pip_ensure secantusd-py secantusdb; then
        _uf_problem "pip install secantusdb failed (MongoDB stand-in)"
        return 0
    fi
    local dir port pid
    dir="$(mktemp -d "${TMPDIR:-/tmp}/uf-mongo.XXXXXX")"
    port="$(_uf_free_port)"
    secantusd-py --host "$UF_HOST" --port "$port" --storage-path :memory: \
        </dev/null >"$dir/secantusd.log" 2>&1 &
    pid=$!
    UF_STANDIN_PIDS="$UF_STANDIN_PIDS $pid"
    UF_STANDIN_DIRS="$UF_STANDIN_DIRS $dir"
    if _uf_wait 60 _uf_port_open "$port"; then
        export UUID_FORGE_TEST_MONGODB_URL="mongodb://$UF_HOST:$port/uuid_forge_test"
        _uf_log "MongoDB stand-in (SecantusDB, pid $pid): $UUID_FORGE_TEST_MONGODB_URL"
    else
        tail -n 20 "$dir/secantusd.log" >&2 || true
        _uf_problem "MongoDB stand-in did not open $UF_HOST:$port within 60s"
    fi
}

# ------------------------------------------------------------------ main

uf_services_up() {
    _uf_failed=""
    _uf_ensure_packages
    _uf_ensure_browser
    _uf_service postgres 5432 30
    _uf_service redis 6379 15
    _uf_service rabbit 5672 90
    _uf_service mariadb 3306 30
    _uf_prepare_databases
    _uf_start_elasticsearch_standin
    _uf_start_mongodb_standin
    export UF_STANDIN_PIDS UF_STANDIN_DIRS
    if [[ -n "$_uf_failed" && "${CI:-}" == "true" ]]; then
        _uf_log "FAILED under CI=true: $_uf_failed"
        uf_stop_standins
        return 1
    fi
    return 0
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
    # run as a script: bring everything up, leave the stand-ins running, print how to use them
    set -uo pipefail
    uf_services_up || exit 1
    echo "export UUID_FORGE_TEST_ELASTICSEARCH_URL='${UUID_FORGE_TEST_ELASTICSEARCH_URL:-}'"
    echo "export UUID_FORGE_TEST_MONGODB_URL='${UUID_FORGE_TEST_MONGODB_URL:-}'"
    echo "# stand-in pids (kill them when done):${UF_STANDIN_PIDS}"
else
    uf_services_up
fi
