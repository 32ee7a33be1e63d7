#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# Interoperability (issue 11): fdsend and fdrecv against test/peer, a sender and
# a receiver written from the PROTOCOL section of fdrecv(1) alone, and against
# emulations of util-linux's plain fdsend and fdrecv (1 byte, one descriptor).

load test_helper

# ms: the time now, in milliseconds.
ms() {
	echo $(($(date +%s%N) / 1000000))
}

# peer_send ARGS...: `peer send ARGS` under the guard (for run); its pid lands in ./pid.
peer_send() {
	t sh -c 'echo $$ >pid; exec peer send "$@"' sh "$@"
}

# fdrecv_waits: the fdrecv of $BG, started as `fdrecv "$S" -- fdtool write 3
# next-ok`, is still listening and takes fdsend's next handoff.
fdrecv_waits() {
	is_waiting "$BG"
	[ -S "$S" ]
	run -0 t fdsend "$S" 5 5>>next
	reap_ok "$BG"
	assert_file next next-ok
}

# warned REASON: fdrecv's only warning is that the sender of ./pid refused with REASON.
warned() {
	wait_for_output err
	assert_file err "fdrecv: $S: sender uid $(id -u) pid $(cat pid): $1"
}

# lines_in FILE N: FILE holds N complete lines.
lines_in() {
	[ "$(grep -c '' "$1")" -eq "$2" ] && complete_line "$1"
}

# long_names N: N names of 255 bytes, joined with colons.
long_names() {
	local name names
	name=$(printf 'n%.0s' {1..255})
	names=$(printf "$name:%.0s" $(seq "$1"))
	echo "${names%:}"
}

# ---- util-linux's plain peers ----

@test "fdsend to a plain receiver (util-linux's: 1 byte, room for one fd): the fd reaches TARGET, fdsend exits 6 saying it cannot know" {
	echo through >file
	bg peer plainrecv "$S" 5 sh -c 'cat <&5' >out
	run -6 t fdsend "$S" 7 7<file
	[ "$output" = "fdsend: $S: handed 1 descriptor to a receiver that cannot acknowledge (no greeting, no HELD): whether it took it is unknown" ]
	reap_ok "$BG"
	assert_file out through
	absent "$S"
}

@test "fdsend --no-ack to a plain receiver exits 0 in silence, and the fd reaches TARGET" {
	echo through >file
	bg peer plainrecv "$S" 5 sh -c 'cat <&5' >out
	run -0 t fdsend --no-ack "$S" 7 7<file
	[ -z "$output" ]
	reap_ok "$BG"
	assert_file out through
}

@test "fdsend of three fds to a plain receiver: the first reaches TARGET, fdsend exits 6 (whether it took them all is unknown)" {
	echo first >f1; echo second >f2
	bg peer plainrecv "$S" 5 sh -c 'cat <&5' >out
	run -6 t fdsend "$S" 6 7 8 6<f1 7<f2 8</dev/null
	[ "$output" = "fdsend: $S: handed 3 descriptors to a receiver that cannot acknowledge (no greeting, no HELD): whether it took them all is unknown" ]
	reap_ok "$BG"
	assert_file out first
}

@test "a plain sender (util-linux's: byte 0x20, one fd) to fdrecv: the fd arrives at 3 with LISTEN_FDS=1, unnamed" {
	echo through >file
	bg fdrecv "$S" -- sh -c 'echo "$LISTEN_FDS $LISTEN_FDNAMES"; cat <&3' >out 2>err
	wait_for_socket "$S"
	run -0 t peer plainsend "$S" 5 5<file
	[ -z "$output" ]
	reap_ok "$BG"
	assert_file out "1 unknown" through
	[ ! -s err ]
}

# ---- version 2 peers written from the page ----

@test "fdsend to a page-only receiver: OFFER v2 with NOWAIT, the names (a space allowed, empty = unnamed), fds in order; exit 0 on HELD" {
	echo A >a; : >b
	R=$(pwd -P)
	bg peer recv "$S" >out
	run -0 t fdsend --fdname 'my web::log' "$S" 5 6 7 5<a 6>>b 7</dev/null
	[ -z "$output" ]
	reap_ok "$BG"
	assert_file out "offer v2 count=3 flags=1 names=my web||log" "#0 $R/a" "#1 $R/b" \
		"#2 /dev/null" "held 3"
}

@test "fdsend exits 0 on HELD, without waiting for the receiver to hang up" {
	bg peer recv --no-close "$S" >out
	run -0 t fdsend "$S" 0 </dev/null
	[ -z "$output" ]
	reap_ok "$BG"
	assert_file out "offer v2 count=1 flags=1 names=" "#0 /dev/null" "held 1"
}

@test "a page-only sender to fdrecv: greeted, HELD; fds at 3,4,5 with LISTEN_FDNAMES naming the unnamed 'unknown'" {
	echo A >a; echo B >b; echo C >c
	bg fdrecv "$S" -- sh -c 'echo "$LISTEN_FDS $LISTEN_FDNAMES"; cat <&3; cat <&4; cat <&5' >out 2>err
	wait_for_socket "$S"
	run -0 t peer send --names 'my web::log' "$S" 5 6 7 5<a 6<b 7<c
	assert_output_lines greeted "held 3"
	reap_ok "$BG"
	assert_file out "3 my web:unknown:log" A B C
	[ ! -s err ]
}

@test "a page-only sender's FDS frames of 253 fds (the page's maximum; fdsend sends 252) reach fdrecv: 300 in order" {
	bg fdrecv "$S" -- fdtool checkfds 300 >out
	wait_for_socket "$S"
	run -0 t fdtool memfds 300 peer send "$S"
	assert_output_lines greeted "held 300"
	reap_ok "$BG"
	assert_file out "fds 3..302: 300 memfds in order" "LISTEN_FDS=300 LISTEN_PID=(self)" \
		"LISTEN_FDNAMES=unknown x 300"
}

@test "an OFFER too long to share a sendmsg with the first FDS frame (300 names of 255 bytes) goes alone, and fdrecv takes it" {
	names=$(long_names 300)
	bg fdrecv "$S" -- sh -c '[ "$LISTEN_FDNAMES" = "$1" ] && echo "$LISTEN_FDS names-ok"' sh "$names" >out
	wait_for_socket "$S"
	run -0 t fdtool memfds 300 peer send --names "$names" "$S"
	assert_output_lines greeted "held 300"
	reap_ok "$BG"
	assert_file out "300 names-ok"
}

@test "fdrecv -c takes a copy from a page-only holder (a sender that listens)" {
	echo held >file
	bg peer send --listen "$S" 5 5<file >out
	wait_for_socket "$S"
	run -0 t fdrecv -c "$S" -- sh -c 'echo "$LISTEN_FDS $LISTEN_FDNAMES"; cat <&3'
	assert_output_lines "1 unknown" held
	reap_ok "$BG"
	assert_file out greeted "held 1"
}

# ---- version 1 peers, and later versions ----

@test "a version 1 sender (OFFER without NOWAIT, FDS after the go-ahead) to fdrecv: the greeting is its go-ahead; done" {
	: >a
	bg fdrecv "$S" -- sh -c 'echo "$LISTEN_FDS $LISTEN_FDNAMES"; echo via-3 >&3' >out 2>err
	wait_for_socket "$S"
	run -0 t peer send --v1 --names one "$S" 5 5>>a
	assert_output_lines greeted "held 1"
	reap_ok "$BG"
	assert_file out "1 one"
	assert_file a via-3
	[ ! -s err ]
}

@test "a version 1 sender of 300 fds (two FDS frames after the go-ahead) to fdrecv: all in order" {
	bg fdrecv "$S" -- fdtool checkfds 300 >out
	wait_for_socket "$S"
	run -0 t fdtool memfds 300 peer send --v1 "$S"
	assert_output_lines greeted "held 300"
	reap_ok "$BG"
	assert_file out "fds 3..302: 300 memfds in order" "LISTEN_FDS=300 LISTEN_PID=(self)" \
		"LISTEN_FDNAMES=unknown x 300"
}

@test "fdsend to a version 1 receiver, which never greets: exit 0 on its HELD" {
	bg peer recv --v1 "$S" >out
	run -0 t fdsend --fdname x "$S" 0 </dev/null
	[ -z "$output" ]
	reap_ok "$BG"
	assert_file out "offer v2 count=1 flags=1 names=x" "#0 /dev/null" "held 1"
}

@test "fdsend takes a version 3 receiver's GO and HELD with 8 more payload bytes: exit 0" {
	bg peer recv --version 3 --extra 8 "$S" >out
	run -0 t fdsend "$S" 0 </dev/null
	[ -z "$output" ]
	reap_ok "$BG"
	assert_file out "offer v2 count=1 flags=1 names=" "#0 /dev/null" "held 1"
}

@test "fdrecv takes a version 3 sender's frames" {
	: >a
	bg fdrecv "$S" -- fdtool write 3 v3-ok >out
	wait_for_socket "$S"
	run -0 t peer send --version 3 "$S" 5 5>>a
	assert_output_lines greeted "held 1"
	reap_ok "$BG"
	assert_file a v3-ok
}

# ---- SOCK_SEQPACKET ----

@test "fdsend reaches a SOCK_SEQPACKET receiver: 300 fds with 255-byte names, the OFFER spanning records" {
	names=$(long_names 300)
	bg peer recv --seqpacket "$S" >out
	run -0 t fdtool memfds 300 fdsend --fdname "$names" "$S"
	[ -z "$output" ]
	reap_ok "$BG"
	want=("offer v2 count=300 flags=1 names=${names//:/|}")
	for i in $(seq 0 299); do
		want+=("#$i /memfd:fdtool-$i (deleted)")
	done
	assert_file out "${want[@]}" "held 300"
}

@test "fdrecv -c reaches a SOCK_SEQPACKET holder: 300 fds with 255-byte names, the OFFER spanning records" {
	names=$(long_names 300)
	bg fdtool memfds 300 peer send --listen --seqpacket --names "$names" "$S" >out
	wait_for_socket "$S"
	run -0 t fdrecv -c "$S" -- sh -c '[ "$LISTEN_FDNAMES" = "$1" ] && echo names-ok &&
		exec fdtool checkfds 300' sh "$names"
	assert_output_lines names-ok "fds 3..302: 300 memfds in order" \
		"LISTEN_FDS=300 LISTEN_PID=(self)" "LISTEN_FDNAMES=${names:0:200}..."
	reap_ok "$BG"
	assert_file out greeted "held 300"
}

# ---- REFUSED, from either side, at any point ----

@test "a sender's REFUSED right after its NOWAIT OFFER: fdrecv warns 'refused by sender: REASON' and keeps waiting" {
	bg fdrecv "$S" -- fdtool write 3 next-ok 2>err
	wait_for_socket "$S"
	run -3 peer_send --refuse 'changed my mind' "$S" 0 </dev/null
	assert_output_lines "refused the receiver: changed my mind"
	warned "refused by sender: changed my mind"
	fdrecv_waits
}

@test "a version 1 sender's REFUSED after the go-ahead: fdrecv warns 'refused by sender: REASON' and keeps waiting" {
	bg fdrecv "$S" -- fdtool write 3 next-ok 2>err
	wait_for_socket "$S"
	run -3 peer_send --v1 --refuse 'not after all' "$S" 0 </dev/null
	assert_output_lines greeted "refused the receiver: not after all"
	warned "refused by sender: not after all"
	fdrecv_waits
}

@test "a holder's REFUSED ends fdrecv -c: exit 3 with 'refused by sender: REASON'" {
	bg peer send --listen --refuse 'holder says no' "$S" 0 </dev/null >out
	wait_for_socket "$S"
	run -3 t fdrecv -c "$S" -- true
	[ "$output" = "fdrecv: $S: refused by sender: holder says no" ]
	reap_ok "$BG" 3
}

@test "a receiver that refuses before the OFFER and hangs up while fdsend has 2000 fds to send: fdsend shows its reason (exit 3)" {
	[ "$(ulimit -Hn)" = unlimited ] || [ "$(ulimit -Hn)" -ge 2100 ] ||
		skip "hard RLIMIT_NOFILE $(ulimit -Hn) < 2100"
	for round in 1 2 3; do
		bg peer recv --refuse-early 'busy, try later' "$S" >out
		run -3 t fdtool memfds 2000 fdsend "$S"
		[ "$output" = "fdsend: $S: refused by receiver: busy, try later" ]
		reap_ok "$BG" 3
		assert_file out "refused: busy, try later"
	done
}

# ---- per-frame descriptor counts ----

# refused_at_once FRAMES REASON: a sender whose FDS frames (n/attached,...)
# miss their descriptors is refused well inside the 5 s peer bound, with
# REASON, warned of, and fdrecv goes on waiting.
refused_at_once() {
	bg fdrecv "$S" -- fdtool write 3 next-ok 2>err
	wait_for_socket "$S"
	start=$(ms)
	run -3 peer_send --frames "$1" "$S" 0 0 </dev/null
	elapsed=$(($(ms) - start))
	[ "$elapsed" -lt 4000 ] || { echo "refused after $elapsed ms, not at once (peers get 5 s)"; false; }
	[ "${#lines[@]}" -eq 2 ] && [ "${lines[0]}" = greeted ]
	[ "${lines[1]}" = "refused: $2" ]
	warned "$2"
	fdrecv_waits
}

@test "FDS n=1 carrying 2 fds, then n=1 carrying none: fdrecv refuses at once, naming frame 1, and keeps waiting" {
	refused_at_once 1/2,1/0 "FDS frame 1: n=1, but 2 descriptors came with it"
}

@test "FDS n=1 carrying none, then n=1 carrying 2 fds: refused at once, frame 1 charged only with its own (none)" {
	refused_at_once 1/0,1/2 "FDS frame 1: n=1, but 0 descriptors came with it"
}

# ---- how reasons are shown ----

@test "a receiver's reason in UTF-8 (é, an emoji) is shown as is" {
	bg peer recv --refuse 'café fermé 🙂' "$S" >out
	run -3 t fdsend "$S" 0 </dev/null
	[ "$output" = "fdsend: $S: refused by receiver: café fermé 🙂" ]
	reap_ok "$BG" 3
}

@test "control characters (C0, NUL, DEL, C1) and bytes that are not UTF-8 in a receiver's reason are shown as \\xNN" {
	bg peer recv --refuse $'a\tb\x7fc\e[2J\n''\x00|\xc2\x85|\xff|é' "$S" >out
	run -3 t fdsend "$S" 0 </dev/null
	[ "$output" = "fdsend: $S: refused by receiver: a\\x09b\\x7fc\\x1b[2J\\x0a\\x00|\\xc2\\x85|\\xff|é" ]
	reap_ok "$BG" 3
}

@test "a 1500-byte REFUSED (over the 1024-byte limit) still ends the handoff and is reported by its size" {
	bg peer recv --refuse "$(printf 'x%.0s' {1..1500})" "$S" >out
	run -3 t fdsend "$S" 0 </dev/null
	[ "$output" = "fdsend: $S: refused by receiver: (a reason of 1500 bytes, over the 1024-byte limit)" ]
	reap_ok "$BG" 3
}

@test "a 1024-byte reason (the limit) is shown whole" {
	reason=$(printf 'y%.0s' {1..1024})
	bg peer recv --refuse "$reason" "$S" >out
	run -3 t fdsend "$S" 0 </dev/null
	[ "$output" = "fdsend: $S: refused by receiver: $reason" ]
	reap_ok "$BG" 3
}

@test "fdrecv shows a sender's reasons the same way: UTF-8 as is, control characters as \\xNN, 1500 bytes by size" {
	bg fdrecv "$S" -- fdtool write 3 next-ok 2>err
	wait_for_socket "$S"
	want=()
	for reason in 'café 🙂' $'tab\tdel\x7f''\xc2\x85\xff' "$(printf 'z%.0s' {1..1500})"; do
		run -3 peer_send --refuse "$reason" "$S" 0 </dev/null
		want+=("fdrecv: $S: sender uid $(id -u) pid $(cat pid): refused by sender: ")
		wait_until lines_in err "${#want[@]}"
	done
	want[0]+='café 🙂'
	want[1]+='tab\x09del\x7f\xc2\x85\xff'
	want[2]+='(a reason of 1500 bytes, over the 1024-byte limit)'
	assert_file err "${want[@]}"
	fdrecv_waits
}

# ---- HELD ----

@test "a HELD with another count fails the handoff: 'bad answer from receiver: expected HELD of 2, got HELD of 1' (exit 3)" {
	bg peer recv --held-count 1 "$S" >out
	run -3 t fdsend "$S" 0 0 </dev/null
	[ "$output" = "fdsend: $S: bad answer from receiver: expected HELD of 2, got HELD of 1" ]
	reap_ok "$BG"
}

@test "a HELD of 2 bytes (under its 4) is a bad length: exit 3" {
	bg peer recv --held-len 2 "$S" >out
	run -3 t fdsend "$S" 0 0 </dev/null
	[ "$output" = "fdsend: $S: bad answer from receiver: a HELD of 2 bytes (4 at least)" ]
	reap_ok "$BG"
}

@test "GO and HELD with extra payload bytes (fields of later versions) are accepted: exit 0" {
	bg peer recv --extra 8 "$S" >out
	run -0 t fdsend "$S" 0 0 </dev/null
	[ -z "$output" ]
	reap_ok "$BG"
	assert_file out "offer v2 count=2 flags=1 names=|" "#0 /dev/null" "#1 /dev/null" "held 2"
	# a version 1 receiver: no greeting, a long HELD
	bg peer recv --v1 --extra 8 "$S" >out
	run -0 t fdsend "$S" 0 </dev/null
	[ -z "$output" ]
	reap_ok "$BG"
}
