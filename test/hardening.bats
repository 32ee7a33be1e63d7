#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# Hardening: who may hand over (SO_PEERCRED, --allow-uid), the socket files the
# tools create, hostile or broken peers, descriptor exhaustion, and load.

load test_helper

# A whole NOACK handoff of one descriptor: OFFER(count 1, NOACK) then FDS(1).
noack_one() {
	printf '%s%s' "$(frame 1 "$(offer 1 1)")" "$(frame 3 01000000)"
}

# refused_and_closed REASON SUBCMD HEX FD...: `fdtool SUBCMD $S HEX FD...` sends HEX with
# the write end of a pipe (fd 9) attached as FD...; fdrecv answers REFUSED: REASON, warns
# with it, has closed every copy it got (the pipe's read end sees EOF), keeps waiting,
# and then takes a proper handoff.
refused_and_closed() {
	local reason=$1 sub=$2 hex=$3
	shift 3
	: >out
	bg fdrecv "$S" -- fdtool write 3 accepted 2>err
	wait_for_socket "$S"
	run -0 t fdtool mk pipe 8 9 bash -c '
		(echo $BASHPID >pid; exec fdtool "$@" 8<&-)
		exec 9>&-
		timeout 5 cat <&8; echo "read end saw EOF: $?"' _ "$sub" "$S" "$hex" "$@"
	assert_output_lines "REFUSED: $reason" "read end saw EOF: 0"
	wait_for_output err
	assert_file err "fdrecv: $S: sender uid $(id -u) pid $(cat pid): $reason"
	is_waiting "$BG"
	[ -S "$S" ]
	run -0 t fdsend "$S" 5 5>>out
	reap_ok "$BG"
	assert_file out accepted
}

# ---- who may hand over: SO_PEERCRED and --allow-uid ----

@test "uid: root's fdrecv refuses a sender of uid 65534 with the exact messages (fdsend exit 3), then takes root's handoff" {
	need_other_users
	: >out
	bg fdrecv "@$ABS" -- fdtool write 3 from-root 2>err
	wait_for_abstract "$ABS"
	run -3 t sh -c 'echo $$ >pid; exec "$@"' sh "${AS_NOBODY[@]}" fdsend "@$ABS" 0 </dev/null
	pid=$(cat pid)
	assert_output_lines "fdsend: @$ABS: refused by receiver: uid 65534 (pid $pid) is not allowed (see --allow-uid)"
	wait_for_output err
	assert_file err "fdrecv: @$ABS: sender uid 65534 pid $pid: not allowed (see --allow-uid)"
	is_waiting "$BG"
	run -0 t fdsend "@$ABS" 5 5>>out
	reap_ok "$BG"
	assert_file out from-root
	assert_file err "fdrecv: @$ABS: sender uid 65534 pid $pid: not allowed (see --allow-uid)"
}

@test "uid: fdrecv --allow-uid 65534 and --allow-uid nobody take a handoff from uid 65534" {
	need_other_users
	[ "$(id -u nobody 2>/dev/null)" = 65534 ] || skip "user 'nobody' is not uid 65534 here"
	for who in 65534 nobody; do
		: >out
		bg fdrecv --allow-uid "$who" "@$ABS" -- fdtool write 3 "allowed $who" 2>err
		wait_for_abstract "$ABS"
		run -0 t "${AS_NOBODY[@]}" fdsend "@$ABS" 5 5>>out
		assert_output_lines ""
		reap_ok "$BG"
		assert_file out "allowed $who"
		[ ! -s err ]
	done
}

@test "uid: fdsend (uid 65534) refuses a receiver of uid 65533: 'refused the receiver: uid 65533 (pid P) ...' exit 3" {
	need_other_users
	# the receiver lets 65534 in: only fdsend's own check refuses
	bg "${AS_OTHER[@]}" fdrecv --allow-uid 65534 "@$ABS" 2>err
	wait_for_abstract "$ABS"
	recv=$(child_of "$BG")
	run -3 t sh -c 'echo $$ >pid; exec "$@"' sh "${AS_NOBODY[@]}" fdsend "@$ABS" 0 </dev/null
	assert_output_lines "fdsend: @$ABS: refused the receiver: uid 65533 (pid $recv) is not allowed (see --allow-uid)"
	wait_for_output err
	assert_file err "fdrecv: @$ABS: sender uid 65534 pid $(cat pid): refused by sender: uid 65533 (pid $recv) is not allowed (see --allow-uid)"
	is_waiting "$BG"
}

@test "uid: fdsend --allow-uid 65533 (as uid 65534) hands over to a receiver of uid 65533 that allows it back" {
	need_other_users
	: >out
	bg "${AS_OTHER[@]}" fdrecv --allow-uid 65534 "@$ABS" -- fdtool write 3 "to 65533" 2>err
	wait_for_abstract "$ABS"
	run -0 t "${AS_NOBODY[@]}" fdsend --allow-uid 65533 "@$ABS" 5 5>>out
	assert_output_lines ""
	reap_ok "$BG"
	assert_file out "to 65533"
	[ ! -s err ]
}

@test "uid: a holder (uid 65534) refuses a receiver of uid 65533 with a warning and goes on serving its own uid" {
	need_other_users
	bg "${AS_NOBODY[@]}" fdsend --serve "@$ABS" 0 </dev/null 2>holder.err
	wait_for_abstract "$ABS"
	# the receiver lets 65534 in: only the holder's check refuses
	run -3 t sh -c 'echo $$ >pid; exec "$@"' sh "${AS_OTHER[@]}" fdrecv -c --allow-uid 65534 "@$ABS"
	pid=$(cat pid)
	assert_output_lines "fdrecv: @$ABS: refused by sender: uid 65533 (pid $pid) is not allowed (see --allow-uid)"
	wait_for_output holder.err
	assert_file holder.err "fdsend: @$ABS: receiver uid 65533 pid $pid: not allowed (see --allow-uid)"
	run -0 t "${AS_NOBODY[@]}" fdrecv -c "@$ABS"
	assert_output_lines "3 name=unknown kind=chardev path=/dev/null access=rdonly"
	is_waiting "$BG"
	assert_file holder.err "fdsend: @$ABS: receiver uid 65533 pid $pid: not allowed (see --allow-uid)"
}

# ---- the socket files the tools create ----

@test "mode: fdrecv's socket file is 0600 under umask 000, and nothing else is left beside it" {
	mkdir d
	bg sh -c 'umask 000; exec fdrecv "$1"' sh "$T/d/s"
	wait_for_socket d/s
	[ "$(stat -c %a d/s)" = 600 ]
	[ "$(ls -A d)" = s ]
}

@test "mode: fdrecv --socket-mode 0660 gives a 0660 socket file, even under umask 077" {
	mkdir d
	bg sh -c 'umask 077; exec fdrecv --socket-mode 0660 "$1"' sh "$T/d/s"
	wait_for_socket d/s
	[ "$(stat -c %a d/s)" = 660 ]
	[ "$(ls -A d)" = s ]
}

@test "mode: fdsend --serve makes its socket and its unix: listener 0600 under umask 000" {
	mkdir d
	bg sh -c 'umask 000; exec fdsend --serve "$1" "unix:$2"' sh "$T/d/s" "$T/d/svc"
	wait_for_socket d/s
	[ "$(stat -c %a d/s)" = 600 ]
	[ "$(stat -c %a d/svc)" = 600 ]
	[ "$(ls -A d | tr '\n' ' ')" = "s svc " ]
}

@test "mode: fdsend --serve --socket-mode 0660 makes both 0660, even under umask 077" {
	mkdir d
	bg sh -c 'umask 077; exec fdsend --serve --socket-mode 0660 "$1" "unix:$2"' sh "$T/d/s" "$T/d/svc"
	wait_for_socket d/s
	[ "$(stat -c %a d/s)" = 660 ]
	[ "$(stat -c %a d/svc)" = 660 ]
}

@test "a sender that connects the instant the socket file appears, without retrying, is never refused (50 rounds)" {
	# fdsend itself retries on ECONNREFUSED, so it could not tell; connectonce spins
	# until the path exists, connects exactly once, then runs fdsend over fd:7
	: >log
	for ((n = 1; n <= 50; n++)); do
		[ ! -e "$S" ]
		bg fdtool connectonce "$S" 7 fdsend fd:7 5 5>>log
		t fdrecv -t 5 "$S" -- fdtool write 3 "$n" || { echo "round $n: fdrecv failed"; false; }
		reap_ok "$BG" || { echo "round $n: the sender failed"; false; }
	done
	[ "$(cat log)" = "$(seq 50)" ]
}

@test "fdsend --serve replaces a stale socket file and serves on it" {
	fdtool stale "$S"
	[ -S "$S" ]
	bg fdsend --serve --count 1 "$S" 0 </dev/null 2>holder.err
	run -0 t fdrecv -c "$S"
	assert_output_lines "3 name=unknown kind=chardev path=/dev/null access=rdonly"
	reap_ok "$BG"
	[ ! -e "$S" ]
	[ ! -s holder.err ]
}

@test "fdsend --serve on a live listener's socket: 'in use by another listener' (exit 1); the listener still works" {
	: >out
	bg fdrecv "$S" -- fdtool write 3 first
	wait_for_socket "$S"
	ino=$(stat -c %i "$S")
	run -1 t fdsend --serve "$S" 0 </dev/null
	assert_output_lines "fdsend: $S: in use by another listener"
	[ "$(stat -c %i "$S")" = "$ino" ]
	[ "$(ls -A "$T" | tr '\n' ' ')" = "out s.sock " ]
	run -0 t fdsend "$S" 5 5>>out
	reap_ok "$BG"
	assert_file out first
}

@test "an abstract name in use: fdrecv and fdsend --serve exit 1 'in use by another listener'" {
	bg fdrecv "@$ABS"
	wait_for_abstract "$ABS"
	run -1 t fdrecv "@$ABS"
	[ "${#lines[@]}" -eq 1 ]
	[[ "$output" == "fdrecv: @$ABS: in use by another listener"* ]]
	run -1 t fdsend --serve "@$ABS" 0 </dev/null
	[ "${#lines[@]}" -eq 1 ]
	[[ "$output" == "fdsend: @$ABS: in use by another listener"* ]]
	is_waiting "$BG"
}

@test "a directory at the path: both tools exit 1 'exists and is not a socket'; it and its contents stay" {
	mkdir d
	echo keep >d/f
	run -1 t fdrecv "$T/d"
	assert_output_lines "fdrecv: $T/d: exists and is not a socket"
	run -1 t fdsend --serve "$T/d" 0 </dev/null
	assert_output_lines "fdsend: $T/d: exists and is not a socket"
	[ -d d ]
	assert_file d/f keep
	[ "$(ls -A)" = d ]
}

@test "a regular file at the path: fdsend --serve exits 1 'exists and is not a socket'; the file stays" {
	echo keep >f
	run -1 t fdsend --serve "$T/f" 0 </dev/null
	assert_output_lines "fdsend: $T/f: exists and is not a socket"
	assert_file f keep
	[ "$(ls -A)" = f ]
}

@test "a dangling symlink at the path: both tools exit 1; the link stays, same target, nothing created there" {
	ln -s nowhere link
	run -1 t fdrecv "$T/link"
	assert_output_lines "fdrecv: $T/link: exists and is not a socket"
	run -1 t fdsend --serve "$T/link" 0 </dev/null
	assert_output_lines "fdsend: $T/link: exists and is not a socket"
	[ -L link ]
	[ "$(readlink link)" = nowhere ]
	[ ! -e nowhere ]
	[ "$(ls -A)" = link ]
}

@test "a symlink to a live socket: both tools exit 1; the link and the socket behind it are untouched" {
	mkdir d
	: >out
	bg fdrecv "$T/d/real" -- fdtool write 3 real
	wait_for_socket d/real
	ino=$(stat -c %i d/real)
	ln -s d/real link
	run -1 t fdrecv "$T/link"
	assert_output_lines "fdrecv: $T/link: exists and is not a socket"
	run -1 t fdsend --serve "$T/link" 0 </dev/null
	assert_output_lines "fdsend: $T/link: exists and is not a socket"
	[ -L link ]
	[ "$(readlink link)" = d/real ]
	[ "$(stat -c %i d/real)" = "$ino" ]
	[ "$(ls -A d)" = real ]
	run -0 t fdsend "$T/d/real" 5 5>>out
	reap_ok "$BG"
	assert_file out real
}

# (fd:N that is a TCP socket, a pipe, a listening unix socket or not open: socket.bats)

# ---- hostile or broken senders: refused, every descriptor closed, fdrecv goes on ----

@test "hostile: a header cut short (6 bytes, then the sender shuts down): refused with a reason and a warning" {
	: >out
	bg fdrecv "$S" -- fdtool write 3 accepted 2>err
	wait_for_socket "$S"
	run -0 t sh -c 'echo $$ >pid; exec fdtool rawclose "$1" 4644484f0101' sh "$S"
	assert_output_lines "REFUSED: connection closed in the middle of a frame"
	wait_for_output err
	assert_file err "fdrecv: $S: sender uid $(id -u) pid $(cat pid): connection closed in the middle of a frame"
	is_waiting "$BG"
	run -0 t fdsend "$S" 5 5>>out
	reap_ok "$BG"
	assert_file out accepted
}

@test "hostile: an OFFER whose payload is cut short, a descriptor attached: refused, the descriptor closed" {
	hex=$(frame 1 "$(offer 1 0)")
	refused_and_closed "connection closed in the middle of a frame" rawclose "${hex:0:40}" 9
}

@test "hostile: a NOACK OFFER then an FDS header cut short, a descriptor attached: refused, closed" {
	refused_and_closed "connection closed in the middle of a frame" rawclose \
		"$(frame 1 "$(offer 1 1)")4644484f0103" 9
}

@test "hostile: an OFFER of 0xffffffff descriptors, one attached: refused, closed" {
	refused_and_closed "too many descriptors offered" rawsend \
		"$(frame 1 "ffffffff 00000000 01000000 00")" 9
}

@test "hostile: an OFFER with names_len 0xffffffff, a descriptor attached: refused, closed" {
	refused_and_closed "malformed descriptor names" rawsend \
		"$(frame 1 "01000000 00000000 ffffffff 00")" 9
}

@test "hostile: an OFFER with a 256-character name, a descriptor attached: refused, closed" {
	refused_and_closed "invalid descriptor name" rawsend \
		"$(frame 1 "01000000 00000000 $(le32 257)$(printf '61%.0s' {1..256})00")" 9
}

@test "hostile: a NOACK OFFER of 1 with 2 descriptors attached: refused 'more descriptors than announced', both closed" {
	refused_and_closed "more descriptors than announced" rawsend "$(noack_one)" 9 9
}

@test "hostile: SCM_CREDENTIALS beside SCM_RIGHTS (sender sets SO_PASSCRED): the handoff completes, nothing leaks" {
	# fdrecv does not ask for credentials (no SO_PASSCRED on its side), so the kernel
	# delivers only the SCM_RIGHTS part
	bg fdrecv "$S" -- fdtool write 3 via-creds 2>err
	wait_for_socket "$S"
	run -0 t fdtool mk pipe 8 9 bash -c '
		fdtool credsend "$1" "$2" 9 8<&-
		exec 9>&-
		timeout 5 cat <&8; echo "read end saw EOF: $?"' _ "$S" "$(noack_one)"
	assert_output_lines "answer type 4" via-creds "read end saw EOF: 0"
	reap_ok "$BG"
	[ ! -s err ]
}

@test "hostile receiver: GO with a descriptor attached: fdsend exits 3 'descriptors attached to it' and closed it" {
	bg fdtool mk pipe 8 9 fdtool answerfd "$S" 9 8 >fake.out
	wait_for_socket "$S"
	run -3 t fdsend "$S" 0 </dev/null
	assert_output_lines "fdsend: $S: bad answer from receiver: descriptors attached to it"
	reap_ok "$BG"
	assert_file fake.out "offer count=1" "pipe read end saw EOF"
}

@test "hostile receiver: a holder drops one answering GO with a descriptor, closes that descriptor, goes on serving" {
	bg fdsend --serve "$S" 0 </dev/null 2>holder.err
	holder_bg=$BG
	wait_for_socket "$S"
	run -0 t fdtool mk pipe 8 9 sh -c 'echo $$ >pid; exec fdtool answerfd-connect "$1" 9 8' sh "$S"
	# the holder is alive: EOF means it closed the descriptor it was given
	assert_output_lines "offer count=1" "pipe read end saw EOF"
	wait_for_output holder.err
	assert_file holder.err \
		"fdsend: $S: receiver uid $(id -u) pid $(cat pid): bad answer from receiver: descriptors attached to it"
	run -0 t fdrecv -c "$S"
	assert_output_lines "3 name=unknown kind=chardev path=/dev/null access=rdonly"
	is_waiting "$holder_bg"
}

@test "a stalled peer holds a one-shot fdrecv for the 5 s peer timeout only: dropped with a warning, told why; the queued fdsend is served" {
	: >out
	bg fdrecv "$S" -- fdtool write 3 good 2>err
	recv_bg=$BG
	wait_for_socket "$S"
	start=$EPOCHREALTIME
	bg fdtool stall "$S" >stall.out
	stall_bg=$BG
	stall=$(child_of "$stall_bg")
	wait_for_line stall.out '^connected$'
	# a real fdsend, queued behind the staller: it waits 10 s for its go-ahead
	# because the receiver gives the staller 5 s first
	run -0 t fdsend "$S" 5 5>>out
	[ -z "$output" ]
	elapsed=$(( ${EPOCHREALTIME/./} - ${start/./} ))
	reap_ok "$recv_bg"
	assert_file out good
	(( elapsed >= 4500000 && elapsed < 8000000 )) || { echo "served after $elapsed us"; false; }
	assert_file err "fdrecv: $S: sender uid $(id -u) pid $stall: timed out"
	reap_ok "$stall_bg"
	assert_file stall.out connected "REFUSED: timed out"
}

# (the holder: a stalled receiver does not block others -- holder.bats)

# ---- exhaustion ----

@test "RLIMIT_NOFILE 40: fdrecv refuses an offer of 50 with that reason, a bare OFFER or one with descriptors riding on it; the command never runs" {
	bg bash -c 'ulimit -n 40 && exec fdrecv "$1" -- sh -c "echo ran >ran"' _ "$S" 2>err
	wait_for_socket "$S"
	# a bare OFFER is refused on sight; fdsend's, with 50 riding on it, too
	run -0 t fdtool rawsend "$S" "$(frame 1 "$(offer 50 0)")"
	assert_output_lines "REFUSED: cannot hold 50 descriptors (RLIMIT_NOFILE is 40)"
	run -3 t sh -c 'echo $$ >pid; exec fdtool memfds 50 fdsend "$1"' sh "$S"
	assert_output_lines "fdsend: $S: refused by receiver: cannot hold 50 descriptors (RLIMIT_NOFILE is 40)"
	wait_for_line err "pid $(cat pid): "
	[ "$(grep -c ": cannot hold 50 descriptors (RLIMIT_NOFILE is 40)\$" err)" -eq 2 ]
	is_waiting "$BG"
	[ ! -e ran ]
}

@test "ETOOMANYREFS: uid 65534 with RLIMIT_NOFILE 32 sending one descriptor 300 times to a receiver that never reads: exit 1" {
	need_other_users
	bg fdtool sink "@$ABS" >sink.out
	sink_bg=$BG
	wait_for_abstract "$ABS"
	# the kernel checks the sender's descriptors in flight before each sendmsg:
	# the first (253) passes, the second is over RLIMIT_NOFILE
	run t bash -c 'ulimit -n 32 && exec "${@:2}" fdsend --no-ack "$1" $(printf "0 %.0s" {1..300})' \
		_ "@$ABS" "${AS_NOBODY[@]}" </dev/null
	if [ "$status" -eq 0 ] && [ -z "$output" ]; then
		skip "the kernel let uid 65534 have 300 descriptors in flight with RLIMIT_NOFILE 32 (no ETOOMANYREFS)"
	fi
	if [ "$status" -ne 1 ] || [ "${#lines[@]}" -ne 1 ] ||
	   [[ "$output" != "fdsend: @$ABS: too many descriptors in flight (ETOOMANYREFS"* ]]; then
		printf 'fdsend exited %s:\n%s\n' "$status" "$output"
		false
	fi
	reap_ok "$sink_bg"
	assert_file sink.out accepted "peer hung up"
}

# ---- load ----

@test "load: a holder serves 1000 receivers from 20 concurrent loops without a failure or a leaked descriptor" {
	: >f
	bg_guarded $((120 * SLOW)) fdsend --serve --count 1001 "$S" 5 0 5>>f </dev/null 2>holder.err
	holder_bg=$BG
	wait_for_socket "$S"
	holder=$(child_of "$holder_bg")
	base=$(fd_count "$holder")
	loops=()
	for ((n = 0; n < 20; n++)); do
		bg_guarded $((100 * SLOW)) bash -c 'for ((k = 0; k < 50; k++)); do
			fdrecv -c -t 10 "$1" >/dev/null || exit 1; done' _ "$S" 2>"loop$n.err"
		loops+=("$BG")
	done
	for n in "${!loops[@]}"; do
		reap_ok "${loops[$n]}" || { echo "loop $n failed:"; cat "loop$n.err"; false; }
	done
	[ -z "$(cat loop*.err)" ] || { cat loop*.err; false; }
	wait_fd_count "$holder" "$base"
	is_waiting "$holder_bg"
	run -0 t fdrecv -c "$S"
	assert_output_lines "3 name=unknown kind=file path=$T/f access=wronly flags=append" \
		"4 name=unknown kind=chardev path=/dev/null access=rdonly"
	reap_ok "$holder_bg"
	[ ! -e "$S" ]
	[ ! -s holder.err ]
}

# ---- the fuzz corpus ----

@test "the fuzz corpus replays through the frame and offer parsers without a crash" {
	[ -x "$ROOT/test/fuzz-replay" ] || { echo "test/fuzz-replay missing: run 'make helpers'"; false; }
	n=$(ls "$ROOT/test/corpus" | wc -l)
	[ "$n" -gt 0 ]
	run -0 t fuzz-replay "$ROOT"/test/corpus/*
	assert_output_lines "$n inputs replayed"
}
