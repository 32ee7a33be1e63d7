#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# Feeding servers the way they expect: --export conventions, O_NONBLOCK on
# request (and shared by every holder), the backlog in the describe view,
# taking a socket over by its address, the holder's log, and namespaces.

load test_helper
load holder_helper

# env_and_flags: what a command sees: the convention variables, then fd 3's flags.
env_and_flags() {
	cat <<-'EOF'
	env | grep -E '^(LISTEN_|NGINX|EINHORN_)' | sort
	printf 'fd3 %s\n' "$(awk '$1 == "flags:" { print $2 }' /proc/self/fdinfo/3)"
	EOF
}

# nonblocking OCTAL_FLAGS: the fdinfo flags have O_NONBLOCK (04000).
nonblocking() {
	(( 0$1 & 04000 ))
}

@test "--export nginx: NGINX=3;4; for COMMAND, no LISTEN_* variable, the descriptors made non-blocking" {
	bg fdsend -t 10 "$S" tcp:127.0.0.1:0 tcp:127.0.0.1:0
	run -0 t fdrecv -t 10 --export nginx "$S" -- sh -c "$(env_and_flags)"
	reap_ok "$BG"
	[ "${lines[0]}" = "NGINX=3;4;" ]
	[ "${#lines[@]}" -eq 2 ]
	nonblocking "${lines[1]#fd3 }"
}

@test "--export einhorn: EINHORN_FD_COUNT and EINHORN_FD_0.., no LISTEN_* variable, flags left alone" {
	bg fdsend -t 10 "$S" 0 1
	run -0 t fdrecv -t 10 "$S" --export einhorn -- sh -c "$(env_and_flags)"
	reap_ok "$BG"
	[ "${lines[0]}" = "EINHORN_FD_0=3" ]
	[ "${lines[1]}" = "EINHORN_FD_1=4" ]
	[ "${lines[2]}" = "EINHORN_FD_COUNT=2" ]
	[ "${#lines[@]}" -eq 4 ]
}

@test "--export none: no variable at all; --export systemd (the default) sets LISTEN_*" {
	bg fdsend -t 10 "$S" 0
	LISTEN_FDS=9 run -0 t fdrecv -t 10 "$S" --export none -- sh -c "$(env_and_flags)"
	reap_ok "$BG"
	[ "${#lines[@]}" -eq 1 ]
	bg fdsend -t 10 "$S" 0
	run -0 t fdrecv -t 10 "$S" --export systemd -- sh -c "$(env_and_flags)"
	reap_ok "$BG"
	[ "${lines[0]}" = "LISTEN_FDNAMES=unknown" ]
	[ "${lines[1]}" = "LISTEN_FDS=1" ]
	[[ "${lines[2]}" =~ ^LISTEN_PID=[0-9]+$ ]]
}

@test "--export: usage errors (an unknown style, systemd with -f, nginx with --clear-nonblock, no COMMAND)" {
	run -2 t fdrecv --export upstart "$S" -- true
	assert_usage_error fdrecv
	[ "${lines[0]}" = "fdrecv: invalid --export: 'upstart' (expected systemd, nginx, einhorn or none)" ]
	run -2 t fdrecv --export systemd -f 5 "$S" -- true
	[ "${lines[0]}" = "fdrecv: --export systemd places the descriptors at 3, 4, ...; it takes no -f, -i, -o or -e" ]
	run -2 t fdrecv --export nginx --clear-nonblock "$S" -- true
	[ "${lines[0]}" = "fdrecv: --export nginx sets O_NONBLOCK; it takes no --clear-nonblock" ]
	run -2 t fdrecv --export nginx "$S"
	[ "${lines[0]}" = "fdrecv: --export needs a COMMAND" ]
	[ ! -e "$S" ]
}

@test "fdsend --nonblock makes tcp:, udp: and unix: sockets non-blocking; without it they block" {
	bg fdsend -t 10 --nonblock "$S" tcp:127.0.0.1:0 udp:127.0.0.1:0 "unix:$T/u.sock"
	run -0 t fdrecv -t 10 "$S"
	reap_ok "$BG"
	[ "${#lines[@]}" -eq 3 ]
	for l in "${lines[@]}"; do
		[[ "$l" == *" access=rdwr flags=nonblock "* ]]
	done
	rm "$T/u.sock"
	bg fdsend -t 10 "$S" tcp:127.0.0.1:0 "unix:$T/u.sock"
	run -0 t fdrecv -t 10 "$S"
	reap_ok "$BG"
	for l in "${lines[@]}"; do
		[[ "$l" != *nonblock* ]]
	done
}

@test "O_NONBLOCK is shared: fdrecv --set-nonblock on a holder's socket shows in the holder's next handoff, --clear-nonblock clears it" {
	start_holder "$S" tcp:127.0.0.1:0
	run -0 t fdrecv -c "$S"
	[[ "$output" != *nonblock* ]]
	run -0 t fdrecv -c --set-nonblock "$S" -- true
	run -0 t fdrecv -c "$S"
	[[ "$output" == *" access=rdwr flags=nonblock "* ]]
	run -0 t fdrecv -c --clear-nonblock "$S"
	[[ "$output" != *nonblock* ]]
	run -0 t fdrecv -c "$S"
	[[ "$output" != *nonblock* ]]
}

@test "the describe view shows a TCP listener's backlog, also in JSON" {
	bg fdsend -t 10 --backlog 77 "$S" tcp:127.0.0.1:0
	run -0 t fdrecv -t 10 "$S"
	reap_ok "$BG"
	assert_matches "$output" '^3 name=tcp-[0-9]+ kind=socket access=rdwr family=inet type=stream state=listening local=127\.0\.0\.1:[0-9]+ backlog=77$'
	bg fdsend -t 10 --backlog 5 "$S" tcp:127.0.0.1:0
	run -0 t fdrecv -t 10 --json "$S"
	reap_ok "$BG"
	[[ "${lines[1]}" == *',"backlog":"5"}' ]]
}

# start_owner: a process holding a TCP listener at fd 9, a UDP socket at 7 and an
# unbound TCP socket at 5 (none at 3); OWNER is its pid, TPORT and UPORT the ports.
start_owner() {
	bg fdtool mk tcplisten 9 fdtool mk udp 7 fdtool mk tcp 5 \
		sh -c 'echo "$FDTOOL_PORT_9 $FDTOOL_PORT_7" >ports.tmp && mv ports.tmp ports && exec sleep 60'
	wait_for_file "$T/ports"
	read -r TPORT UPORT <"$T/ports"
	OWNER=$(child_of "$BG")
	wait_sleeping "$OWNER" sleep
}

@test "--pid with an address takes the process's listening socket bound there, whatever its number (here fd 9)" {
	start_owner
	bg fdrecv -t 10 "$S"
	recv=$BG
	run -0 t fdsend -t 10 --pid "$OWNER" "$S" "tcp:127.0.0.1:$TPORT"
	assert_output_lines ""
	reap "$recv"
	bg fdrecv -t 10 "$S" >"$T/out"
	recv=$BG
	run -0 t fdsend -t 10 --pid "$OWNER" "$S" "udp:127.0.0.1:$UPORT"
	reap_ok "$recv"
	assert_file "$T/out" "3 name=udp-$UPORT kind=socket access=rdwr family=inet type=dgram state=bound local=127.0.0.1:$UPORT"
}

@test "--pid with an address: the socket that arrives is the very listener (a client of the port is served through it)" {
	start_owner
	# the owner never accepts: only a server holding the same socket answers
	bg fdrecv -t 10 "$S" -- server
	srv_bg=$BG
	run -0 t fdsend -t 10 --pid "$OWNER" "$S" "tcp:127.0.0.1:$TPORT"
	srv=$(child_of "$srv_bg")
	run -0 t server ask 127.0.0.1 "$TPORT"
	assert_output_lines "pid $srv"
}

@test "--pid with unix:NAME finds the socket bound at that short name's path" {
	mkdir -m 700 "$T/run"
	export XDG_RUNTIME_DIR=$T/run
	name=svc-$$-$RANDOM
	if [ "$(id -u)" -eq 0 ]; then   # root's bare names are in /run/fdsend
		[ -e /run/fdsend ] || CLEANUP_DIRS+=(/run/fdsend)
		CLEANUP_FILES+=("/run/fdsend/$name")
	fi
	bg fdsend -t 10 "$T/a.sock" "unix:$name"
	bg fdrecv -t 10 "$T/a.sock" -- server idle "$T/idle.ready"
	owner_bg=$BG
	wait_for_file "$T/idle.ready"
	owner=$(child_of "$owner_bg")
	bg fdrecv -t 10 "$S"
	recv=$BG
	run -0 t fdsend -t 10 --pid "$owner" "$S" "unix:$name"
	reap_ok "$recv"
}

@test "--pid with an address: no match lists what the process has (exit 2), and a stream address never takes a datagram socket" {
	start_owner
	run -2 t fdsend -t 1 --pid "$OWNER" "$S" "tcp:127.0.0.1:$UPORT"
	assert_matches "$output" "^fdsend: pid $OWNER: no listening socket bound to 127\\.0\\.0\\.1:$UPORT; it has: .*fd 9 stream 127\\.0\\.0\\.1:$TPORT listening.*\$"
	[[ "$output" == *"fd 7 dgram 127.0.0.1:$UPORT"* ]]
	run -2 t fdsend -t 1 --pid "$OWNER" "$S" "udp:127.0.0.1:$TPORT"
	assert_matches "$output" "^fdsend: pid $OWNER: no datagram socket bound to 127\\.0\\.0\\.1:$TPORT; it has: .*\$"
	run -2 t fdsend -t 1 --pid "$OWNER" "$S" "unix:$T/none.sock"
	assert_matches "$output" "^fdsend: pid $OWNER: no listening socket bound to $T/none\\.sock; it has: .*\$"
	[ ! -e "$S" ]
}

@test "fdsend --serve -v logs each handoff and each refusal with time, pid, uid, command and outcome" {
	start_holder -v "$S" 0 </dev/null
	run -0 t fdrecv -c "$S"
	run -0 t fdtool rawsend "$S" 5858585858585858585858585858585858
	wait_for_line "$T/holder.err" 'refused'
	uid=$(id -u)
	run cat "$T/holder.err"
	[ "${#lines[@]}" -eq 2 ]
	assert_matches "${lines[0]}" "^fdsend: $S: [0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3} receiver pid [0-9]+ uid $uid \\(fdrecv\\): handed 1 descriptor\$"
	assert_matches "${lines[1]}" "^fdsend: $S: [0-9T:.-]+ receiver pid [0-9]+ uid $uid \\(fdtool\\): refused: bad answer from receiver: not an fdsend protocol frame \\(bad magic\\)\$"
}

@test "fdsend -v without --serve is a usage error" {
	run -2 t fdsend -v "$S" 0
	assert_usage_error fdsend
	[ "${lines[0]}" = "fdsend: --verbose goes with --serve" ]
}

# need_netns: unshare can make a user and network namespace here.
need_netns() {
	command -v unshare >/dev/null || skip "unshare is not installed"
	unshare -rn true 2>/dev/null || skip "no user and network namespaces here (unshare -rn fails)"
}

@test "namespaces: a TCP listener made here serves this 127.0.0.1 from a process in a fresh network namespace" {
	need_netns
	bg unshare -rn sh -c 'ip link 2>/dev/null | grep -c "state UP" >uplinks; exec fdrecv -t 10 "$0" -- server -r "$1"' "$S" "$T/port"
	inner=$BG
	run -0 t fdsend -t 10 "$S" tcp:127.0.0.1:0
	wait_for_file "$T/port"
	port=$(cat "$T/port")
	run -0 t server ask 127.0.0.1 "$port"
	assert_matches "$output" '^pid [0-9]+$'
	# the server has no network of its own: its namespace is not this one
	srv=$(child_of "$inner")
	[ "$(readlink "/proc/$srv/ns/net")" != "$(readlink /proc/self/ns/net)" ]
}

@test "namespaces: an abstract name does not cross network namespaces, and the timeout says so" {
	need_netns
	bg unshare -rn fdrecv -t 10 "@$ABS"
	inner=$BG
	wait_until test -n "$(pgrep -P "$inner")"
	run -4 t fdsend -t 0.5 "@$ABS" 0
	assert_output_lines "fdsend: @$ABS: timed out waiting for a receiver (abstract names are per network namespace)"
}

@test "namespaces: root in a user namespace is its creator to a peer outside" {
	need_netns
	: >"$T/out"
	bg fdrecv -t 10 "$S" -- fdtool write 3 accepted
	run -0 t unshare -r fdsend -t 10 "$S" 5 5>>"$T/out"
	reap_ok "$BG"
	assert_file "$T/out" accepted
}

@test "namespaces: a peer whose uid is not mapped appears as 65534 inside, which --allow-uid 65534 admits" {
	need_netns
	[ "$(id -u)" -eq 0 ] || skip "needs root to act as uid 65534"
	command -v setpriv >/dev/null || skip "setpriv is not installed"
	inside=(setpriv --reuid=65534 --regid=65534 --clear-groups unshare -r)
	"${inside[@]}" true 2>/dev/null || skip "uid 65534 cannot make a user namespace here"
	# inside, only 65534 is mapped (as root): root outside is unmapped, so 65534 too
	bg "${inside[@]}" fdrecv -t 10 "@$ABS" 2>"$T/err"
	wait_for_abstract "$ABS"
	run -3 t fdsend --allow-uid 65534 -t 10 "@$ABS" 0 </dev/null
	assert_matches "$output" "^fdsend: @$ABS: refused by receiver: uid 65534 \(pid [0-9]+\) is not allowed \(see --allow-uid\)\$"
	kill -TERM "$BG"
	reap "$BG"
	bg "${inside[@]}" fdrecv --allow-uid 65534 -t 10 "@$ABS" >"$T/out"
	wait_for_abstract "$ABS"
	run -0 t fdsend --allow-uid 65534 -t 10 "@$ABS" 0 </dev/null
	reap_ok "$BG"
	assert_file "$T/out" "3 name=unknown kind=chardev path=/dev/null access=rdonly"
}
