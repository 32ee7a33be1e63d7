#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# Real servers from Debian's packages behind a holder, started and restarted with
# the one command of README's "Restarting a service without dropping connections":
# lighttpd (--ready pidfile:PATH, stopped with INT) and gunicorn (--ready notify,
# stopped with TERM). 20 restarts under an HTTP client loop leave no request
# refused, reset or unanswered, and no descriptor behind in the holder; a broken
# new version is rolled back (exit 5) while the old instance goes on serving.
# Each test is skipped when its server is not installed (Debian: apt-get install
# lighttpd gunicorn; `make test-deps` does).

load test_helper

# The instances outlive the fdrecv that started them and are nobody's child
# here: teardown stops every one still running, by pid.
eval "helper_$(declare -f teardown)"
teardown() {
	stop_instances
	helper_teardown
}

# need NAME: BIN is the server's path (lighttpd lives in /usr/sbin, off some
# users' PATH), or the test is skipped.
need() {
	BIN=$(PATH=$PATH:/usr/local/sbin:/usr/sbin:/sbin command -v "$1") ||
		skip "$1 is not installed (Debian: apt-get install $1)"
}

# bg_for SECONDS CMD...: bg under a guard of SECONDS, for what outlives 20
# restarts (a gunicorn restart takes a second or two).
bg_for() {
	timeout -k 2 "$(($1 * SLOW))" "${@:2}" 3>&- &
	BG=$!
	BG_PIDS+=("$BG")
}

# wait_for SECONDS CMD...: wait_until, bounded by SECONDS (a busy machine, an
# ASan build and a Python server start slowly).
wait_for() {
	local i
	for ((i = 0; i < $1 * 100 * SLOW; i++)); do
		"${@:2}" && return 0
		sleep 0.01
	done
	return 1
}

# ours PID: PID runs (no zombie) a server of this test: its command line names $T/srv.
ours() {
	is_waiting "$1" 2>/dev/null &&
		tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null | grep -qF -- "$T/srv"
}

# none_ours PID...: none of them runs a server of this test any more.
none_ours() {
	local p
	for p; do
		ours "$p" && return 1
	done
	return 0
}

# stop_instances: the instance web.pid names and every other process whose command
# line names $T/srv (gunicorn's workers, an instance a failed test left) get
# SIGTERM, then SIGKILL after 10 s; each is waited for, bounded.
stop_instances() {
	local p pids=() left=()
	[ -d "$T/srv" ] || return 0
	for p in $(cat "$T/web.pid" 2>/dev/null) $(pgrep -f -- "$T/srv"); do
		ours "$p" && pids+=("$p")
	done
	[ "${#pids[@]}" -gt 0 ] || return 0
	kill -TERM "${pids[@]}" 2>/dev/null
	wait_for 10 none_ours "${pids[@]}" && return 0
	for p in "${pids[@]}"; do
		ours "$p" && left+=("$p")
	done
	echo "still running 10 s after SIGTERM, killed: ${left[*]}" >&2
	kill -KILL "${left[@]}" 2>/dev/null
	wait_for 5 none_ours "${left[@]}"
}

# holder_up: a holder on $S with a TCP listener on 127.0.0.1 (a port the kernel
# picks); PORT is that port, from a describe handoff; HOLDER is the holder's pid,
# HOLDER_FDS its descriptor count; $T/srv is the servers' directory.
holder_up() {
	local out
	bg_for 600 fdsend --serve "$S" tcp:127.0.0.1:0 2>>"$T/holder.err"
	wait_for_socket "$S"
	HOLDER=$(child_of "$BG")
	HOLDER_FDS=$(fd_count "$HOLDER")
	out=$(t fdrecv -c -t 10 "$S") || { echo "fdrecv -c $S failed: $out" >&2; return 1; }
	[[ "$out" =~ \ local=127\.0\.0\.1:([0-9]+)(\ |$) ]] || { echo "no port in: $out" >&2; return 1; }
	PORT=${BASH_REMATCH[1]}
	mkdir "$T/srv"
}

# restart: the one command of the first start and of every restart,
# `fdrecv -c $S --replace $T/web.pid READY... -- SERVER...` (arrays the test sets);
# fdrecv's messages and the server's output go to $T/srv/out. STATUS: its exit status.
restart() {
	STATUS=0
	t fdrecv -c "$S" --replace "$T/web.pid" "${READY[@]}" -- "${SERVER[@]}" \
		</dev/null >>"$T/srv/out" 2>&1 || STATUS=$?
}

# restart_ok WHAT: restart, which must exit 0.
restart_ok() {
	restart
	[ "$STATUS" -eq 0 ] && return 0
	echo "$1: fdrecv exited $STATUS, expected 0; $T/srv/out:" >&2
	cat "$T/srv/out" >&2
	return 1
}

# served_by PID: until the client loop got an answer "pid PID" from instance PID.
served_by() {
	wait_for 30 grep -qx "seen pid $1" "$T/client.out" && return 0
	echo "no answer from instance $1 within 30 s; client:" >&2
	cat "$T/client.out" "$T/client.err" >&2
	return 1
}

# restarts_under_load: with the holder up and READY and SERVER set: the first
# start, then an HTTP client loop (`server http`) on the holder's port while 20
# restarts run, each of which exits 0, leaves the old instance exited
# (--stop-timeout), web.pid naming the new one, and the new one answering the loop.
restarts_under_load() {
	local round old new
	restart_ok "first start"
	new=$(cat "$T/web.pid")
	ours "$new"
	bg_for 600 server http 127.0.0.1 "$PORT" "$T/stop" >"$T/client.out" 2>"$T/client.err"
	CLIENT_BG=$BG
	served_by "$new"
	for ((round = 1; round <= 20; round++)); do
		old=$new
		restart_ok "restart $round"
		new=$(cat "$T/web.pid")
		[ "$new" != "$old" ] || { echo "restart $round: web.pid still names $old" >&2; return 1; }
		if ours "$old"; then
			echo "restart $round: the old instance $old still runs" >&2
			return 1
		fi
		ours "$new"
		served_by "$new"
	done
	[ "$(grep -c '^seen pid ' "$T/client.out")" -eq 21 ]
	# no warning (a SIGKILL after --stop-timeout, a pid left alone): fdrecv said nothing
	run -1 grep '^fdrecv:' "$T/srv/out"
}

# broken_restart_rolled_back: a restart to SERVER, a new version that fails
# before it is ready, still under the client loop: fdrecv says why and exits 5;
# web.pid still names the old instance, which still answers. Then the loop stops:
# every one of its requests was answered, and the holder holds what it held.
broken_restart_rolled_back() {
	local old
	old=$(cat "$T/web.pid")
	restart
	[ "$STATUS" -eq 5 ] || { echo "broken restart: fdrecv exited $STATUS, expected 5" >&2; cat "$T/srv/out" >&2; return 1; }
	run -0 grep '^fdrecv:' "$T/srv/out"
	[[ "$output" =~ ^fdrecv:\ "${SERVER[0]}":\ pid\ [0-9]+\ exited\ with\ status\ [0-9]+\ before\ it\ was\ ready\;\ rolled\ back$ ]] ||
		{ echo "fdrecv said: $output" >&2; return 1; }
	[ "$(cat "$T/web.pid")" = "$old" ]
	ours "$old"
	run -0 t server get 127.0.0.1 "$PORT"
	assert_output_lines "pid $old"

	touch "$T/stop"
	reap "$CLIENT_BG"
	run tail -n 1 "$T/client.out"
	if [ "$REAPED" -ne 0 ] || ! [[ "$output" =~ ^ok=[1-9][0-9]*\ failed=0$ ]]; then
		printf 'client exited %s: %s\n' "$REAPED" "$output" >&2
		cat "$T/client.err" >&2
		return 1
	fi
	wait_fd_count "$HOLDER" "$HOLDER_FDS"
	[ ! -s "$T/holder.err" ]
}

# lighttpd_conf: $T/srv/lighttpd.conf, lighttpd on the holder's socket (server.bind
# and server.port name its address, or lighttpd binds a socket of its own) with a
# document root that holds index.html, "pid PID": include_shell makes it for each
# instance as it starts ($PPID there is lighttpd), so that the client loop tells
# the instances apart. And $T/srv/broken.conf: the same with a line that does not parse.
lighttpd_conf() {
	cat >"$T/srv/docroot.sh" <<-'EOF'
		# docroot.sh PID: a document root of lighttpd PID's own, for include_shell
		d=${0%/*}/www-$1
		mkdir -p "$d" && echo "pid $1" >"$d/index.html" && echo "server.document-root = \"$d\""
	EOF
	cat >"$T/srv/lighttpd.conf" <<-EOF
		server.bind = "127.0.0.1"
		server.port = $PORT
		server.systemd-socket-activation = "enable"
		server.pid-file = "$T/srv/lighttpd.pid"
		server.errorlog = "$T/srv/error.log"
		index-file.names = ("index.html")
		include_shell "sh $T/srv/docroot.sh \$PPID"
	EOF
	{ cat "$T/srv/lighttpd.conf"; echo 'server.max-connections = ('; } >"$T/srv/broken.conf"
}

@test "lighttpd behind a holder (--ready pidfile:PATH, --stop-signal INT): 20 restarts under an HTTP client loop fail no request; a config that does not parse is rolled back" {
	need lighttpd
	holder_up
	lighttpd_conf
	READY=(--ready "pidfile:$T/srv/lighttpd.pid" --stop-signal INT --stop-timeout 10)
	SERVER=("$BIN" -D -f "$T/srv/lighttpd.conf")
	restarts_under_load
	SERVER=("$BIN" -D -f "$T/srv/broken.conf")
	broken_restart_rolled_back
}

@test "gunicorn behind a holder (--ready notify, --stop-signal TERM, --preload): 20 restarts under an HTTP client loop fail no request; an app that raises at import is rolled back" {
	need gunicorn
	[ -f "$ROOT/test/app.py" ] || { echo "$ROOT/test/app.py is missing" >&2; return 1; }
	export PYTHONDONTWRITEBYTECODE=1   # no test/__pycache__ in the work tree
	holder_up
	READY=(--ready notify --stop-signal TERM --stop-timeout 15)
	# test/app.py answers "pid PID" of the master (the instance) that preloaded it
	SERVER=("$BIN" --preload --workers 2 --chdir "$T/srv" --pythonpath "$ROOT/test"
		--worker-tmp-dir "$T/srv" app:application)
	restarts_under_load
	FDTEST_APP_BROKEN=1 broken_restart_rolled_back
}
