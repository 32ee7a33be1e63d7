#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# The handoff itself: counts, order and names, placement, LISTEN_*, leaks,
# exit statuses, plain peers, vanishing peers, refusals, timeouts, start order.

load test_helper

@test "fdsend sends fd 0 when no FD is given" {
	echo hello >in
	bg fdrecv "$S" -- sh -c 'cat <&3' >out
	run -0 t fdsend "$S" <in
	reap_ok "$BG"
	assert_file out hello
}

@test "one descriptor arrives at 3 with its name, LISTEN_FDS=1 and LISTEN_PID = the command" {
	bg fdrecv "$S" -- fdtool checkfds 1 >out
	run -0 t fdtool memfds -n 1 fdsend "$S"
	reap_ok "$BG"
	assert_file out "fds 3..3: 1 memfds in order" "LISTEN_FDS=1 LISTEN_PID=(self)" \
		"LISTEN_FDNAMES=fd0:...:fd0"
}

@test "300 descriptors arrive at 3..302 in order with their names" {
	bg fdrecv "$S" -- fdtool checkfds 300 >out
	run -0 t fdtool memfds -n 300 fdsend "$S"
	reap_ok "$BG"
	assert_file out "fds 3..302: 300 memfds in order" "LISTEN_FDS=300 LISTEN_PID=(self)" \
		"LISTEN_FDNAMES=fd0:...:fd299"
}

@test "300 unnamed descriptors are named 'unknown' in LISTEN_FDNAMES" {
	bg fdrecv "$S" -- fdtool checkfds 300 >out
	run -0 t fdtool memfds 300 fdsend "$S"
	reap_ok "$BG"
	assert_file out "fds 3..302: 300 memfds in order" "LISTEN_FDS=300 LISTEN_PID=(self)" \
		"LISTEN_FDNAMES=unknown x 300"
}

@test "10000 descriptors arrive in order with their names; fdrecv raises its soft RLIMIT_NOFILE" {
	[ "$(ulimit -Hn)" = unlimited ] || [ "$(ulimit -Hn)" -ge 10100 ] ||
		skip "hard RLIMIT_NOFILE $(ulimit -Hn) < 10100"
	bg bash -c 'ulimit -Sn 1024 && exec fdrecv "$1" -- fdtool checkfds 10000' _ "$S" >out
	run -0 t fdtool memfds -n 10000 fdsend "$S"
	reap_ok "$BG"
	assert_file out "fds 3..10002: 10000 memfds in order" "LISTEN_FDS=10000 LISTEN_PID=(self)" \
		"LISTEN_FDNAMES=fd0:...:fd9999"
}

@test "under a soft RLIMIT_NOFILE of 40 (hard 4096), fdrecv makes room before the 50 that ride on the OFFER arrive" {
	[ "$(ulimit -Hn)" = unlimited ] || [ "$(ulimit -Hn)" -ge 4096 ] ||
		skip "hard RLIMIT_NOFILE $(ulimit -Hn) < 4096"
	bg bash -c 'ulimit -Sn 40 && ulimit -Hn 4096 && exec fdrecv "$1" -- sh -c "echo \$LISTEN_FDS"' _ "$S" >out
	run -0 t fdtool memfds 50 fdsend "$S"
	reap_ok "$BG"
	assert_file out 50
}

@test "fdrecv refuses an offer beyond its hard RLIMIT_NOFILE with that reason, though the first 252 rode on the OFFER" {
	bg bash -c 'ulimit -n 100 && exec fdrecv "$1" -- true' _ "$S" 2>err
	run -3 t fdtool memfds 300 fdsend "$S"
	[ "$output" = "fdsend: $S: refused by receiver: cannot hold 300 descriptors (RLIMIT_NOFILE is 100)" ]
	wait_for_output err
	is_waiting "$BG"
	[ -S "$S" ]
}

@test "three fds land at 3,4,5 with LISTEN_FDS=3, LISTEN_PID, LISTEN_FDNAMES=x:y:z" {
	: >a; : >b; : >c
	bg fdrecv "$S" -- sh -c '
		echo "$LISTEN_FDS $LISTEN_FDNAMES"
		[ "$LISTEN_PID" = $$ ] && echo "LISTEN_PID is the command"
		echo A >&3; echo B >&4; echo C >&5' >out
	run -0 t fdsend --fdname x:y:z "$S" 5 6 7 5>>a 6>>b 7>>c
	reap_ok "$BG"
	assert_file out "3 x:y:z" "LISTEN_PID is the command"
	assert_file a A
	assert_file b B
	assert_file c C
}

@test "default mode overrides LISTEN_* variables the caller had set" {
	bg env LISTEN_FDS=9 LISTEN_PID=1 LISTEN_FDNAMES=bogus fdrecv "$S" -- sh -c '
		echo "$LISTEN_FDS $LISTEN_FDNAMES"; [ "$LISTEN_PID" = $$ ] && echo pid-ok' >out
	run -0 t fdsend "$S" 0 </dev/null
	reap_ok "$BG"
	assert_file out "1 unknown" pid-ok
}

@test "-f places fds at the listed numbers (repeatable) and unsets LISTEN_* the caller had set" {
	: >a; : >b; : >c
	bg env LISTEN_FDS=9 LISTEN_PID=1 LISTEN_FDNAMES=bogus fdrecv -f 7,5 -f 9 "$S" -- sh -c '
		echo "${LISTEN_FDS-unset} ${LISTEN_PID-unset} ${LISTEN_FDNAMES-unset}"
		echo A >&7; echo B >&5; echo C >&9' >out
	run -0 t fdsend --fdname x:y:z "$S" 5 6 7 5>>a 6>>b 7>>c
	reap_ok "$BG"
	assert_file out "unset unset unset"
	assert_file a A
	assert_file b B
	assert_file c C
}

@test "-f targets that collide with where received fds land (or already hold them) are honoured" {
	for targets in 3,4,5 5,4,3 4,5,3 5,6,7 7,6,5 6,7,8 8,7,6 9,8,7 4,3,9 6,5,4; do
		: >a; : >b; : >c
		bg fdrecv -f "$targets" "$S" -- sh -c 'echo A >&$1; echo B >&$2; echo C >&$3' sh ${targets//,/ }
		run -0 t fdsend "$S" 5 6 7 5>>a 6>>b 7>>c
		reap_ok "$BG"
		[ "$(cat a)$(cat b)$(cat c)" = ABC ] || { echo "targets $targets: a=$(cat a) b=$(cat b) c=$(cat c)"; false; }
	done
}

@test "a caller fd on a -f target is replaced; other caller fds pass through" {
	echo mine >mine; : >a
	bg fdrecv -f 6 "$S" -- sh -c 'echo via-6 >&6; cat <&8' 6<mine 8<mine >out
	run -0 t fdsend "$S" 5 5>>a
	reap_ok "$BG"
	assert_file a via-6
	assert_file out mine
}

@test "-f implies a count: a handoff of another size is refused" {
	bg fdrecv -f 3,4 "$S" -- true 2>err
	run -3 t fdsend "$S" 0 </dev/null
	[[ "$output" == "fdsend: $S: refused by receiver: "* ]]
	is_waiting "$BG"
}

@test "-i places the descriptor on stdin" {
	echo input >in
	bg fdrecv -i "$S" -- cat >out
	run -0 t fdsend "$S" 5 5<in
	reap_ok "$BG"
	assert_file out input
}

@test "-o places the descriptor on stdout, and LISTEN_* are unset" {
	: >f
	bg fdrecv -o "$S" -- sh -c 'echo "out ${LISTEN_FDS-unset}"' >own
	run -0 t fdsend "$S" 5 5>>f
	reap_ok "$BG"
	assert_file f "out unset"
	[ ! -s own ]
}

@test "-e places the descriptor on stderr" {
	: >f
	bg fdrecv -e "$S" -- sh -c 'echo oops >&2' 2>own
	run -0 t fdsend "$S" 5 5>>f
	reap_ok "$BG"
	assert_file f oops
	[ ! -s own ]
}

@test "-o -i: targets follow the command-line order (first fd to 1, second to 0)" {
	echo copied >in; : >out
	bg fdrecv -o -i "$S" -- cat
	run -0 t fdsend "$S" 5 6 5>>out 6<in
	reap_ok "$BG"
	assert_file out copied
}

@test "fdsend -f N goes before the positional FDs; fewer names leave 'unknown'" {
	: >a; : >b
	bg fdrecv "$S" -- sh -c 'echo "$LISTEN_FDNAMES"; echo X >&3; echo Y >&4' >out
	run -0 t fdsend --fdname first -f 6 "$S" 5 5>>a 6>>b
	reap_ok "$BG"
	assert_file out first:unknown
	assert_file b X
	assert_file a Y
}

@test "--fdname is repeatable and an empty entry (a::c) means unnamed" {
	bg fdrecv "$S" -- sh -c 'echo "$LISTEN_FDNAMES"' >out
	run -0 t fdsend --fdname a::c --fdname d "$S" 0 0 0 0 </dev/null
	reap_ok "$BG"
	assert_file out a:unknown:c:d
}

# lsfd_expected FILE EXTRA...: the fd list in FILE with EXTRA numbers added, sorted.
lsfd_expected() {
	local f=$1
	shift
	printf '%s\n' $(cat "$f") "$@" | sort -nu | tr '\n' ' ' | sed 's/ $//'
}

@test "the command sees only the caller's fds plus the placed ones (no fdrecv fd leaks)" {
	bg fdtool lsfd 7</dev/null >base
	reap_ok "$BG"
	bg fdrecv "$S" -- fdtool lsfd 7</dev/null >out
	run -0 t fdsend "$S" 5 5</dev/null
	reap_ok "$BG"
	[ "$(cat out)" = "$(lsfd_expected base 3)" ]
	grep -qw 7 out
}

@test "no fdrecv fd leaks with -f placement either" {
	bg fdtool lsfd 7</dev/null >base
	reap_ok "$BG"
	bg fdrecv -f 9,12 "$S" -- fdtool lsfd 7</dev/null >out
	run -0 t fdsend "$S" 5 5 5</dev/null
	reap_ok "$BG"
	[ "$(cat out)" = "$(lsfd_expected base 9 12)" ]
}

@test "fdrecv closes the fd:N socket before running the command" {
	run -0 t fdtool mk pair-stream 20 21 bash -c '
		exec 3>&-
		fdtool lsfd 20>&- 21>&- >base
		fdrecv fd:20 -- fdtool lsfd 21>&- >out &
		fdsend fd:21 0 20>&- </dev/null; wait $!'
	[ "$(cat out)" = "$(lsfd_expected base 3)" ]
}

@test "fdrecv exits with the command's status (42) while fdsend succeeds" {
	bg fdrecv "$S" -- sh -c 'exit 42'
	run -0 t fdsend "$S" 0 </dev/null
	reap_ok "$BG" 42
}

@test "fdrecv exits 126 at once, binding nothing, when the command is not executable" {
	printf 'echo should not run\n' >noexec
	chmod 644 noexec
	run -126 t fdrecv -t 5 "$S" -- "$T/noexec"
	[ "$output" = "fdrecv: $T/noexec: Permission denied" ]
	[ ! -e "$S" ]
}

@test "fdrecv exits 126 when exec fails after the handoff (interpreter is a directory)" {
	printf '#!%s\n' "$T" >script
	chmod 755 script
	bg fdrecv -t 5 "$S" -- "$T/script" >out 2>err
	run -0 t fdsend -t 5 "$S" 0 </dev/null
	reap_ok "$BG" 126
	[[ "$(cat err)" == "fdrecv: $T/script"* ]]
	[ ! -s out ]
}

@test "fdrecv exits 127 when exec fails with ENOENT (missing interpreter)" {
	printf '#!/nonexistent/interpreter\n' >script
	chmod 755 script
	bg fdrecv -t 5 "$S" -- "$T/script" 2>err
	run -0 t fdsend -t 5 "$S" 0 </dev/null
	reap_ok "$BG" 127
	[[ "$(cat err)" == "fdrecv: $T/script"* ]]
}

@test "a plain sender (1 byte + SCM_RIGHTS, no protocol) is accepted, fds unnamed" {
	: >a; : >b
	bg fdrecv "$S" -- sh -c 'echo "$LISTEN_FDS $LISTEN_FDNAMES"; echo one >&3; echo two >&4' >out
	wait_for_socket "$S"
	run -0 t fdtool plainsend "$S" 5 6 5>>a 6>>b
	reap_ok "$BG"
	assert_file out "2 unknown:unknown"
	assert_file a one
	assert_file b two
}

@test "fdsend --no-ack reaches a plain receiver in its first recvmsg" {
	echo data >file1; echo data >file2
	bg fdtool plainrecv "$S" >out
	wait_for_socket "$S"
	run -0 t fdsend --no-ack "$S" 5 6 5<file1 6<file2
	reap_ok "$BG"
	assert_file out "first frame: magic=FDHO version=2 type=1" "#0 $(realpath file1)" \
		"#1 $(realpath file2)" "descriptors: 2"
}

@test "fdsend --no-ack works with fdrecv too" {
	: >out
	bg fdrecv "$S" -- fdtool write 3 no-ack
	run -0 t fdsend --no-ack "$S" 5 5>>out
	reap_ok "$BG"
	assert_file out no-ack
}

@test "a receiver that greets, reads the offer and closes: fdsend exits 3 'closed the connection without answering'" {
	bg fdtool fakerecv vanish "$S" >offer
	wait_for_socket "$S"
	run -3 t fdsend --fdname a "$S" 0 </dev/null
	[ "$output" = "fdsend: $S: receiver closed the connection without answering" ]
	reap_ok "$BG"
	assert_file offer "offer v2 count=1 flags=1 names=a"
}

@test "a receiver that greets, takes the fds and closes: fdsend exits 3" {
	bg fdtool fakerecv take-vanish "$S" >offer
	wait_for_socket "$S"
	run -3 t fdsend "$S" 0 0 </dev/null
	[ "$output" = "fdsend: $S: receiver closed the connection without answering" ]
	reap_ok "$BG"
	assert_file offer "offer v2 count=2 flags=1 names=|" "fds frames: 2 descriptors"
}

@test "a receiver that never answers: fdsend -t 0.5 exits 4 'no answer from receiver (timed out)'" {
	bg fdtool fakerecv mute "$S" >offer
	wait_for_socket "$S"
	start=$EPOCHREALTIME
	run -4 t fdsend -t 0.5 "$S" 0 </dev/null
	[ "$output" = "fdsend: $S: no answer from receiver (timed out)" ]
	(( ${EPOCHREALTIME/./} - ${start/./} < 5000000 ))
	reap_ok "$BG"
}

@test "no receiver: fdsend -t 0.3 exits 4 'timed out waiting for a receiver'" {
	start=$EPOCHREALTIME
	run -4 t fdsend -t 0.3 "$S" 0 </dev/null
	[ "$output" = "fdsend: $S: timed out waiting for a receiver" ]
	(( ${EPOCHREALTIME/./} - ${start/./} < 5000000 ))
}

@test "a stale socket file: fdsend -t 0.3 exits 4 'no receiver listening (connection refused)'" {
	fdtool stale "$S"
	run -4 t fdsend -t 0.3 "$S" 0 </dev/null
	[ "$output" = "fdsend: $S: no receiver listening (connection refused)" ]
}

@test "no sender: fdrecv -t 0.3 exits 4 and removes its socket file" {
	mkdir d
	start=$EPOCHREALTIME
	run -4 t fdrecv -t 0.3 "$T/d/s" -- true
	[ "${#lines[@]}" -eq 1 ]
	[[ "$output" == "fdrecv: $T/d/s: "*"timed out"* ]]
	(( ${EPOCHREALTIME/./} - ${start/./} < 5000000 ))
	dir_empty d
}

@test "count mismatch: fdsend exits 3 'refused by receiver', fdrecv warns and accepts a correct sender" {
	mkdir d
	sock=$T/d/s
	: >out
	bg fdrecv -n 2 "$sock" -- fdtool write 3 accepted 2>err
	wait_for_socket "$sock"
	run -3 t sh -c 'echo $$ >pid; exec fdsend "$1" 0 0 0' sh "$sock" </dev/null
	[ "${#lines[@]}" -eq 1 ]
	[[ "$output" =~ ^"fdsend: $sock: refused by receiver: "(.+)$ ]]
	reason=${BASH_REMATCH[1]}
	wait_for_output err
	assert_file err "fdrecv: $sock: sender uid $(id -u) pid $(cat pid): $reason"
	is_waiting "$BG"
	[ -S "$sock" ]
	run -0 t fdsend "$sock" 5 5 5>>out
	reap_ok "$BG"
	assert_file out accepted
	dir_empty d
}

@test "count mismatch with fdrecv -t: the sender is refused, then fdrecv times out (exit 4)" {
	mkdir d
	bg fdrecv -n 2 -t 3 "$T/d/s" -- true 2>err
	wait_for_socket d/s
	# fdrecv's 3 s run from its start: fdsend must not wait past them
	run -3 t fdsend -t 10 "$T/d/s" 0 </dev/null
	[[ "$output" == "fdsend: $T/d/s: refused by receiver: "* ]]
	reap_ok "$BG" 4
	dir_empty d
}

@test "receiver first: 100 rounds of 'fdrecv S -- cmd & fdsend S 5' without a failure" {
	: >log
	for ((i = 1; i <= 100; i++)); do
		bg fdrecv "$S" -- fdtool write 3 "$i"
		t fdsend "$S" 5 5>>log || { echo "round $i: fdsend failed"; false; }
		reap_ok "$BG" || { echo "round $i: fdrecv failed"; false; }
	done
	[ "$(cat log)" = "$(seq 100)" ]
	[ ! -e "$S" ]
}

@test "sender first: 100 rounds of 'fdsend S 5 & fdrecv S -- cmd' without a failure" {
	: >log
	for ((i = 1; i <= 100; i++)); do
		bg fdsend "$S" 5 5>>log
		t fdrecv "$S" -- fdtool write 3 "$i" || { echo "round $i: fdrecv failed"; false; }
		reap_ok "$BG" || { echo "round $i: fdsend failed"; false; }
	done
	[ "$(cat log)" = "$(seq 100)" ]
	[ ! -e "$S" ]
}

@test "util-linux forms: 'fdsend -a -b --fd N name' and 'fdrecv -a -f N name --run cmd...'" {
	: >out
	bg fdrecv -a -f 3 "$ABS" --run sh -c 'echo "${LISTEN_FDS-unset} $1" >&3' sh util-linux
	run -0 t fdsend -a -b --fd 5 "$ABS" 5>>out
	reap_ok "$BG"
	assert_file out "unset util-linux"
}

@test "util-linux forms: 'fdrecv -a -i name --run cat' with 'fdsend -a -b --fd N name'" {
	echo via-stdin >in
	bg fdrecv -a -i "$ABS" --run cat >out
	run -0 t fdsend -a -b --fd 5 "$ABS" 5<in
	reap_ok "$BG"
	assert_file out via-stdin
}

@test "with stdout closed, fdrecv opens /dev/null there: the received file gets no describe line" {
	: >got
	bg fdrecv -t 5 "$S" >&- 2>err
	wait_for_socket "$S"
	run -0 t fdsend "$S" 5 5>>got
	reap_ok "$BG"
	[ ! -s got ]
	[ ! -s err ]
}
