#!/usr/bin/env bash
# roost under real systemd: boot a minimal Debian 12 root under systemd-nspawn, install
# roost there from wheels built on this host, start systemd/roost.service with the
# simulated cloud running inside the container (it has a private network), and check:
# READY (Type=notify), `systemctl reload` (RELOADING=1 … READY=1, a new rule is live),
# the control socket, credentials (LoadCredential=), that the sandbox holds (the state
# directory writable, the rest read-only or hidden), a watchdog restart of a frozen
# daemon, and a clean stop. Recipe: ../shared/OPERATIONS.md 1.1.
#
# Needs root, systemd-nspawn and mmdebstrap (installed with apt-get when missing and
# apt-get is there). Elsewhere it prints why it cannot run and exits 0 (skipped), unless
# ROOST_NSPAWN_REQUIRED=1, when that is a failure. The Debian root is cached in
# $ROOST_NSPAWN_CACHE (default /var/tmp/roost-nspawn/base); each run boots a fresh copy.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/../.." && pwd)
CACHE=${ROOST_NSPAWN_CACHE:-/var/tmp/roost-nspawn}
SUITE=${ROOST_NSPAWN_SUITE:-bookworm}
PYTHON=${PYTHON:-$REPO/.venv/bin/python}

skip() {
    echo "nspawn test SKIPPED: $*"
    if [[ "${ROOST_NSPAWN_REQUIRED:-0}" == 1 ]]; then exit 1; fi
    exit 0
}
STEPS=0
step() { STEPS=$((STEPS + 1)); echo "== $(date +%T) $*"; }
fail() {
    echo "nspawn test FAILED: $*" >&2
    if [[ -n "${INIT:-}" ]]; then
        inside journalctl -u roost -u roost-sim --no-pager -n 80 >&2 || true
        inside systemctl status roost --no-pager >&2 || true
    fi
    exit 1
}

[[ $(id -u) == 0 ]] || skip "needs root (systemd-nspawn and mmdebstrap)"
[[ -x "$PYTHON" ]] || skip "no $PYTHON (run make test first)"
if ! command -v systemd-nspawn >/dev/null || ! command -v mmdebstrap >/dev/null; then
    command -v apt-get >/dev/null || skip "no systemd-nspawn/mmdebstrap and no apt-get"
    step "installing systemd-container and mmdebstrap"
    apt-get update -qq >/dev/null && apt-get install -y -qq systemd-container mmdebstrap >/dev/null \
        || skip "apt-get install systemd-container mmdebstrap failed"
fi
[[ -d /sys/fs/cgroup ]] || skip "no cgroup file system"

WORK=$(mktemp -d /var/tmp/roost-nspawn-run.XXXXXX)
ROOT=$WORK/root
NSPAWN_PID=""
INIT=""
cleanup() {
    if [[ -n "$NSPAWN_PID" ]] && kill -0 "$NSPAWN_PID" 2>/dev/null; then
        kill -TERM "$NSPAWN_PID" 2>/dev/null || true   # nspawn powers the container off
        for _ in $(seq 1 100); do kill -0 "$NSPAWN_PID" 2>/dev/null || break; sleep 0.2; done
        kill -KILL "$NSPAWN_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

# ---- the Debian root (cached) and roost's wheels ----------------------------------------
if [[ ! -x "$CACHE/base/usr/bin/python3" ]]; then
    step "building a minimal $SUITE root with mmdebstrap (about 30 s)"
    rm -rf "$CACHE/base.new" && mkdir -p "$CACHE"
    mmdebstrap --variant=minbase --include=systemd,systemd-sysv,dbus,python3,python3-venv,procps,iproute2 \
        "$SUITE" "$CACHE/base.new" >"$WORK/mmdebstrap.log" 2>&1 \
        || { tail -20 "$WORK/mmdebstrap.log"; skip "mmdebstrap failed (no Debian mirror?)"; }
    mv "$CACHE/base.new" "$CACHE/base"
fi
step "copying the root"
cp -a --reflink=auto "$CACHE/base" "$ROOT"

step "building roost's wheel and downloading its dependencies on the host"
mkdir -p "$ROOT/opt/roost-wheels"
"$PYTHON" -m pip wheel --quiet --no-deps -w "$ROOT/opt/roost-wheels" "$REPO" >"$WORK/pip.log" 2>&1 \
    || { cat "$WORK/pip.log"; fail "building the wheel failed"; }
"$PYTHON" -m pip download --quiet -d "$ROOT/opt/roost-wheels" "$ROOT"/opt/roost-wheels/roost-*.whl \
    >"$WORK/pip.log" 2>&1 || { cat "$WORK/pip.log"; fail "pip download of roost's dependencies failed"; }

# ---- what the container holds ------------------------------------------------------------
install -d -m 0755 "$ROOT/etc/roost" "$ROOT/etc/roost/rules" "$ROOT/opt/roost-test"
install -d -m 0700 "$ROOT/etc/roost/credentials"
install -m 0644 "$REPO/systemd/roost.service" "$ROOT/etc/systemd/system/roost.service"
install -m 0644 "$REPO/tests/systemd/sim.py" "$ROOT/opt/roost-test/sim.py"
install -m 0644 "$REPO/rules/away_eco.py" "$ROOT/etc/roost/rules/away_eco.py"
echo "c.nspawn-test-token" >"$ROOT/etc/roost/credentials/nest_home_token"
echo "json://127.0.0.1:18081/notify" >"$ROOT/etc/roost/credentials/apprise_urls"
chmod 0600 "$ROOT"/etc/roost/credentials/*

cat >"$ROOT/etc/roost/roost.toml" <<'EOF'
[daemon]
rules_dir = "/etc/roost/rules"
state_dir = "/var/lib/roost"
control_socket = "/run/roost/control.sock"
drain_timeout_s = 5
# roost stops a rule that blocks the loop after 0.5 s; the freezer below must really freeze
# it, to show that systemd's watchdog restarts a daemon that stops answering.
rule_block_budget_s = 10   # the most it allows; systemd's watchdog (6 s) fires first

[log]
format = "json"

[[accounts]]
name = "home"
provider = "nest_wwn"
api_url = "http://127.0.0.1:18080"
token_credential = "nest_home_token"
keepalive_timeout_s = 15

[notify]
urls_credential = "apprise_urls"
EOF

# The test's drop-in: the credentials, a short watchdog and restart delay.
install -d "$ROOT/etc/systemd/system/roost.service.d"
cat >"$ROOT/etc/systemd/system/roost.service.d/test.conf" <<'EOF'
[Unit]
After=roost-sim.service
Wants=roost-sim.service

[Service]
LoadCredential=nest_home_token:/etc/roost/credentials/nest_home_token
LoadCredential=apprise_urls:/etc/roost/credentials/apprise_urls
WatchdogSec=6s
RestartSec=1s
EOF

cat >"$ROOT/etc/systemd/system/roost-sim.service" <<'EOF'
[Unit]
Description=the simulated Nest cloud and push sink for the roost test

[Service]
Type=notify
ExecStart=/opt/roost/venv/bin/python /opt/roost-test/sim.py
EOF

# A rule that reports what the sandbox lets it do, and one that can freeze the event loop.
cat >"$ROOT/etc/roost/rules/sandbox_probe.py" <<'EOF'
import json
from pathlib import Path

from roost import rule, startup


def attempt(path):
    try:
        Path(path).write_text("x")
        Path(path).unlink()
        return "writable"
    except OSError as exc:
        return exc.__class__.__name__ + ":" + str(exc.errno)


@rule(on=startup())
async def sandbox_probe(event, home):
    found = {p: attempt(p) for p in (
        "/var/lib/roost/probe", "/etc/roost/probe", "/opt/roost/probe", "/usr/probe",
        "/root/probe", "/home/probe", "/tmp/probe",
    )}
    found["credentials_source"] = attempt("/etc/roost/credentials/nest_home_token")
    print("SANDBOX " + json.dumps(found), flush=True)
EOF
cat >"$ROOT/etc/roost/rules/freeze.py" <<'EOF'
import time
from pathlib import Path

from roost import every, rule


@rule(on=every("1s"))
async def freezer(event, home):
    if Path("/etc/roost/freeze-now").exists():
        while True:  # never awaits: the event loop stops, so do the watchdog pings
            time.sleep(0.1)
EOF

step "installing roost into /opt/roost/venv inside the root (offline)"
systemd-nspawn --quiet --register=no --keep-unit -D "$ROOT" --private-network /bin/sh -c \
    'python3 -m venv /opt/roost/venv && /opt/roost/venv/bin/pip install --quiet --no-index \
     --find-links /opt/roost-wheels roost && systemctl enable roost-sim.service >/dev/null 2>&1' \
    >"$WORK/install.log" 2>&1 || { cat "$WORK/install.log"; fail "installing roost inside failed"; }

# ---- boot ------------------------------------------------------------------------------
step "booting the container"
systemd-nspawn --register=no --keep-unit -D "$ROOT" --private-network -b --console=pipe \
    >"$WORK/console.log" 2>&1 </dev/null &
NSPAWN_PID=$!
ns_pid() { readlink "/proc/$1/ns/pid" 2>/dev/null || true; }
config_id=$(stat -L -c %d:%i "$ROOT/etc/roost/roost.toml")
for _ in $(seq 1 150); do
    for pid in $(pgrep -x systemd || true); do
        # the container's init: another pid namespace, and our root's files as its root
        if [[ $(ns_pid "$pid") != $(ns_pid $$) && \
              $(stat -L -c %d:%i "/proc/$pid/root/etc/roost/roost.toml" 2>/dev/null) == "$config_id" ]]; then
            INIT=$pid
        fi
    done
    [[ -n "$INIT" ]] && break
    kill -0 "$NSPAWN_PID" 2>/dev/null || { cat "$WORK/console.log"; fail "systemd-nspawn exited"; }
    sleep 0.2
done
[[ -n "$INIT" ]] || { tail -30 "$WORK/console.log"; fail "no init process in the container"; }
inside() { nsenter -t "$INIT" -m -u -i -n -p -- "$@"; }
roost() { inside /opt/roost/venv/bin/roost "$@"; }

state=""
for _ in $(seq 1 120); do
    state=$(inside systemctl is-system-running 2>/dev/null || true)
    [[ "$state" == running || "$state" == degraded ]] && break
    sleep 0.5
done
step "container is $state (init pid $INIT)"
[[ "$state" == running || "$state" == degraded ]] || fail "the container did not finish booting"

show() { inside systemctl show roost -p "$1" --value; }
wait_until() {  # wait_until SECONDS COMMAND...
    local limit=$1; shift
    for _ in $(seq 1 $((limit * 5))); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done
    return 1
}

# ---- start: READY, credentials, the sandbox -------------------------------------------------
step "systemctl start roost"
inside systemctl start roost || fail "systemctl start roost failed"
[[ $(show ActiveState) == active && $(show SubState) == running ]] || fail "roost is not running"
status_text=$(show StatusText)
echo "   StatusText: $status_text"
[[ "$status_text" == *"1/1 accounts connected"* ]] || fail "READY came without the account connected"
started_us=$(show ExecMainStartTimestampMonotonic)
ready_us=$(show ActiveEnterTimestampMonotonic)
echo "   exec → READY: $(( (ready_us - started_us) / 1000 )) ms"

creds=$(inside sh -c 'ls -ld /run/credentials/roost.service | cut -c1-10')
[[ "$creds" == "dr-x------" ]] || fail "credentials directory is $creds"

wait_until 10 inside sh -c 'journalctl -u roost -o cat | grep -q "^SANDBOX "' || fail "no sandbox report"
probe=$(inside sh -c 'journalctl -u roost -o cat | grep "^SANDBOX " | tail -1')
echo "   $probe"
"$PYTHON" - "$probe" <<'EOF' || fail "the sandbox does not hold"
import json, sys
found = json.loads(sys.argv[1].removeprefix("SANDBOX "))
assert found.pop("/var/lib/roost/probe") == "writable", "the state directory must be writable"
assert found.pop("/tmp/probe") == "writable", "PrivateTmp is a writable, private /tmp"
for path, result in found.items():
    assert result != "writable", f"{path} is writable"
print("   sandbox holds: state dir and private /tmp writable; " + ", ".join(
    f"{p} {r.split(':')[0]}" for p, r in found.items()))
EOF
owner=$(inside stat -c '%U %a' /var/lib/private/roost)
echo "   state directory: /var/lib/private/roost owned by $owner"
[[ "$owner" == *" 700" && "$owner" != root* ]] || fail "the state directory is $owner"

# ---- the control socket, notifications through the credential URL ------------------------------
roost status >/dev/null || fail "roost status over the control socket failed"
roost notify-test >"$WORK/notify.txt" 2>&1 || { cat "$WORK/notify.txt"; fail "notify-test failed"; }
sed 's/^/   /' "$WORK/notify.txt"
wait_until 10 inside grep -q "roost: test notification" /var/lib/roost-sim/received.jsonl \
    || fail "the test push did not reach the sink"

# ---- reload -----------------------------------------------------------------------------
step "systemctl reload roost (a new rule)"
cat >"$ROOT/etc/roost/rules/porch.py" <<'EOF'
from roost import rule, when


@rule(on=when("motion"))
async def porch_light(event, home):
    await home.notify("motion")
EOF
inside systemctl reload roost || fail "systemctl reload failed"
roost status --json | grep -q '"porch_light"' || fail "the reloaded rule is not running"
inside sh -c 'journalctl -u roost -o cat | grep -q "\"event\": \"reloaded\""' \
    || fail "no reload in the journal"
[[ $(show SubState) == running ]] || fail "not running after the reload"
echo "   reloaded: porch_light is running; StatusText: $(show StatusText)"

# ---- the watchdog --------------------------------------------------------------------------
step "freezing the event loop; the watchdog (6 s) must restart roost"
restarts_before=$(show NRestarts)
inside touch /etc/roost/freeze-now
wait_until 20 inside sh -c 'journalctl -u roost --no-pager | grep -q "Watchdog timeout"' \
    || fail "no watchdog timeout"
inside rm -f /etc/roost/freeze-now
wait_until 30 sh -c "[ \$(nsenter -t $INIT -m -u -i -n -p -- systemctl show roost -p NRestarts --value) -gt $restarts_before ] \
    && [ \$(nsenter -t $INIT -m -u -i -n -p -- systemctl show roost -p SubState --value) = running ]" \
    || fail "roost was not restarted after the watchdog"
inside sh -c 'journalctl -u roost --no-pager | grep -E "Watchdog timeout|Killing process|Failed with result|Scheduled restart" | tail -4' | sed 's/^/   /'
[[ $(show StatusText) == *"1/1 accounts connected"* ]] || fail "not ready after the restart"

# ---- stop ----------------------------------------------------------------------------------
step "systemctl stop roost"
inside systemctl stop roost
result=$(show Result)
code=$(show ExecMainStatus)
echo "   Result=$result ExecMainStatus=$code"
[[ "$result" == success && "$code" == 0 ]] || fail "roost did not stop cleanly"
inside sh -c 'journalctl -u roost -o cat | grep -q "\"event\": \"drained\""' || fail "no drain logged"

score=$(inside systemd-analyze security roost.service 2>/dev/null | grep "Overall exposure" || true)
echo "   online: $score"
echo "nspawn test PASSED ($STEPS steps)"
