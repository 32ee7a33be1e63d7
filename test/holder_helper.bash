# SPDX-License-Identifier: MIT
# Loaded by holder.bats after test_helper: starting a holder (fdsend --serve) on $S,
# service instances under it, the looping client, and bounded waits on what they do.

# start_holder ARG...: `fdsend --serve ARG...` in the background (ARG includes $S);
# returns once $S is a socket. HOLDER is fdsend's pid, HOLDER_BG its guard's,
# and its warnings go to $T/holder.err.
start_holder() {
	bg fdsend --serve "$@" 2>>"$T/holder.err"
	HOLDER_BG=$BG
	wait_for_socket "$S"
	HOLDER=$(child_of "$HOLDER_BG")
}

# holder_port: the port of the holder's single inet listener, from a describe
# handoff (`... local=ADDR:PORT`); it counts as one handoff.
holder_port() {
	local out
	out=$(t fdrecv -c "$S") || { echo "fdrecv -c $S failed: $out" >&2; return 1; }
	out=${out%%$'\n'*}
	[[ "$out" =~ ^3\ .*\ local=[^\ ]*:([0-9]+)(\ |$) ]] || { echo "no port in: $out" >&2; return 1; }
	echo "${BASH_REMATCH[1]}"
}

# holder_warning PID REASON: the line a holder prints when it drops the receiver
# PID (every process of these tests runs as the user running them).
holder_warning() {
	echo "fdsend: $S: receiver uid $(id -u) pid $1: $2"
}

# start_server [ARG...]: one more service instance, `fdrecv -c $S -- server ARG...`;
# SERVER is its pid (fdrecv execs the server: LISTEN_PID is that pid), SERVER_BG its guard's.
start_server() {
	bg fdrecv -c "$S" -- server "$@" >>"$T/server.out" 2>&1
	SERVER_BG=$BG
	SERVER=$(child_of "$SERVER_BG")
}

# start_client PORT: `server client` requests on 127.0.0.1:PORT in a loop until
# $T/stop exists; "seen PID" lines land in $T/client.out.
start_client() {
	bg server client 127.0.0.1 "$1" "$T/stop" >"$T/client.out" 2>"$T/client.err"
	CLIENT_BG=$BG
}

# stop_client: ends the loop and insists that no request failed.
stop_client() {
	touch "$T/stop"
	reap "$CLIENT_BG"
	local last
	last=$(tail -n 1 "$T/client.out")
	if [ "$REAPED" -ne 0 ] || ! [[ "$last" =~ ^ok=[1-9][0-9]*\ failed=0$ ]]; then
		printf 'client exited %s: %s\n' "$REAPED" "$last" >&2
		cat "$T/client.err" >&2
		return 1
	fi
}

# wait_served_by PID: until the looping client got an answer from server PID.
wait_served_by() {
	wait_for_line "$T/client.out" "^seen $1\$"
}

# sleeping PID COMM: PID runs COMM (its exec done) and sleeps in a wait.
sleeping() {
	[ "$(cat "/proc/$1/comm" 2>/dev/null)" = "$2" ] &&
		[ "$(awk '{print $3}' "/proc/$1/stat")" = S ]
}

# wait_sleeping PID COMM: until PID runs COMM and sleeps in a wait.
wait_sleeping() {
	wait_until sleeping "$1" "$2" && return 0
	echo "pid $1 is not a sleeping $2 after 5 s" >&2
	return 1
}

# signal_pending PID SIGNUM: SIGNUM is pending (blocked) in PID.
signal_pending() {
	local m
	for m in $(awk '$1 == "ShdPnd:" || $1 == "SigPnd:" { print $2 }' "/proc/$1/status"); do
		(( 0x$m & (1 << ($2 - 1)) )) && return 0
	done
	return 1
}

# wait_signal_pending PID SIGNUM: until SIGNUM is pending (blocked) in PID.
wait_signal_pending() {
	wait_until signal_pending "$1" "$2" && return 0
	echo "signal $2 not pending in pid $1 after 5 s" >&2
	return 1
}

# free_port: a TCP port nobody on this host listens on or connects from
# (below the ephemeral range, so no outgoing connection takes it meanwhile).
free_port() {
	local p hex i
	for ((i = 0; i < 100; i++)); do
		p=$((20000 + RANDOM % 12000))
		printf -v hex ':%04X ' "$p"
		grep -q -- "$hex" /proc/net/tcp /proc/net/tcp6 2>/dev/null || { echo "$p"; return 0; }
	done
	return 1
}

# gone_pid: the pid of a process that has exited and been reaped.
gone_pid() {
	sh -c 'echo $$'
}

# wait_for_file PATH: until PATH exists (helpers write ready files whole, by rename).
wait_for_file() {
	wait_until test -e "$1" && return 0
	echo "$1 did not appear within 5 s" >&2
	return 1
}

# assert_matches TEXT REGEX: TEXT matches the extended REGEX whole (BASH_REMATCH set).
assert_matches() {
	[[ "$1" =~ $2 ]] && return 0
	printf 'text:\n%s\n-- does not match:\n%s\n' "$1" "$2" >&2
	return 1
}
