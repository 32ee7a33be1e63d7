#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# The wire protocol: what fdsend offers, and how fdrecv answers bad frames
# (REFUSED, a warning, every received descriptor closed, then it keeps waiting).

load test_helper

# refused_then_accepts HEX [FD...]: fdrecv refuses these bytes with a reason, warns
# naming the peer's pid, keeps listening, then takes a proper handoff.
refused_then_accepts() {
	: >out
	bg fdrecv "$S" -- fdtool write 3 accepted 2>err
	wait_for_socket "$S"
	run -0 t sh -c 'echo $$ >pid; exec fdtool rawsend "$@"' sh "$S" "$@"
	[[ "$output" =~ ^"REFUSED: "(.+)$ ]]
	reason=${BASH_REMATCH[1]}
	wait_for_output err
	assert_file err "fdrecv: $S: sender uid $(id -u) pid $(cat pid): $reason"
	is_waiting "$BG"
	[ -S "$S" ]
	run -0 t fdsend "$S" 5 5>>out
	reap_ok "$BG"
	assert_file out accepted
}

@test "fdsend's OFFER is version 2 and carries the count, flag bit 0 (NOWAIT) and the names (empty = unnamed)" {
	bg fdtool fakerecv refuse:no "$S" >offer
	wait_for_socket "$S"
	run -3 t fdsend --fdname a::c "$S" 0 0 0 </dev/null
	reap_ok "$BG"
	assert_file offer "offer v2 count=3 flags=1 names=a||c"
}

@test "fdsend --no-ack sends the same OFFER and exits 0 without waiting for an answer" {
	bg fdtool fakerecv mute "$S" >offer
	wait_for_socket "$S"
	run -0 t fdsend --no-ack --fdname x "$S" 0 </dev/null
	reap_ok "$BG"
	assert_file offer "offer v2 count=1 flags=1 names=x"
}

@test "a 255-character name travels intact" {
	name=$(printf 'n%.0s' {1..255})
	bg fdrecv "$S" -- sh -c 'echo "$LISTEN_FDNAMES"' >out
	run -0 t fdsend --fdname "$name" "$S" 0 </dev/null
	reap_ok "$BG"
	assert_file out "$name"
}

@test "a REFUSED frame's reason is shown verbatim: 'refused by receiver: REASON' (exit 3)" {
	bg fdtool fakerecv "refuse:not today, thanks" "$S" >offer
	wait_for_socket "$S"
	run -3 t fdsend "$S" 0 </dev/null
	[ "$output" = "fdsend: $S: refused by receiver: not today, thanks" ]
	reap_ok "$BG"
}

@test "fdrecv refuses an OFFER with unknown flag bits, warns, and keeps waiting" {
	refused_then_accepts "$(frame 1 "$(offer 1 2)")"
}

@test "fdrecv refuses an OFFER of 0 descriptors and keeps waiting" {
	refused_then_accepts "$(frame 1 "$(offer 0 0)")"
}

@test "fdrecv takes a later version's OFFER (version 3, extra fields after the names)" {
	: >out
	bg fdrecv "$S" -- fdtool write 3 accepted 2>err
	wait_for_socket "$S"
	# count 1, flags NOACK, names_len 1, one unnamed, then 4 bytes of a later version
	hex=$(frame 1 0100000001000000010000000064656164)$(frame 3 01000000)
	run -0 t fdtool rawsend "$S" "${hex:0:8}03${hex:10}" 5 5>>out
	[ "$output" = "answer type 4" ]
	reap_ok "$BG"
	assert_file out accepted
	[ ! -s err ]
}

@test "fdrecv refuses protocol version 0 and keeps waiting" {
	hex=$(frame 1 "$(offer 1 0)")
	refused_then_accepts "${hex:0:8}00${hex:10}"
}

@test "fdrecv refuses bytes without the magic (and no descriptors) and keeps waiting" {
	refused_then_accepts "$(printf '58%.0s' {1..24})"
}

@test "a reason with control characters is printed with \\xNN in their place, on one line" {
	bg fdtool fakerecv $'refuse:ok\e[2J\nfdsend: all delivered' "$S" >offer
	wait_for_socket "$S"
	run -3 t fdsend "$S" 0 </dev/null
	[ "${#lines[@]}" -eq 1 ]
	[ "$output" = "fdsend: $S: refused by receiver: ok\\x1b[2J\\x0afdsend: all delivered" ]
	reap_ok "$BG"
}

@test "600 descriptors with 60-byte names (an OFFER of ~37 KiB, cut in two by the kernel) arrive whole" {
	names=$(for i in $(seq 600); do printf 'n%059d:' "$i"; done)
	bg fdrecv "$S" -- sh -c 'echo "$LISTEN_FDS ${LISTEN_FDNAMES%%:*}"' >out
	run -0 t fdtool memfds 600 fdsend --fdname "${names%:}" "$S"
	reap_ok "$BG"
	assert_file out "600 n$(printf '%059d' 1)"
}

@test "a sender that gave up (-t) while queued behind a staller: fdrecv closes what it sent, warns, and serves the next" {
	: >out
	bg fdrecv "$S" -- fdtool write 3 good 2>err
	recv_bg=$BG
	wait_for_socket "$S"
	bg fdtool stall "$S" >stall.out
	stall_bg=$BG
	stall=$(child_of "$stall_bg")
	wait_for_line stall.out '^connected$'
	# its OFFER and descriptor wait in the socket while the staller has its 5 s
	run -4 t sh -c 'echo $$ >pid; exec fdsend -t 1 "$1" 5 5>>"$2"' sh "$S" "$T/gaveup"
	[ "$output" = "fdsend: $S: no answer from receiver (timed out)" ]
	wait_for_line err "pid $(cat pid): gone before HELD"
	assert_file err "fdrecv: $S: sender uid $(id -u) pid $stall: timed out" \
		"fdrecv: $S: sender uid $(id -u) pid $(cat pid): gone before HELD (it gave up); its descriptors were closed"
	is_waiting "$recv_bg"
	run -0 t fdsend "$S" 5 5>>out
	reap_ok "$recv_bg"
	assert_file out good
	reap_ok "$stall_bg"
}

@test "LISTEN_FDNAMES past the kernel's 128 KiB: an offer with names is refused; one of only unnamed descriptors runs without the variable" {
	# two --fdname words: one word of a command line has the same 128 KiB bound
	half=$(for i in $(seq 300); do printf "%0255d:" "$i"; done)
	bg fdrecv "$S" -- true 2>err
	run -3 t fdtool memfds 600 fdsend --fdname "${half%:}" --fdname "${half%:}" "$S"
	[ "$output" = "fdsend: $S: refused by receiver: names too long for LISTEN_FDNAMES (128 KiB at most)" ]
	is_waiting "$BG"
	kill "$BG"
	reap "$BG"
	[ "$(ulimit -Hn)" = unlimited ] || [ "$(ulimit -Hn)" -ge 16500 ] ||
		skip "hard RLIMIT_NOFILE $(ulimit -Hn) < 16500 for 16400 unnamed descriptors"
	bg bash -c 'ulimit -n 16500 && exec fdrecv "$1" -- sh -c "echo \$LISTEN_FDS \${LISTEN_FDNAMES-unset}"' _ "$S" >out
	run -0 t bash -c 'ulimit -n 16500 && exec fdtool memfds 16400 fdsend "$1"' _ "$S"
	reap_ok "$BG"
	assert_file out "16400 unset"
}
