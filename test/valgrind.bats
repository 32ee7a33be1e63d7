#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# The core paths under valgrind: no memory error, no definite leak, and no
# descriptor left open at exit that the tool opened itself (run by 'make valgrind').

load test_helper

setup_file() {
	command -v valgrind >/dev/null || skip "valgrind is not installed"
	! ldd "$ROOT/fdsend" | grep -q libasan || skip "built with SANITIZE=1: valgrind cannot run it"
}

# vg TOOL ARG...: the tool under valgrind, its report in $T/vg.PID (a script,
# so that bg and t can run it under timeout).
eval "base_$(declare -f setup)"
setup() {
	base_setup
	mkdir "$T/bin"
	cat >"$T/bin/vg" <<-EOF
		#!/bin/sh
		tool=\$1; shift
		exec valgrind -q --track-fds=yes --leak-check=full \\
			--errors-for-leak-kinds=definite --error-exitcode=99 \\
			--log-file="$T/vg.%p" "$ROOT/\$tool" "\$@"
	EOF
	chmod +x "$T/bin/vg"
	PATH=$T/bin:$PATH
}

# vg_clean: every report is free of errors and of descriptors the tool opened
# (valgrind marks the ones it was given "<inherited from parent>").
vg_clean() {
	local f bad=0 n=0
	for f in "$T"/vg.*; do
		[ -e "$f" ] || continue
		n=$((n + 1))
		if grep -q 'ERROR SUMMARY: [1-9]\|definitely lost' "$f" ||
		   awk '/Open (file descriptor|AF_UNIX socket|AF_INET socket|AF_INET6 socket|socket) [0-9]+/ {
			     getline nxt; if (nxt !~ /inherited from parent/) bad = 1 }
			END { exit bad }' "$f"; then :; else bad=1; fi
		grep -q 'ERROR SUMMARY: [1-9]\|definitely lost' "$f" && bad=1
		[ "$bad" = 0 ] || { echo "--- $f" >&2; cat "$f" >&2; return 1; }
	done
	[ "$n" -gt 0 ] || { echo "no valgrind report written" >&2; return 1; }
}

@test "valgrind: a named three-descriptor handoff, described by the receiver" {
	: >a
	bg vg fdrecv -t 15 "$S" >out
	wait_for_socket "$S"
	run -0 t vg fdsend -t 15 --fdname x:y:z "$S" 0 1 5 5>>a </dev/null
	reap_ok "$BG"
	[ "$(wc -l <out)" -eq 3 ]
	grep -q '^5 name=z kind=file path=.*/a access=wronly flags=append$' out
	vg_clean
}

@test "valgrind: a refused count, then the right sender; holder and timeouts" {
	bg vg fdrecv -n 2 -t 15 "$S" >out 2>err
	wait_for_socket "$S"
	run -3 t vg fdsend -t 15 "$S" 0 </dev/null
	run -0 t vg fdsend -t 15 "$S" 0 1 </dev/null
	reap_ok "$BG"
	[ "$(wc -l <out)" -eq 2 ]
	run -4 t vg fdrecv -t 0.2 "$S"
	run -4 t vg fdsend -t 0.2 "$S" 0
	vg_clean
}

@test "valgrind: garbage, then an FDS frame with more descriptors than its n, then a good sender; what came is closed" {
	bg vg fdrecv -t 15 "$S" >out 2>err
	wait_for_socket "$S"
	run -0 t fdtool rawsend "$S" 58585858585858585858585858585858
	[[ "$output" == "REFUSED: "* ]]
	run -0 t fdtool rawsend "$S" "$(frame 1 "$(offer 2 1)")$(frame 3 01000000)" 0 0 </dev/null
	[ "$output" = "REFUSED: FDS frame 1: n=1, but 2 descriptors came with it" ]
	run -0 t vg fdsend -t 15 "$S" 0 </dev/null
	reap_ok "$BG"
	[ "$(wc -l <out)" -eq 1 ]
	vg_clean
}

@test "valgrind: a holder serving a TCP listener to three receivers, one refusing" {
	bg vg fdsend --serve --count 3 -t 5 "$S" tcp:127.0.0.1:0 0 </dev/null 2>err
	wait_for_socket "$S"
	run -0 t vg fdrecv -c -t 15 "$S"
	[[ "${lines[0]}" == "3 name=tcp-"*" state=listening local=127.0.0.1:"* ]]
	run -3 t vg fdrecv -c -n 3 -t 15 "$S"
	run -0 t vg fdrecv -c -t 15 --json "$S"
	run -0 t vg fdrecv -c -t 15 "$S"
	reap_ok "$BG"
	wait_gone "$S"
	vg_clean
}

@test "valgrind: two SOCKETs, one handed over and one timing out; fdsend to a plain receiver (exit 6)" {
	bg vg fdrecv -t $((5 * SLOW)) -f 4 "$T/g1" -f 5 "$T/g2" -r true 2>err
	run -0 t vg fdsend -t 15 "$T/g1" 0 </dev/null
	reap_ok "$BG" 4
	assert_file err "fdrecv: $T/g2: timed out waiting for a sender"
	bg peer plainrecv "$S" 0 cat >out
	run -6 t vg fdsend -t 15 "$S" 5 5<err
	reap_ok "$BG"
	assert_file out "fdrecv: $T/g2: timed out waiting for a sender"
	vg_clean
}
