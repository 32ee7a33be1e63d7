#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# The holder (fdsend --serve, fdrecv --connect), the listeners fdsend creates
# (tcp:, udp:, unix:), socket activation (-L) and descriptors of other processes
# (--pid, --dup); above all: a service restarted under load refuses no connection.

load test_helper
load holder_helper

# ---- restarting a service without refusing a connection ----

@test "holder with a TCP listener: 20 restarts of the service under a client loop refuse no connection and leak no holder fd" {
	start_holder "$S" tcp:127.0.0.1:0
	base=$(fd_count "$HOLDER")
	port=$(holder_port)
	start_server
	old=$SERVER old_bg=$SERVER_BG
	start_client "$port"
	wait_served_by "$old"
	for ((round = 0; round < 20; round++)); do
		start_server
		wait_served_by "$SERVER"
		kill -TERM "$old"
		reap_ok "$old_bg"
		old=$SERVER old_bg=$SERVER_BG
	done
	run -0 t server ask 127.0.0.1 "$port"
	assert_output_lines "pid $old"
	stop_client
	[ "$(grep -c '^seen ' "$T/client.out")" -eq 21 ]
	wait_fd_count "$HOLDER" "$base"
	[ ! -s "$T/holder.err" ]
}

@test "direct handoff without a holder: fdsend --pid OLD --dup takes the listener to a new instance, no connection refused" {
	bg fdrecv "$T/a.sock" -- server -r "$T/ready" >>"$T/server.out" 2>&1
	a_bg=$BG
	run -0 t fdsend "$T/a.sock" tcp:127.0.0.1:0
	wait_for_file "$T/ready"
	a=$(child_of "$a_bg")
	port=$(cat "$T/ready")
	start_client "$port"
	wait_served_by "$a"

	bg fdrecv "$T/b.sock" -- server >>"$T/server.out" 2>&1
	b_bg=$BG
	run -0 t fdsend --pid "$a" --dup "$T/b.sock" 3
	assert_output_lines ""
	b=$(child_of "$b_bg")
	wait_served_by "$b"
	kill -TERM "$a"
	reap_ok "$a_bg"
	run -0 t server ask 127.0.0.1 "$port"
	assert_output_lines "pid $b"
	stop_client
}

@test "a service instance told to stop mid-request answers that request, then exits 0" {
	start_holder "$S" tcp:127.0.0.1:0
	port=$(holder_port)
	start_server
	exec 5<>"/dev/tcp/127.0.0.1/$port"
	wait_for_line "$T/server.out" '^accepted$'
	kill -TERM "$SERVER"
	wait_signal_pending "$SERVER" 15
	echo hello >&5
	read -r -t 5 answer <&5 || true
	exec 5<&-
	[ "$answer" = "pid $SERVER" ]
	reap_ok "$SERVER_BG"
}

# ---- the holder ----

@test "--serve hands the same named descriptors to receivers one after another" {
	: >"$T/f"
	start_holder --fdname web:log "$S" tcp:127.0.0.1:0 5 5>>"$T/f"
	port=$(holder_port)
	# (not $i: bats' run uses it)
	for n in 1 2 3; do
		run -0 t fdrecv -c "$S"
		assert_output_lines \
			"3 name=web kind=socket access=rdwr family=inet type=stream state=listening local=127.0.0.1:$port backlog=$(default_backlog)" \
			"4 name=log kind=file path=$T/f access=wronly flags=append"
		run -0 t fdrecv -c "$S" -- sh -c 'echo "r$1 $LISTEN_FDS $LISTEN_FDNAMES" >&4' sh "$n"
	done
	assert_file "$T/f" "r1 2 web:log" "r2 2 web:log" "r3 2 web:log"
}

@test "--serve hands the same named descriptors to several receivers at once" {
	: >"$T/f"
	start_holder --fdname web:log "$S" tcp:127.0.0.1:0 5 5>>"$T/f"
	base=$(fd_count "$HOLDER")
	rs=()
	for n in 1 2 3 4 5 6; do
		bg fdrecv -c "$S" -- sh -c 'echo "r$1 $LISTEN_FDS $LISTEN_FDNAMES" >&4' sh "$n"
		rs+=("$BG")
	done
	for r in "${rs[@]}"; do
		reap_ok "$r"
	done
	sort -o "$T/f" "$T/f"
	assert_file "$T/f" "r1 2 web:log" "r2 2 web:log" "r3 2 web:log" "r4 2 web:log" \
		"r5 2 web:log" "r6 2 web:log"
	wait_fd_count "$HOLDER" "$base"
}

@test "--count 2: the holder serves two receivers, then removes its socket and exits 0" {
	: >"$T/f"
	start_holder --count 2 "$S" 5 5>>"$T/f"
	for n in 1 2; do
		run -0 t fdrecv -c "$S"
		assert_output_lines "3 name=unknown kind=file path=$T/f access=wronly flags=append"
	done
	reap_ok "$HOLDER_BG"
	[ ! -e "$S" ]
	run -4 t fdrecv -c -t 0.2 "$S"
	assert_output_lines "fdrecv: $S: timed out waiting for a holder"
}

@test "SIGTERM, SIGINT and SIGHUP make the holder remove its socket file and exit 0" {
	for sig in TERM INT HUP; do
		start_holder "$S" tcp:127.0.0.1:0
		kill -"$sig" "$HOLDER"
		reap_ok "$HOLDER_BG"
		[ ! -e "$S" ]
	done
	[ "$(ls -A "$T")" = holder.err ]
	[ ! -s "$T/holder.err" ]
}

@test "a receiver that stalls in the middle of its handoff does not block another one" {
	: >"$T/f"
	start_holder "$S" 5 5>>"$T/f"
	bg server stall "$S" >"$T/stall.out"
	stall_bg=$BG
	wait_for_line "$T/stall.out" '^stalled$'
	run -0 t fdrecv -c "$S"
	assert_output_lines "3 name=unknown kind=file path=$T/f access=wronly flags=append"
	is_waiting "$stall_bg"
	assert_file "$T/stall.out" stalled
}

@test "-t 0.5: a stalled receiver is dropped with a warning and the holder's fd count returns to its baseline" {
	: >"$T/f"
	start_holder -t 0.5 "$S" 5 5>>"$T/f"
	base=$(fd_count "$HOLDER")
	bg server stall "$S" >"$T/stall.out"
	stall_bg=$BG
	stall=$(child_of "$stall_bg")
	wait_for_line "$T/stall.out" '^stalled$'
	wait_for_line "$T/holder.err" .
	reap_ok "$stall_bg"
	assert_file "$T/stall.out" stalled dropped
	wait_fd_count "$HOLDER" "$base"
	run -0 t fdrecv -c "$S"
	assert_output_lines "3 name=unknown kind=file path=$T/f access=wronly flags=append"
	assert_file "$T/holder.err" "$(holder_warning "$stall" "no answer from receiver (timed out)")"
}

@test "a receiver that refuses (-n 5 against one fd) exits 3; the holder warns and goes on serving" {
	: >"$T/f"
	start_holder "$S" 5 5>>"$T/f"
	base=$(fd_count "$HOLDER")
	run -3 t sh -c 'echo $$ >"$1"; exec fdrecv -c -n 5 "$2"' sh "$T/pid" "$S"
	assert_output_lines "fdrecv: $S: expected 5 descriptors, offered 1"
	wait_for_line "$T/holder.err" .
	wait_fd_count "$HOLDER" "$base"
	run -0 t fdrecv -c -n 1 "$S"
	assert_output_lines "3 name=unknown kind=file path=$T/f access=wronly flags=append"
	assert_file "$T/holder.err" \
		"$(holder_warning "$(cat "$T/pid")" "refused by receiver: expected 5 descriptors, offered 1")"
}

@test "--serve with fd:N is a usage error" {
	run -2 t fdtool mk pair-stream 6 7 fdsend --serve fd:6 0
	assert_usage_error fdsend
}

# ---- fdrecv --connect ----

@test "fdrecv -c waits for a holder that starts later, and finds one already serving" {
	: >"$T/f"
	bg fdrecv -c "$S" >"$T/desc"
	r_bg=$BG
	wait_sleeping "$(child_of "$r_bg")" fdrecv
	[ ! -e "$S" ]
	start_holder "$S" 5 5>>"$T/f"
	reap_ok "$r_bg"
	assert_file "$T/desc" "3 name=unknown kind=file path=$T/f access=wronly flags=append"
	run -0 t fdrecv -c "$S"
	assert_output_lines "3 name=unknown kind=file path=$T/f access=wronly flags=append"
}

@test "fdrecv -c -t 0.3 without a holder times out: exit 4, the command never runs" {
	run -4 t fdrecv -c -t 0.3 "$S" -- sh -c 'echo ran'
	assert_output_lines "fdrecv: $S: timed out waiting for a holder"
	[ ! -e "$S" ]
}

# ---- listeners fdsend creates ----

@test "tcp:127.0.0.1:0: a kernel-chosen port, named tcp-PORT, that reaches the service" {
	start_holder "$S" tcp:127.0.0.1:0
	run -0 t fdrecv -c "$S"
	assert_matches "$output" '^3 name=tcp-([0-9]+) kind=socket access=rdwr family=inet type=stream state=listening local=127\.0\.0\.1:([0-9]+) backlog=[0-9]+$'
	port=${BASH_REMATCH[2]}
	[ "${BASH_REMATCH[1]}" = "$port" ]
	[ "$port" -gt 0 ]
	start_server
	run -0 t server ask 127.0.0.1 "$port"
	assert_output_lines "pid $SERVER"
}

@test "tcp:[::1]:0: an IPv6 listener, family inet6, named tcp-PORT, that reaches the service" {
	grep -q '^00000000000000000000000000000001 ' /proc/net/if_inet6 2>/dev/null ||
		skip "no IPv6 loopback address ::1 on this host"
	start_holder "$S" 'tcp:[::1]:0'
	run -0 t fdrecv -c "$S"
	assert_matches "$output" '^3 name=tcp-([0-9]+) kind=socket access=rdwr family=inet6 type=stream state=listening local=\[::1\]:([0-9]+) backlog=[0-9]+$'
	port=${BASH_REMATCH[2]}
	[ "${BASH_REMATCH[1]}" = "$port" ]
	start_server
	run -0 t server ask ::1 "$port"
	assert_output_lines "pid $SERVER"
}

@test "tcp:*:0 and tcp::0 listen on any IPv4 address" {
	start_holder "$S" 'tcp:*:0' tcp::0
	run -0 t fdrecv -c "$S"
	[ "${#lines[@]}" -eq 2 ]
	assert_matches "${lines[0]}" '^3 name=tcp-([0-9]+) kind=socket access=rdwr family=inet type=stream state=listening local=0\.0\.0\.0:([0-9]+) backlog=[0-9]+$'
	[ "${BASH_REMATCH[1]}" = "${BASH_REMATCH[2]}" ]
	assert_matches "${lines[1]}" '^4 name=tcp-([0-9]+) kind=socket access=rdwr family=inet type=stream state=listening local=0\.0\.0\.0:([0-9]+) backlog=[0-9]+$'
	[ "${BASH_REMATCH[1]}" = "${BASH_REMATCH[2]}" ]
}

@test "udp:127.0.0.1:0: a bound datagram socket named udp-PORT" {
	start_holder "$S" udp:127.0.0.1:0
	run -0 t fdrecv -c "$S"
	assert_matches "$output" '^3 name=udp-([0-9]+) kind=socket access=rdwr family=inet type=dgram state=bound local=127\.0\.0\.1:([0-9]+)$'
	[ "${BASH_REMATCH[1]}" = "${BASH_REMATCH[2]}" ]
	[ "${BASH_REMATCH[2]}" -gt 0 ]
}

@test "unix:PATH: a listener named unix at PATH, whose file stays when the holder stops" {
	start_holder "$S" "unix:$T/svc.sock"
	[ -S "$T/svc.sock" ]
	run -0 t fdrecv -c "$S"
	kill -TERM "$HOLDER"
	reap_ok "$HOLDER_BG"
	[ ! -e "$S" ]
	[ -S "$T/svc.sock" ]
	assert_output_lines "3 name=unix kind=socket access=rdwr family=unix type=stream state=listening local=$T/svc.sock"
}

@test "--fdname overrides the default listener names; an empty entry keeps the default" {
	start_holder --fdname :dns "$S" tcp:127.0.0.1:0 udp:127.0.0.1:0
	run -0 t fdrecv -c "$S"
	[ "${#lines[@]}" -eq 2 ]
	assert_matches "${lines[0]}" '^3 name=tcp-([0-9]+) .* local=127\.0\.0\.1:([0-9]+) backlog=[0-9]+$'
	[ "${BASH_REMATCH[1]}" = "${BASH_REMATCH[2]}" ]
	assert_matches "${lines[1]}" '^4 name=dns kind=socket access=rdwr family=inet type=dgram state=bound local=127\.0\.0\.1:[0-9]+$'
}

@test "a port already in use: exit 1 with 'address already in use', no socket file" {
	start_holder "$S" tcp:127.0.0.1:0
	port=$(holder_port)
	run -1 t fdsend --serve "$T/s2.sock" "tcp:127.0.0.1:$port"
	assert_output_lines "fdsend: tcp:127.0.0.1:$port: address already in use"
	run -1 t fdsend -t 1 "$T/s2.sock" "tcp:127.0.0.1:$port"
	assert_output_lines "fdsend: tcp:127.0.0.1:$port: address already in use"
	[ ! -e "$T/s2.sock" ]
}

@test "a host that is not a numeric IPv4 address: exit 2 with the IPv6 hint" {
	run -2 t fdsend --serve "$S" tcp:nohost:80
	[ "${lines[0]}" = "fdsend: tcp:nohost:80: not a numeric IPv4 address (write IPv6 as [::1])" ]
	[ ! -e "$S" ]
}

# ---- socket activation: -L/--listen-fds ----

@test "--listen-fds under systemd-socket-activate hands on the activated socket named web" {
	command -v systemd-socket-activate >/dev/null ||
		skip "systemd-socket-activate is not installed"
	port=$(free_port)
	bg systemd-socket-activate -l "127.0.0.1:$port" --fdname=web \
		fdsend --serve --count 1 "$S" --listen-fds >"$T/ssa.out" 2>&1
	ssa_bg=$BG
	# it runs fdsend only when a first connection comes
	run -0 t server poke 127.0.0.1 "$port"
	wait_for_socket "$S"
	run -0 t fdrecv -c "$S"
	assert_output_lines "3 name=web kind=socket access=rdwr family=inet type=stream state=listening local=127.0.0.1:$port backlog=$(default_backlog)"
	reap_ok "$ssa_bg"
}

@test "--listen-fds takes fds 3.. at its place among the FDs, names from LISTEN_FDNAMES ('unknown' = unnamed)" {
	: >"$T/f"
	bg fdtool mk tcplisten 3 fdtool mk udp 4 sh -c \
		'export LISTEN_FDS=2 LISTEN_PID=$$ LISTEN_FDNAMES=unknown:dns; exec fdsend --serve -f 5 -L "$1"' \
		sh "$S" 5>>"$T/f" 2>"$T/holder.err"
	wait_for_socket "$S"
	run -0 t fdrecv -c "$S"
	[ "${#lines[@]}" -eq 3 ]
	[ "${lines[0]}" = "3 name=unknown kind=file path=$T/f access=wronly flags=append" ]
	assert_matches "${lines[1]}" '^4 name=unknown kind=socket access=rdwr family=inet type=stream state=listening local=127\.0\.0\.1:[0-9]+ backlog=[0-9]+$'
	assert_matches "${lines[2]}" '^5 name=dns kind=socket access=rdwr family=inet type=dgram state=bound local=127\.0\.0\.1:[0-9]+$'
}

@test "-L without socket activation: exit 2, 'not socket-activated'" {
	run -2 t fdsend --serve -L "$S"
	assert_output_lines "fdsend: --listen-fds: LISTEN_FDS and LISTEN_PID are not set (not socket-activated)"
	[ ! -e "$S" ]
}

@test "-L when LISTEN_PID names another process: exit 2 naming both pids" {
	run -2 t env LISTEN_FDS=1 LISTEN_PID=1 sh -c 'echo $$ >"$1"; exec fdsend --serve -L "$2"' \
		sh "$T/pid" "$S"
	assert_output_lines "fdsend: --listen-fds: LISTEN_PID is '1', not this process ($(cat "$T/pid"))"
	[ ! -e "$S" ]
}

# ---- descriptors of another process: --pid, --dup ----

@test "--pid without --dup reopens files: same path and access mode, a fresh offset" {
	printf 'one\ntwo\n' >"$T/f"
	exec 8<"$T/f"
	read -r -u 8 first
	[ "$first" = one ]
	bg server idle "$T/ready" 7>>"$T/f"
	exec 8<&-
	wait_for_file "$T/ready"
	pid=$(child_of "$BG")
	bg fdrecv "$T/r.sock" >"$T/desc"
	r_bg=$BG
	run -0 t fdsend -t 5 --pid "$pid" "$T/r.sock" 7 8
	reap_ok "$r_bg"
	assert_file "$T/desc" "3 name=unknown kind=file path=$T/f access=wronly flags=append" \
		"4 name=unknown kind=file path=$T/f access=rdonly"
	# reopened: read from the start; --dup shares the offset the process left after "one"
	bg fdrecv -i "$T/r.sock" -- cat >"$T/reopened"
	r_bg=$BG
	run -0 t fdsend -t 5 --pid "$pid" "$T/r.sock" 8
	reap_ok "$r_bg"
	assert_file "$T/reopened" one two
	bg fdrecv -i "$T/r.sock" -- cat >"$T/shared"
	r_bg=$BG
	run -0 t fdsend -t 5 --pid "$pid" --dup "$T/r.sock" 8
	reap_ok "$r_bg"
	assert_file "$T/shared" two
}

@test "--pid without --dup on a socket: exit 2, 'use --dup'; with --dup it travels" {
	bg fdtool mk tcplisten 7 server idle "$T/ready"
	wait_for_file "$T/ready"
	pid=$(child_of "$BG")
	run -2 t fdsend -t 1 --pid "$pid" "$T/r.sock" 7
	assert_output_lines "fdsend: pid $pid: fd 7 is a socket, which cannot be reopened: use --dup"
	bg fdrecv "$T/r.sock" >"$T/desc"
	r_bg=$BG
	run -0 t fdsend -t 5 --pid "$pid" --dup "$T/r.sock" 7
	reap_ok "$r_bg"
	grep -Eqx '3 name=unknown kind=socket access=rdwr family=inet type=stream state=listening local=127\.0\.0\.1:[0-9]+ backlog=[0-9]+' "$T/desc"
}

@test "--pid with a descriptor the process does not have: exit 2, 'not open' (with and without --dup)" {
	bg server idle "$T/ready"
	wait_for_file "$T/ready"
	pid=$(child_of "$BG")
	[ ! -e "/proc/$pid/fd/200" ]
	run -2 t fdsend -t 1 --pid "$pid" "$T/r.sock" 200
	assert_output_lines "fdsend: pid $pid: fd 200: not open"
	run -2 t fdsend -t 1 --pid "$pid" --dup "$T/r.sock" 200
	assert_output_lines "fdsend: pid $pid: fd 200: not open"
}

@test "--pid of a process that does not exist: exit 2, 'no such process' (with and without --dup)" {
	gone=$(gone_pid)
	[ ! -e "/proc/$gone" ]
	run -2 t fdsend -t 1 --pid "$gone" --dup "$T/r.sock" 3
	assert_output_lines "fdsend: pid $gone: no such process"
	run -2 t fdsend -t 1 --pid "$gone" "$T/r.sock" 3
	assert_output_lines "fdsend: pid $gone: no such process"
}
