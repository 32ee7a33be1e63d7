#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# Safe restarts: fdrecv --ready starts COMMAND as a child and returns once it is
# ready; with --replace it then stops the old instance and rewrites PIDFILE, or
# rolls back, leaving the old instance and PIDFILE alone.

load test_helper
load holder_helper

# Instances outlive the fdrecv that started them: teardown stops what is left.
eval "helper_$(declare -f teardown)"
teardown() {
	local p
	for p in $(cat "$T/web.pid" 2>/dev/null) $(awk '{ print $2 }' "$T/log" 2>/dev/null); do
		kill -KILL "$p" 2>/dev/null || true
	done
	helper_teardown
}

setup_file() {
	export BATS_NO_PARALLELIZE_WITHIN_FILE=true
}

# start ARG... -- SERVER-ARG...: the one restart command, with the holder on $S:
# fdrecv -c $S --replace $T/web.pid ARG... -- server SERVER-ARG..., the instance's
# output in $T/server.out, its events in $T/log ("ready PID", "stop-SIG PID").
start() {
	local opts=()
	while [ "$1" != -- ]; do opts+=("$1"); shift; done
	shift
	run t fdrecv -c "$S" --replace "$T/web.pid" "${opts[@]}" -- \
		sh -c 'exec "$@" >>"$0" 2>&1' "$T/server.out" server -l "$T/log" "$@"
}

# holder_up: a holder on $S with a TCP listener; PORT is its port.
holder_up() {
	start_holder "$S" tcp:127.0.0.1:0
	PORT=$(holder_port)
}

# alive PID: PID runs (not a zombie).
alive() {
	is_waiting "$1"
}

# wait_gone_pid PID: until PID has exited.
wait_gone_pid() {
	wait_until eval "! alive $1" && return 0
	echo "pid $1 still runs after 5 s" >&2
	return 1
}

# starting_instance: the pid of the instance that waits for $T/go to become ready.
starting_instance() {
	local cmd="server -l $T/log -n -w $T/go"
	wait_until pgrep -f -x -- "$cmd" >/dev/null && pgrep -f -x -- "$cmd"
}

# answers PID: a request on $PORT is answered by instance PID.
answers() {
	run -0 t server ask 127.0.0.1 "$PORT"
	assert_output_lines "pid $1"
}

@test "--replace: a first start returns once the instance said READY=1, and PIDFILE names it" {
	holder_up
	start --ready notify -- -n
	[ "$status" -eq 0 ]
	assert_output_lines ""
	new=$(cat "$T/web.pid")
	assert_file "$T/log" "ready $new"
	answers "$new"
}

@test "--replace: the old instance gets its stop signal only after the new one is ready, then PIDFILE names the new one" {
	holder_up
	start --ready notify -- -n
	old=$(cat "$T/web.pid")
	start_client "$PORT"
	wait_served_by "$old"
	# the new instance becomes ready only once $T/go exists
	bg fdrecv -c "$S" --replace "$T/web.pid" --ready notify -- \
		sh -c 'exec "$@" >>"$0" 2>&1' "$T/server.out" server -l "$T/log" -n -w "$T/go"
	restart=$BG
	new=$(starting_instance)
	# while it starts, the old one serves, unsignalled, and PIDFILE is unchanged
	is_waiting "$restart"
	alive "$old"
	[ "$(cat "$T/web.pid")" = "$old" ]
	[ "$(grep -c . "$T/log")" -eq 1 ]
	touch "$T/go"
	reap_ok "$restart"
	new=$(cat "$T/web.pid")
	[ "$new" != "$old" ]
	wait_gone_pid "$old"
	assert_file "$T/log" "ready $old" "ready $new" "stop-15 $old"
	wait_served_by "$new"
	stop_client
}

@test "--replace: a new instance that exits before it is ready is rolled back: exit 5, old one serving, PIDFILE unchanged" {
	holder_up
	start --ready notify -- -n
	old=$(cat "$T/web.pid")
	cp "$T/web.pid" "$T/web.pid.before"
	start --ready notify -- -x 3
	[ "$status" -eq 5 ]
	new=$(awk '$1 == "exit-early" { print $2 }' "$T/log")
	assert_output_lines "fdrecv: sh: pid $new exited with status 3 before it was ready; rolled back"
	cmp "$T/web.pid" "$T/web.pid.before"
	assert_file "$T/log" "ready $old" "exit-early $new"
	answers "$old"
}

@test "--replace: a new instance not ready within --ready-timeout is stopped and rolled back" {
	holder_up
	start --ready notify -- -n
	old=$(cat "$T/web.pid")
	start --ready notify --ready-timeout 0.5 --
	[ "$status" -eq 5 ]
	[[ "$output" =~ ^fdrecv:\ sh:\ pid\ ([0-9]+)\ was\ not\ ready\ after\ 0.5\ s\;\ rolled\ back$ ]]
	new=${BASH_REMATCH[1]}
	assert_file "$T/log" "ready $old" "stop-15 $new"
	! alive "$new"
	[ "$(cat "$T/web.pid")" = "$old" ]
	answers "$old"
}

@test "--replace: a new instance killed by a signal before it is ready is rolled back, with the signal named" {
	holder_up
	start --ready notify -- -n
	old=$(cat "$T/web.pid")
	run t fdrecv -c "$S" --replace "$T/web.pid" --ready notify -- sh -c 'kill -SEGV $$'
	[ "$status" -eq 5 ]
	[[ "$output" =~ ^fdrecv:\ sh:\ pid\ [0-9]+\ was\ killed\ by\ SIGSEGV\ before\ it\ was\ ready\;\ rolled\ back$ ]]
	[ "$(cat "$T/web.pid")" = "$old" ]
	answers "$old"
}

@test "--ready notify: READY=1 sent by a child of the instance is ignored" {
	holder_up
	start --ready notify --ready-timeout 1 -- -N
	[ "$status" -eq 5 ]
	[[ "$output" =~ was\ not\ ready\ after\ 1\ s\;\ rolled\ back$ ]]
	[ ! -e "$T/web.pid" ]
}

@test "--ready pidfile:PATH: ready once PATH holds the instance's pid" {
	holder_up
	start --ready "pidfile:$T/srv.pid" -- -p "$T/srv.pid"
	[ "$status" -eq 0 ]
	new=$(cat "$T/web.pid")
	assert_file "$T/srv.pid" "$new"
	assert_file "$T/log" "ready $new"
	answers "$new"
}

@test "--ready pidfile:PATH: a file holding another pid does not count" {
	holder_up
	echo 1 >"$T/srv.pid"
	start --ready "pidfile:$T/srv.pid" --ready-timeout 0.5 --
	[ "$status" -eq 5 ]
	[[ "$output" =~ was\ not\ ready\ after\ 0.5\ s\;\ rolled\ back$ ]]
}

@test "--ready exec: ready once COMMAND is executed" {
	holder_up
	start --ready exec --
	[ "$status" -eq 0 ]
	new=$(cat "$T/web.pid")
	answers "$new"
}

@test "--ready without --replace: returns once the instance is ready, and touches no pid file" {
	holder_up
	bg fdrecv -c "$S" --ready notify -- \
		sh -c 'exec "$@" >>"$0" 2>&1' "$T/server.out" server -l "$T/log" -n -w "$T/go"
	first=$BG
	starting_instance >/dev/null
	is_waiting "$first"
	touch "$T/go"
	reap_ok "$first"
	new=$(awk '$1 == "ready" { print $2 }' "$T/log")
	answers "$new"
	kill -TERM "$new"
	wait_gone_pid "$new"
	[ "$(ls "$T" | grep -c pid)" -eq 0 ]
}

@test "--replace: a PIDFILE naming no running process is a first start" {
	holder_up
	gone_pid >"$T/web.pid"
	start --ready notify -- -n
	[ "$status" -eq 0 ]
	assert_output_lines ""
	new=$(cat "$T/web.pid")
	assert_file "$T/log" "ready $new"
}

@test "--replace: a process started after PIDFILE was written is never signalled, with a warning" {
	holder_up
	bg server idle "$T/idle.ready"
	wait_for_file "$T/idle.ready"
	idle=$(child_of "$BG")
	echo "$idle" >"$T/web.pid"
	touch -d "@$(($(date +%s) - 600))" "$T/web.pid"
	start --ready notify -- -n
	[ "$status" -eq 0 ]
	assert_output_lines "fdrecv: $T/web.pid: pid $idle started after the file was written: not the old instance, left alone"
	alive "$idle"
	! signal_pending "$idle" 15
	new=$(cat "$T/web.pid")
	[ "$new" != "$idle" ]
}

@test "--replace: the start time recorded with PIDFILE names the old instance even after the wall clock moved" {
	holder_up
	start --ready notify -- -n
	old=$(cat "$T/web.pid")
	fdtool xattr "$T/web.pid" user.fdrecv.start >/dev/null ||
		skip "this file system keeps no user extended attributes"
	# as after a step of the wall clock: the file looks written long ago
	touch -d "@$(($(date +%s) - 600))" "$T/web.pid"
	start --ready notify -- -n
	[ "$status" -eq 0 ]
	assert_output_lines ""
	wait_gone_pid "$old"
	[ "$(cat "$T/web.pid")" != "$old" ]
}

@test "--replace: a pid whose start time differs from the one recorded with PIDFILE is never signalled" {
	holder_up
	start --ready notify -- -n
	first=$(cat "$T/web.pid")
	bg server idle "$T/idle.ready"
	wait_for_file "$T/idle.ready"
	idle=$(child_of "$BG")
	# the same file (and its recorded start time), now naming another process
	echo "$idle" >>"$T/web.pid.new"
	cat "$T/web.pid.new" >"$T/web.pid"
	start --ready notify -- -n
	[ "$status" -eq 0 ]
	assert_output_lines "fdrecv: $T/web.pid: pid $idle started after the file was written: not the old instance, left alone"
	alive "$idle"
	! signal_pending "$idle" 15
	kill -TERM "$first"
}

@test "--replace: a PIDFILE that is not a process ID is an error, and nothing starts" {
	holder_up
	echo "12ab" >"$T/web.pid"
	start --ready notify -- -n
	[ "$status" -eq 1 ]
	assert_output_lines "fdrecv: $T/web.pid: not a process ID: '12ab'"
	[ ! -e "$T/log" ]
}

@test "--stop-signal: the old instance gets that signal (by name or number)" {
	holder_up
	start --ready notify -- -n
	first=$(cat "$T/web.pid")
	start --ready notify --stop-signal USR1 -- -n
	second=$(cat "$T/web.pid")
	wait_gone_pid "$first"
	start --ready notify --stop-signal 3 -- -n
	third=$(cat "$T/web.pid")
	wait_gone_pid "$second"
	assert_file "$T/log" "ready $first" "ready $second" "stop-10 $first" "ready $third" "stop-3 $second"
}

@test "--stop-timeout: an old instance that ignores the stop signal is killed after the timeout, and fdrecv says so" {
	holder_up
	start --ready notify -- -n -i 15
	old=$(cat "$T/web.pid")
	start --ready notify --stop-timeout 0.5 -- -n
	[ "$status" -eq 0 ]
	assert_output_lines "fdrecv: old instance pid $old did not exit within 0.5 s of SIGTERM: killed"
	! alive "$old"
	new=$(cat "$T/web.pid")
	answers "$new"
}

@test "without --stop-timeout, fdrecv does not wait for the old instance to exit" {
	holder_up
	start --ready notify -- -n -i 15
	old=$(cat "$T/web.pid")
	start --ready notify -- -n
	[ "$status" -eq 0 ]
	assert_output_lines ""
	alive "$old"
	kill -KILL "$old"
}

@test "SIGTERM to fdrecv while the new instance starts: rolled back, and fdrecv dies of SIGTERM" {
	holder_up
	start --ready notify -- -n
	old=$(cat "$T/web.pid")
	bg fdrecv -c "$S" --replace "$T/web.pid" --ready notify -- \
		sh -c 'exec "$@" >>"$0" 2>&1' "$T/server.out" server -l "$T/log" -n -w "$T/go" 2>"$T/err"
	restart=$BG
	new=$(starting_instance)
	kill -TERM "$(child_of "$restart")"
	reap "$restart"
	[ "$REAPED" -eq 143 ]
	assert_file "$T/err" "fdrecv: sh: pid $new was still starting when fdrecv got SIGTERM; rolled back"
	wait_gone_pid "$new"
	[ "$(cat "$T/web.pid")" = "$old" ]
	answers "$old"
}

@test "10 restarts under a client loop: no request fails, and every old instance is stopped" {
	holder_up
	base=$(fd_count "$HOLDER")
	start --ready notify -- -n
	start_client "$PORT"
	wait_served_by "$(cat "$T/web.pid")"
	for ((round = 0; round < 10; round++)); do
		old=$(cat "$T/web.pid")
		start --ready notify -- -n
		[ "$status" -eq 0 ]
		new=$(cat "$T/web.pid")
		wait_gone_pid "$old"
		wait_served_by "$new"
	done
	stop_client
	[ "$(grep -c '^ready ' "$T/log")" -eq 11 ]
	[ "$(grep -c '^stop-15 ' "$T/log")" -eq 10 ]
	wait_fd_count "$HOLDER" "$base"
}

@test "under a service manager (NOTIFY_SOCKET set for fdrecv), the new instance is told as MAINPID once ready" {
	holder_up
	bg fdtool serve1 dgram "$T/manager" >"$T/manager.out"
	manager=$BG
	wait_for_line "$T/manager.out" '^ready$'
	NOTIFY_SOCKET=$T/manager start --ready notify -- -n
	[ "$status" -eq 0 ]
	reap_ok "$manager"
	new=$(cat "$T/web.pid")
	assert_file "$T/manager.out" ready "MAINPID=$new" "READY=1" ""
}

@test "started with SIGCHLD ignored, fdrecv still sees how the new instance ended" {
	holder_up
	run t bash -c 'trap "" CHLD; exec "$@"' _ fdrecv -c "$S" --ready notify -- sh -c 'exit 3'
	[ "$status" -eq 5 ]
	[[ "$output" =~ ^fdrecv:\ sh:\ pid\ [0-9]+\ exited\ with\ status\ 3\ before\ it\ was\ ready\;\ rolled\ back$ ]]
}

@test "--replace: a PIDFILE owned by another user is not trusted (exit 1), and nothing starts" {
	[ "$(id -u)" -eq 0 ] || skip "needs root to give a file to another user"
	holder_up
	echo 1 >"$T/web.pid"
	chown 65534 "$T/web.pid"
	start --ready notify -- -n
	[ "$status" -eq 1 ]
	assert_output_lines "fdrecv: $T/web.pid: owned by uid 65534, not by uid $(id -u) or root: not trusted"
	[ ! -e "$T/log" ]
}

@test "--ready and --replace usage errors" {
	run -2 t fdrecv -c "$S" --replace "$T/web.pid" -- true
	assert_usage_error fdrecv
	[ "${lines[0]}" = "fdrecv: --replace needs --ready HOW (notify, pidfile:PATH or exec)" ]
	run -2 t fdrecv -c "$S" --ready notify
	[ "${lines[0]}" = "fdrecv: --ready and --replace need a COMMAND" ]
	run -2 t fdrecv -c "$S" --ready soon -- true
	[ "${lines[0]}" = "fdrecv: invalid --ready: 'soon' (expected notify, pidfile:PATH or exec)" ]
	run -2 t fdrecv -c "$S" --ready notify --stop-signal NOPE -- true
	[ "${lines[0]}" = "fdrecv: invalid signal: 'NOPE' (expected a name such as TERM, or a number)" ]
	run -2 t fdrecv -c "$S" --stop-timeout 1 -- true
	[ "${lines[0]}" = "fdrecv: --ready-timeout, --stop-signal and --stop-timeout go with --ready" ]
	run -2 t fdrecv -c "$S" --ready exec --ready-timeout 0 -- true
	[ "${lines[0]}" = "fdrecv: --ready-timeout must be above 0" ]
}
