#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# A hostile or careless world around the tools: other programs' and other users'
# sockets at the path, paths swapped under a running tool, racing receivers, per-user
# directories, a stderr that is broken or never read, floods, inherited signals, no
# PATH, closed standard descriptors, slow peers, --pid on odd descriptors, and
# bytes that are not UTF-8.

load test_helper

# 17 bytes that are no protocol frame: a sender (or a receiver's answer) with a bad magic.
GARBAGE=5858585858585858585858585858585858

# The describe line of fd 0 when it is /dev/null (what a holder of `0 </dev/null` hands out).
DEVNULL_LINE="3 name=unknown kind=chardev path=/dev/null access=rdonly"

# shared_dir: D, a fresh directory under /tmp that every user may enter and write in
# (0777, not sticky; $T may be closed to other users). teardown removes it once empty:
# files made in it go in CLEANUP_FILES.
shared_dir() {
	D=$(mktemp -d /tmp/fdtest-hostile.XXXXXX)
	chmod 0777 "$D"
	CLEANUP_DIRS+=("$D")
}

# start_serve1 TYPE PATH [PREFIX...]: `PREFIX... fdtool serve1 TYPE PATH` in the background
# (a plain service that is not ours); returns once it is ready. SERVE_BG is its guard's
# pid; it prints the first text it receives to $T/serve.out.
start_serve1() {
	local type=$1 path=$2
	shift 2
	bg "$@" fdtool serve1 "$type" "$path" >"$T/serve.out"
	SERVE_BG=$BG
	wait_for_line "$T/serve.out" '^ready$'
}

# three_refuse PATH WHY [PREFIX...]: fdrecv, fdsend --serve and fdsend's unix:
# listener at PATH, each run as PREFIX... says, exit 1 with 'PATH: WHY'.
three_refuse() {
	local p=$1 why=$2
	shift 2
	run -1 t "$@" fdrecv -t 2 "$p"
	assert_output_lines "fdrecv: $p: $why"
	run -1 t "$@" fdsend --serve "$p" 0 </dev/null
	assert_output_lines "fdsend: $p: $why"
	run -1 t "$@" fdsend -t 2 "${p%/*}/nobody.sock" "unix:$p"
	assert_output_lines "fdsend: $p: $why"
}

# not_ours TYPE REASON: with a live TYPE service (not a stream listener) at $T/p,
# fdrecv, fdsend --serve and fdsend's unix: listener each exit 1 'in use or not ours
# (connect: REASON); left alone'; the file keeps its inode, nothing is made beside it,
# and the service still gets what is sent to it.
not_ours() {
	local type=$1 reason=$2 p=$T/p ino
	start_serve1 "$type" "$p"
	ino=$(stat -c %i "$p")
	three_refuse "$p" "in use or not ours (connect: $reason); left alone"
	[ "$(stat -c %i "$p")" = "$ino" ]
	[ "$(ls -A "$T" | tr '\n' ' ')" = "p serve.out " ]
	run -0 t fdtool send1 "$type" "$p" "still served"
	reap_ok "$SERVE_BG"
	assert_file "$T/serve.out" ready "still served"
}

# ---- 1. only ECONNREFUSED makes a socket file stale ----

@test "a live SOCK_DGRAM socket at the path: fdrecv, fdsend --serve and fdsend unix: exit 1 'in use or not ours (connect: Protocol wrong type for socket); left alone'; same inode, still served" {
	not_ours dgram "Protocol wrong type for socket"
}

@test "a live SOCK_SEQPACKET listener at the path: fdrecv, fdsend --serve and fdsend unix: exit 1 'in use or not ours (connect: Protocol wrong type for socket); left alone'; same inode, still served" {
	not_ours seqpacket "Protocol wrong type for socket"
}

@test "a live stream listener that is not a tool's: fdrecv, fdsend --serve and fdsend unix: exit 1 'in use by another listener'; same inode, still served" {
	p=$T/p
	start_serve1 stream "$p"
	ino=$(stat -c %i "$p")
	three_refuse "$p" "in use by another listener"
	[ "$(stat -c %i "$p")" = "$ino" ]
	[ "$(ls -A | tr '\n' ' ')" = "p serve.out " ]
	run -0 t fdtool send1 stream "$p" "still served"
	reap_ok "$SERVE_BG"
	assert_file serve.out ready "still served"
}

@test "another user's live 0600 socket (EACCES for uid 65534): the three exit 1 'in use or not ours (connect: Permission denied); left alone'; same inode, still served" {
	need_other_users
	shared_dir
	p=$D/p
	CLEANUP_FILES+=("$p")
	start_serve1 stream "$p" "${AS_OTHER[@]}" sh -c 'umask 177; exec "$@"' sh
	[ "$(stat -c '%u %a' "$p")" = "65533 600" ]
	ino=$(stat -c %i "$p")
	three_refuse "$p" "in use or not ours (connect: Permission denied); left alone" "${AS_NOBODY[@]}"
	[ "$(stat -c '%i %u %a' "$p")" = "$ino 65533 600" ]
	[ "$(ls -A "$D")" = p ]
	run -0 t "${AS_OTHER[@]}" fdtool send1 stream "$p" "still served"
	reap_ok "$SERVE_BG"
	assert_file serve.out ready "still served"
}

# ---- 2. at exit, a tool removes a socket file only if it is still its own ----

@test "a holder stopped after its socket file was replaced leaves the successor's file alone; the new holder still serves" {
	bg fdsend --serve "$S" 0 </dev/null 2>a.err
	a_bg=$BG
	wait_for_socket "$S"
	a=$(child_of "$a_bg")
	rm "$S"
	bg fdsend --serve "$S" 0 </dev/null 2>b.err
	b_bg=$BG
	wait_for_socket "$S"
	ino=$(stat -c %i "$S")
	kill -TERM "$a"
	reap_ok "$a_bg"
	[ "$(stat -c %i "$S")" = "$ino" ]
	run -0 t fdrecv -c "$S"
	assert_output_lines "$DEVNULL_LINE"
	is_waiting "$b_bg"
	[ "$(ls -A | tr '\n' ' ')" = "a.err b.err s.sock " ]
	[ ! -s a.err ]
	[ ! -s b.err ]
}

@test "a receiver that times out (exit 4) after its socket file was replaced leaves the successor's file, which then takes the handoff" {
	bg fdrecv -t 4 "$S" 2>a.err
	a_bg=$BG
	wait_for_socket "$S"
	rm "$S"
	: >out
	bg fdrecv "$S" -- fdtool write 3 second 2>b.err
	b_bg=$BG
	wait_for_socket "$S"
	ino=$(stat -c %i "$S")
	# the first one's exit comes after the successor's file was made
	is_waiting "$a_bg"
	reap_ok "$a_bg" 4
	assert_file a.err "fdrecv: $S: timed out waiting for a sender"
	[ "$(stat -c %i "$S")" = "$ino" ]
	run -0 t fdsend "$S" 5 5>>out
	reap_ok "$b_bg"
	assert_file out second
	absent "$S"
	[ ! -s b.err ]
}

@test "a receiver killed by SIGTERM after its socket file was replaced leaves the successor's file, which then takes the handoff" {
	bg fdrecv "$S"
	a_bg=$BG
	wait_for_socket "$S"
	a=$(child_of "$a_bg")
	rm "$S"
	: >out
	bg fdrecv "$S" -- fdtool write 3 second
	b_bg=$BG
	wait_for_socket "$S"
	ino=$(stat -c %i "$S")
	kill -TERM "$a"
	reap_ok "$a_bg" 143
	[ "$(stat -c %i "$S")" = "$ino" ]
	run -0 t fdsend "$S" 5 5>>out
	reap_ok "$b_bg"
	assert_file out second
	absent "$S"
}

# victim_setup: D (shared_dir) with u, uid 65534's directory (0755) where root's tool
# makes its socket file s, and victim, root's own (0700), holding a socket file s that
# must survive. VICTIM_INO: that file's inode.
victim_setup() {
	shared_dir
	mkdir "$D/u" "$D/victim"
	chown 65534:65534 "$D/u"
	chmod 755 "$D/u"
	chmod 700 "$D/victim"
	fdtool stale "$D/victim/s"
	VICTIM_INO=$(stat -c %i "$D/victim/s")
	# teardown: the files, then the directories, innermost first
	CLEANUP_FILES+=("$D/victim/s" "$D/u.old/s" "$D/u")
	CLEANUP_DIRS=("$D/u.old" "$D/victim" "$D/u" "${CLEANUP_DIRS[@]}")
}

# swap_then_term PID BG STATUS: uid 65534 moves $D/u to $D/u.old and puts a symlink to
# $D/victim in its place; then PID gets SIGTERM and BG exits STATUS. $D/victim/s is the
# same file still, and the tool's own file, now in $D/u.old, is gone with nothing beside it.
swap_then_term() {
	run -0 t "${AS_NOBODY[@]}" sh -c 'mv "$1/u" "$1/u.old" && ln -s "$1/victim" "$1/u"' sh "$D"
	[ -L "$D/u" ]
	[ -S "$D/u.old/s" ]
	kill -TERM "$1"
	reap_ok "$2" "$3"
	[ "$(stat -c %i "$D/victim/s")" = "$VICTIM_INO" ]
	[ "$(ls -A "$D/victim")" = s ]
	dir_empty "$D/u.old"
}

@test "root's fdrecv whose directory its owner (uid 65534) swapped for a symlink to root's directory: SIGTERM removes only its own file there, never the other s" {
	need_other_users
	victim_setup
	bg fdrecv "$D/u/s" 2>err
	wait_for_socket "$D/u/s"
	swap_then_term "$(child_of "$BG")" "$BG" 143
	[ ! -s err ]
}

@test "root's holder whose directory its owner (uid 65534) swapped for a symlink to root's directory: SIGTERM (exit 0) removes only its own file there, never the other s" {
	need_other_users
	victim_setup
	bg fdsend --serve "$D/u/s" 0 </dev/null 2>err
	wait_for_socket "$D/u/s"
	swap_then_term "$(child_of "$BG")" "$BG" 0
	[ ! -s err ]
}

# ---- 3. two receivers racing for one stale socket file ----

# one_exited BG BG: one of the two background processes has exited.
one_exited() {
	! is_waiting "$1" || ! is_waiting "$2"
}

@test "two fdrecv racing for one stale socket file (100 rounds): one takes it and the handoff, the other exits 1 'in use by another listener'" {
	: >out
	start=$SECONDS
	for ((n = 1; n <= 100; n++)); do
		((SECONDS - start < 120)) || { echo "round $n: the rounds took over 120 s"; false; }
		fdtool stale "$S"
		bg fdrecv -t 10 "$S" -- fdtool write 3 got >a.out 2>a.err
		a=$BG
		bg fdrecv -t 10 "$S" -- fdtool write 3 got >b.out 2>b.err
		b=$BG
		# the loser leaves at once; only then may the handoff go (else the loser
		# could come late, find no file, and listen)
		wait_until one_exited "$a" "$b" ||
			{ echo "round $n: neither receiver gave up within 5 s"; cat a.err b.err; false; }
		run t fdsend -t 10 "$S" 5 5>>out
		[ "$status" -eq 0 ] && [ -z "$output" ] ||
			{ echo "round $n: fdsend exited $status: $output"; false; }
		reap "$a"
		sa=$REAPED
		reap "$b"
		sb=$REAPED
		if [ "$sa" -eq 0 ] && [ "$sb" -eq 1 ]; then
			lose=b.err win=a.err
		elif [ "$sa" -eq 1 ] && [ "$sb" -eq 0 ]; then
			lose=a.err win=b.err
		else
			echo "round $n: receivers exited $sa and $sb:"
			cat a.err b.err
			false
		fi
		[ "$(cat "$lose")" = "fdrecv: $S: in use by another listener" ] ||
			{ echo "round $n: the loser said: $(cat "$lose")"; false; }
		[ ! -s "$win" ] || { echo "round $n: the winner said: $(cat "$win")"; false; }
		absent "$S" || { echo "round $n: $S left behind"; false; }
	done
	[ "$(grep -c '^got$' out)" -eq 100 ]
	[ -z "$(find "$T" -name '.fdsend.*')" ]
}

# ---- 4. the per-user directory of bare NAMEs ----

@test "bare NAME: an \$XDG_RUNTIME_DIR/fdsend of mode 0755 is refused by both tools: exit 1 'not a private directory (owner uid U, mode 755; expected uid U, mode 0700)'" {
	[ "$(id -u)" -ne 0 ] || skip "root's bare names are in /run/fdsend, whatever XDG_RUNTIME_DIR says"
	u=$(id -u)
	mkdir -m 700 x
	mkdir -m 755 x/fdsend
	export XDG_RUNTIME_DIR=$T/x
	run -1 t fdrecv -t 1 name
	assert_output_lines "fdrecv: $T/x/fdsend: not a private directory (owner uid $u, mode 755; expected uid $u, mode 0700)"
	run -1 t fdsend -t 1 name 0 </dev/null
	assert_output_lines "fdsend: $T/x/fdsend: not a private directory (owner uid $u, mode 755; expected uid $u, mode 0700)"
	[ "$(stat -c %a x/fdsend)" = 755 ]
	dir_empty x/fdsend
}

@test "bare NAME: an \$XDG_RUNTIME_DIR/fdsend that is a symlink to a 0700 directory is refused by both tools: exit 1 'not a directory (a symbolic link)'" {
	[ "$(id -u)" -ne 0 ] || skip "root's bare names are in /run/fdsend, whatever XDG_RUNTIME_DIR says"
	mkdir -m 700 x priv
	ln -s "$T/priv" x/fdsend
	export XDG_RUNTIME_DIR=$T/x
	run -1 t fdrecv -t 1 name
	assert_output_lines "fdrecv: $T/x/fdsend: not a directory (a symbolic link)"
	run -1 t fdsend -t 1 name 0 </dev/null
	assert_output_lines "fdsend: $T/x/fdsend: not a directory (a symbolic link)"
	[ -L x/fdsend ]
	dir_empty priv
}

@test "bare NAME, not root: an XDG_RUNTIME_DIR the caller does not own is refused: exit 1 'XDG_RUNTIME_DIR=/: not a directory owned by uid U'" {
	if [ "$(id -u)" -eq 0 ]; then
		# root would rightly pass it over: the check is for the others
		need_other_users
		as=("${AS_NOBODY[@]}")
		u=65534
	else
		as=()
		u=$(id -u)
	fi
	run -1 t "${as[@]}" env XDG_RUNTIME_DIR=/ fdrecv -t 1 name
	assert_output_lines "fdrecv: XDG_RUNTIME_DIR=/: not a directory owned by uid $u"
	run -1 t "${as[@]}" env XDG_RUNTIME_DIR=/ fdsend -t 1 name 0 </dev/null
	assert_output_lines "fdsend: XDG_RUNTIME_DIR=/: not a directory owned by uid $u"
}

@test "bare NAME, root: an XDG_RUNTIME_DIR owned by another user is passed over for /run/fdsend/NAME (exit 4 there, nothing left in /run/fdsend)" {
	[ "$(id -u)" -eq 0 ] || skip "needs root"
	mkdir -m 700 x
	chown 65534:65534 x
	name=fdtest-$$-$RANDOM
	[ -e /run/fdsend ] || CLEANUP_DIRS+=(/run/fdsend)
	CLEANUP_FILES+=("/run/fdsend/$name")
	run -4 t sh -c 'echo $$ >pid; exec env XDG_RUNTIME_DIR="$1" fdrecv -t 0.3 "$2"' sh "$T/x" "$name"
	assert_output_lines "fdrecv: /run/fdsend/$name: timed out waiting for a sender"
	absent "/run/fdsend/$name"
	[ -z "$(ls -A /run/fdsend | grep -e "$name" -e "^\.fdsend\.$(cat pid)\.")" ]
	[ "$(stat -c '%u %a' /run/fdsend)" = "0 700" ]
	dir_empty x
}

# ---- 5. no leftover files, whatever the count ----

@test "fdsend with 1, 2, 16, 17 or 20 unix: listeners and no receiver: exit 4 and not one file left behind" {
	mkdir d
	for count in 1 2 16 17 20; do
		specs=()
		for ((n = 1; n <= count; n++)); do specs+=("unix:$T/d/$n"); done
		run -4 t fdsend -t 0.5 "$T/nobody.sock" "${specs[@]}"
		assert_output_lines "fdsend: $T/nobody.sock: timed out waiting for a receiver"
		dir_empty d
		[ "$(ls -A)" = d ]
	done
}

@test "a holder of 20 unix: listeners hands all 20 over; on SIGTERM its socket goes, the listeners stay, and no .fdsend.* name is left anywhere" {
	mkdir d
	specs=()
	want=()
	for ((n = 1; n <= 20; n++)); do
		specs+=("unix:$T/d/$n")
		want+=("$((n + 2)) name=unix kind=socket access=rdwr family=unix type=stream state=listening local=$T/d/$n")
	done
	bg fdsend --serve "$S" "${specs[@]}" 2>holder.err
	holder_bg=$BG
	wait_for_socket "$S"
	holder=$(child_of "$holder_bg")
	run -0 t fdrecv -c "$S"
	assert_output_lines "${want[@]}"
	kill -TERM "$holder"
	reap_ok "$holder_bg"
	absent "$S"
	[ "$(ls -A d | sort -n | tr '\n' ' ')" = "$(seq 20 | tr '\n' ' ')" ]
	for ((n = 1; n <= 20; n++)); do [ -S "d/$n" ]; done
	[ -z "$(find "$T" -name '.fdsend.*')" ]
	[ "$(ls -A | tr '\n' ' ')" = "d holder.err " ]
	[ ! -s holder.err ]
}

# ---- 6. SIGPIPE, and a stderr that is broken or never read ----

@test "stderr on a broken pipe: a one-shot fdsend or fdrecv that times out still exits 4, not 141 (SIGPIPE)" {
	run -4 t fdtool brokenstderr fdsend -t 0.3 "$T/nobody.sock" 0 </dev/null
	assert_output_lines ""
	run -4 t fdtool brokenstderr fdrecv -t 0.3 "$S"
	assert_output_lines ""
	absent "$S"
}

# answer_one_byte: a receiver that answers the holder's offer with one byte and hangs up;
# $T/pid is its pid.
answer_one_byte() {
	run -0 t sh -c 'echo $$ >pid; exec fdtool rawsend "$1" 00' sh "$S"
	assert_output_lines "answer type 1"
}

@test "stderr on a broken pipe: a holder outlives its warnings, still serves, and on SIGTERM exits 0 and removes its socket" {
	# the provocation, first with a stderr that works: it does cost a warning
	bg fdsend --serve "$S" 0 </dev/null 2>holder.err
	wait_for_socket "$S"
	answer_one_byte
	wait_for_output holder.err
	assert_file holder.err \
		"fdsend: $S: receiver uid $(id -u) pid $(cat pid): bad answer from receiver: connection closed in the middle of a frame"
	kill -TERM "$(child_of "$BG")"
	reap_ok "$BG"
	absent "$S"
	# now with stderr on a pipe nobody can read
	bg fdtool brokenstderr fdsend --serve "$S" 0 </dev/null
	holder_bg=$BG
	wait_for_socket "$S"
	holder=$(child_of "$holder_bg")
	for n in 1 2 3; do
		answer_one_byte
	done
	run -0 t fdtool flood "$S" 20 "$GARBAGE"
	assert_output_lines "flood: 20 of 20 sent"
	run -0 t fdrecv -c "$S"
	assert_output_lines "$DEVNULL_LINE"
	is_waiting "$holder_bg"
	kill -TERM "$holder"
	reap_ok "$holder_bg"
	absent "$S"
}

# full_fifo: $T/fifo, held open read-write at fd 7 by this shell (so writes never fail
# with EPIPE) and filled up: whoever writes to it next would block for good.
full_fifo() {
	mkfifo "$T/fifo"
	exec 7<>"$T/fifo"
	fdtool fill 7
}

@test "stderr on a full FIFO nobody reads: 3000 garbage senders do not block fdrecv; the real sender is served after them" {
	full_fifo
	: >out
	bg_guarded 60 fdrecv -t 50 "$S" -- fdtool write 3 ok 2>fifo
	recv_bg=$BG
	wait_for_socket "$S"
	run -0 t fdtool flood "$S" 3000 "$GARBAGE"
	assert_output_lines "flood: 3000 of 3000 sent"
	run -0 t fdsend -t 10 "$S" 5 5>>out
	assert_output_lines ""
	reap_ok "$recv_bg"
	assert_file out ok
	absent "$S"
	exec 7<&-
}

@test "stderr on a full FIFO nobody reads: a holder drops 3000 garbage-answering receivers without blocking and serves the real one" {
	full_fifo
	bg_guarded 60 fdsend --serve "$S" 0 </dev/null 2>fifo
	holder_bg=$BG
	wait_for_socket "$S"
	holder=$(child_of "$holder_bg")
	run -0 t fdtool flood "$S" 3000 "$GARBAGE"
	assert_output_lines "flood: 3000 of 3000 sent"
	run -0 t fdrecv -c -t 10 "$S"
	assert_output_lines "$DEVNULL_LINE"
	is_waiting "$holder_bg"
	kill -TERM "$holder"
	reap_ok "$holder_bg"
	absent "$S"
	exec 7<&-
}

@test "300 garbage senders: fdrecv tells at most 10 a second one by one and counts the rest in '[0-9]+ more senders failed or were refused' lines, then takes the real handoff" {
	: >out
	bg fdrecv "$S" -- fdtool write 3 ok 2>err
	recv_bg=$BG
	wait_for_socket "$S"
	run -0 t fdtool flood "$S" 300 "$GARBAGE"
	assert_output_lines "flood: 300 of 300 sent"
	run -0 t fdsend -t 10 "$S" 5 5>>out
	reap_ok "$recv_bg"
	assert_file out ok
	lines=$(wc -l <err)
	told=$(grep -cE "^fdrecv: $S: sender uid $(id -u) pid [0-9]+: not an fdsend protocol frame \(bad magic\)\$" err || true)
	counted=$(grep -cE "^fdrecv: $S: [0-9]+ more senders failed or were refused \(not shown one by one\)\$" err || true)
	held=$(awk -v p="fdrecv: $S: " 'index($0, p) == 1 && / more senders failed or were refused / { n += $3 } END { print n + 0 }' err)
	if ((lines >= 50 || counted < 1 || told + counted != lines || told + held != 300)); then
		printf '%s lines, %s told, %s count lines holding %s:\n' "$lines" "$told" "$counted" "$held"
		cat err
		false
	fi
}

# The signal lines of the process that runs it (grep itself: dash, for one, unblocks
# every signal when it starts).
SIGS_CMD=(grep -E '^Sig(Ign|Blk)' /proc/self/status)

# same_signals PREFIX...: `PREFIX... SIGS_CMD` and `PREFIX... fdrecv $S -- SIGS_CMD`
# (given one descriptor) print the same; DIRECT is what they printed.
same_signals() {
	run -0 t "$@" "${SIGS_CMD[@]}"
	DIRECT=$output
	bg fdsend -t 10 "$S" 0 </dev/null
	run -0 t "$@" fdrecv "$S" -- "${SIGS_CMD[@]}"
	reap_ok "$BG"
	[ "$output" = "$DIRECT" ] || { printf 'direct:\n%s\nthrough fdrecv:\n%s\n' "$DIRECT" "$output"; false; }
}

# sig_bit LINE_PREFIX SIGNUM: the signal's bit is set in that line of DIRECT.
sig_bit() {
	local m
	m=$(sed -n "s/^$1:[[:space:]]*//p" <<<"$DIRECT")
	((0x$m & (1 << ($2 - 1))))
}

@test "COMMAND starts with the signal dispositions and mask fdrecv started with: SIGPIPE default or ignored, a signal blocked" {
	same_signals bash -c 'exec "$@"' _
	! sig_bit SigIgn 13
	same_signals bash -c "trap '' PIPE; exec \"\$@\"" _
	sig_bit SigIgn 13
	if env --block-signal=USR1 true 2>/dev/null; then
		same_signals env --block-signal=USR1 --ignore-signal=HUP
		sig_bit SigBlk 10
		sig_bit SigIgn 1
	fi
}

# ---- 7. ignored signals stay ignored ----

@test "SIGHUP ignored when fdrecv starts stays ignored for COMMAND: 'kill -HUP \$\$; echo alive' prints alive (and dies of SIGHUP otherwise)" {
	bg fdsend -t 10 "$S" 0 </dev/null
	run -0 t bash -c "trap '' HUP; exec fdrecv \"\$1\" -- sh -c 'kill -HUP \$\$; echo alive'" _ "$S"
	assert_output_lines alive
	reap_ok "$BG"
	bg fdsend -t 10 "$S" 0 </dev/null
	run -129 t bash -c "exec fdrecv \"\$1\" -- sh -c 'kill -HUP \$\$; echo alive'" _ "$S"
	assert_output_lines ""
	reap_ok "$BG"
}

@test "SIGHUP ignored when fdrecv starts: a SIGHUP while it waits does not stop it, and it still takes the handoff" {
	: >out
	bg bash -c "trap '' HUP; exec fdrecv \"\$1\" -- fdtool write 3 after-hup" _ "$S" 2>err
	wait_for_socket "$S"
	pid=$(child_of "$BG")
	[ "$(cat "/proc/$pid/comm")" = fdrecv ]
	kill -HUP "$pid"
	[ -S "$S" ]
	run -0 t fdsend -t 5 "$S" 5 5>>out
	reap_ok "$BG"
	assert_file out after-hup
	[ ! -s err ]
}

@test "a holder started with SIGHUP ignored survives SIGHUP and still serves; SIGTERM stops it (exit 0, socket removed)" {
	bg bash -c "trap '' HUP; exec fdsend --serve \"\$1\" 0" _ "$S" </dev/null 2>holder.err
	holder_bg=$BG
	wait_for_socket "$S"
	holder=$(child_of "$holder_bg")
	[ "$(cat "/proc/$holder/comm")" = fdsend ]
	kill -HUP "$holder"
	run -0 t fdrecv -c -t 5 "$S"
	assert_output_lines "$DEVNULL_LINE"
	is_waiting "$holder_bg"
	[ -S "$S" ]
	kill -TERM "$holder"
	reap_ok "$holder_bg"
	absent "$S"
	[ ! -s holder.err ]
}

# ---- 8. COMMAND: what is checked is what runs ----

@test "no PATH: fdrecv finds COMMAND in the system's default search path and runs it" {
	: >out
	bg fdsend -t 10 "$S" 5 5>>out
	run -0 t env -u PATH "$ROOT/fdrecv" "$S" -- sh -c 'echo "ran without PATH" >&3'
	assert_output_lines ""
	reap_ok "$BG"
	assert_file out "ran without PATH"
	bg fdsend -t 10 "$S" 0 </dev/null
	run -0 t env -u PATH "$ROOT/fdrecv" "$S" -- true
	assert_output_lines ""
	reap_ok "$BG"
}

@test "no PATH: a COMMAND found only in /usr/local/bin is 'command not found' (exit 127) before any socket file appears" {
	[ "$(id -u)" -eq 0 ] || skip "needs root to write /usr/local/bin"
	[ -d /usr/local/bin ] && [ -w /usr/local/bin ] || skip "/usr/local/bin is not writable"
	cmd=fdtest-cmd-$$
	for dir in /bin /usr/bin; do
		[ ! -e "$dir/$cmd" ] || skip "$dir/$cmd exists"
	done
	CLEANUP_FILES+=("/usr/local/bin/$cmd")
	printf '#!/bin/sh\necho ran\n' >"/usr/local/bin/$cmd"
	chmod 755 "/usr/local/bin/$cmd"
	bg fdsend -t 0.5 "$S" 0 </dev/null 2>send.err
	run -127 t env -u PATH "$ROOT/fdrecv" -t 5 "$S" -- "$cmd"
	assert_output_lines "fdrecv: $cmd: command not found"
	reap_ok "$BG" 4
	assert_file send.err "fdsend: $S: timed out waiting for a receiver"
	absent "$S"
	[ "$(ls -A)" = send.err ]
}

# ---- 9. standard descriptors closed at start ----

@test "fdsend asked to send 0, 1 or 2 while it was closed at start: exit 2 'fd N: not open', never /dev/null sent in its place" {
	run -2 t sh -c 'exec fdsend -t 0.2 "$1" 0 0<&-' sh "$S"
	assert_output_lines "fdsend: fd 0: not open"
	run -2 t sh -c 'exec fdsend -t 0.2 "$1" 1 1>&-' sh "$S"
	assert_output_lines "fdsend: fd 1: not open"
	# stderr closed: the message has nowhere to go, the status still tells
	run -2 t sh -c 'exec fdsend -t 0.2 "$1" 2 2>&-' sh "$S"
	assert_output_lines ""
	absent "$S"
}

@test "fdrecv fd:0 (its stdin is the connection): COMMAND still starts with fd 0 open, on /dev/null" {
	: >out
	run -0 t fdtool mk pair-stream 6 7 sh -c '
		fdrecv fd:0 -- sh -c "readlink /proc/self/fd/0; echo got >&3" <&6 6<&- 7>&- >recv.out &
		fdsend fd:7 5 6>&-; echo "fdsend $?"
		wait $!; echo "fdrecv $?"' 5>>out
	assert_output_lines "fdsend 0" "fdrecv 0"
	assert_file recv.out /dev/null
	assert_file out got
}

# ---- 10. bounds are totals ----

@test "the 5 s answer bound is a total: a receiver trickling HELD one byte every 0.5 s makes fdsend exit 4 'no answer from receiver (timed out)'" {
	bg fdtool fakerecv slow-held "$S" >fake.out
	fake_bg=$BG
	wait_for_socket "$S"
	run -4 t fdsend "$S" 0 </dev/null
	assert_output_lines "fdsend: $S: no answer from receiver (timed out)"
	reap_ok "$fake_bg"
	run cat fake.out
	[ "${#lines[@]}" -eq 3 ]
	[ "${lines[0]}" = "offer v2 count=1 flags=1 names=" ]
	[ "${lines[1]}" = "fds frames: 1 descriptors" ]
	[[ "${lines[2]}" =~ ^held:\ [0-9]+\ of\ 16\ bytes\ sent,\ then: ]]
}

# ---- 11. -p PID: reopening never blocks, and says why it cannot ----

# start_holding SCRIPT [PREFIX...]: `PREFIX... sh -c SCRIPT` in the background, which
# prints "ready" once it holds its descriptors; HOLDING is its pid.
start_holding() {
	local script=$1
	shift
	bg "$@" sh -c "$script" >"$T/ready.out"
	HOLDING_BG=$BG
	wait_for_line "$T/ready.out" '^ready$'
	HOLDING=$(child_of "$HOLDING_BG")
}

@test "-p PID: a FIFO's read end with no writer is reopened without blocking: exit 0, the receiver sees kind=fifo access=rdonly" {
	R=$(realpath "$T")
	mkfifo f
	# 5 is a writer only while 6 opens; then no writer is left
	start_holding 'exec 5<>f 6<f 5>&-; echo ready; exec sleep 60'
	bg fdrecv "$S" >view
	wait_for_socket "$S"
	run -0 t fdsend -t 5 -p "$HOLDING" "$S" 6
	assert_output_lines ""
	reap_ok "$BG"
	assert_file view "3 name=unknown kind=fifo path=$R/f access=rdonly"
}

@test "-p PID: a FIFO's write end with no reader: exit 2 'fd N (PATH) cannot be reopened for writing while no one reads it: use --dup'" {
	R=$(realpath "$T")
	mkfifo f
	start_holding 'exec 5<>f 6>f 5>&-; echo ready; exec sleep 60'
	run -2 t fdsend -t 5 -p "$HOLDING" "$S" 6
	assert_output_lines "fdsend: pid $HOLDING: fd 6 ($R/f) cannot be reopened for writing while no one reads it: use --dup"
	absent "$S"
}

@test "-p PID without --dup on an eventfd or an epoll descriptor: exit 2 'fd N (anon_inode:[...]) cannot be reopened: use --dup', never 'is a socket'" {
	start_holding 'echo ready; exec sleep 60' fdtool mk eventfd 6
	run -2 t fdsend -t 5 -p "$HOLDING" "$S" 6
	assert_output_lines "fdsend: pid $HOLDING: fd 6 (anon_inode:[eventfd]) cannot be reopened: use --dup"
	start_holding 'echo ready; exec sleep 60' fdtool mk epoll 6
	run -2 t fdsend -t 5 -p "$HOLDING" "$S" 6
	assert_output_lines "fdsend: pid $HOLDING: fd 6 (anon_inode:[eventpoll]) cannot be reopened: use --dup"
	absent "$S"
}

# fds_over PID N: PID holds more than N descriptors (a glob: no process per look).
fds_over() {
	local f=("/proc/$1/fd/"*)
	[ "${#f[@]}" -gt "$2" ]
}

# child_or_gone BG: the background process BG has forked its command, or is over.
child_or_gone() {
	pgrep -P "$1" >/dev/null || ! is_waiting "$1"
}

# running PID: PID exists and is no zombie (builtins only: fast enough to poll in a loop).
running() {
	local stat
	read -r stat <"/proc/$1/stat" 2>/dev/null || return 1
	stat=${stat##*) }
	[ "${stat%% *}" != Z ]
}

# taking_then_killed ROUND DUP...: a process holding 2000 memfds is killed with SIGKILL
# while `fdsend -p PID DUP...` takes them (at once, or once fdsend holds some of them);
# fdsend exits 0 with all 2000 handed over intact, or 1 'exited before all its
# descriptors were taken', or 2 'no such process'.
taking_then_killed() {
	local round=$1 sock=$T/r$1.sock send recv_bg st k
	shift
	start_holding 'echo ready; exec sleep 60' fdtool memfds 2000
	bg fdrecv -t 15 "$sock" -- fdtool checkfds 2000 >recv.out 2>recv.err
	recv_bg=$BG
	wait_for_socket "$sock"
	bg bash -c 'ulimit -Sn 4200 && exec fdsend -t 10 -p "$@"' _ "$HOLDING" "$@" "$sock" $(seq 3 2002) \
		>send.out 2>&1
	send=$BG
	if ((round % 2 == 0)); then
		# bounded by fdsend's own life (its -t 10 and its guard); it may be over already
		wait_until child_or_gone "$send"
		k=$(pgrep -P "$send" || true)
		while [ -n "$k" ] && running "$k" && ! fds_over "$k" $((round * 100)); do :; done
	fi
	kill -KILL "$HOLDING"
	reap "$send"
	st=$REAPED
	reap "$HOLDING_BG"
	case "$st:$(cat send.out)" in
	"0:")
		reap_ok "$recv_bg"
		assert_file recv.out "fds 3..2002: 2000 memfds in order" \
			"LISTEN_FDS=2000 LISTEN_PID=(self)" "LISTEN_FDNAMES=unknown x 2000"
		;;
	"1:fdsend: pid $HOLDING: exited before all its descriptors were taken" | \
	"2:fdsend: pid $HOLDING: no such process")
		is_waiting "$recv_bg"
		kill -TERM "$(child_of "$recv_bg")"
		reap_ok "$recv_bg" 143
		;;
	*)
		echo "round $round ($*): fdsend exited $st: $(cat send.out)"
		return 1
		;;
	esac
	absent "$sock"
}

@test "-p PID killed while fdsend reopens 2000 of its descriptors: exit 0 (all intact), 1 'exited before all its descriptors were taken' or 2 'no such process', nothing else" {
	[ "$(ulimit -Hn)" -ge 4200 ] || skip "RLIMIT_NOFILE hard limit below 4200"
	for round in 1 2 3 4 5 6 7 8; do
		taking_then_killed "$round"
	done
}

@test "-p PID -d killed while fdsend duplicates 2000 of its descriptors: exit 0 (all intact), 1 'exited before all its descriptors were taken' or 2 'no such process', nothing else" {
	[ "$(ulimit -Hn)" -ge 4200 ] || skip "RLIMIT_NOFILE hard limit below 4200"
	for round in 1 2 3 4 5 6 7 8; do
		taking_then_killed "$round" -d
	done
}

# ---- 12. odds and ends ----

@test "a refused-then-abandoned offer of 5000 under 'ulimit -Sn 512' does not leave COMMAND a raised RLIMIT_NOFILE: it gets 512" {
	[ "$(ulimit -Hn)" -ge 6000 ] || skip "RLIMIT_NOFILE hard limit below 6000: the offer would be refused at once"
	bg bash -c 'ulimit -Sn 512 && exec fdrecv "$1" -- sh -c "ulimit -Sn"' _ "$S" >out 2>err
	wait_for_socket "$S"
	# fdrecv greets, raises its limit to make room, and the sender just hangs up
	run -0 t sh -c 'echo $$ >pid; exec fdtool rawclose "$1" "$2"' sh "$S" "$(frame 1 "$(offer 5000 0)")"
	assert_output_lines "closed without an answer"
	run -0 t fdsend "$S" 0 </dev/null
	reap_ok "$BG"
	assert_file out 512
	assert_file err "fdrecv: $S: sender uid $(id -u) pid $(cat pid): sender closed the connection after 0 of 5000 descriptors"
}

@test "fdsend --serve -t 0 is a usage error (exit 2): 'a holder needs a per-peer timeout above 0'" {
	run -2 t fdsend --serve -t 0 "$S" 0 </dev/null
	assert_usage_error fdsend
	[ "${lines[0]}" = "fdsend: --serve -t 0: a holder needs a per-peer timeout above 0" ]
	absent "$S"
}

@test "the describe view works with a 64 KiB stack (ulimit -s 64): three descriptors described" {
	bg bash -c 'ulimit -s 64 && exec fdrecv "$1"' _ "$S" >view 2>err
	wait_for_socket "$S"
	run -0 t fdsend "$S" 4 5 6 4</dev/null 5>/dev/null 6<>/dev/null
	reap_ok "$BG"
	assert_file view "3 name=unknown kind=chardev path=/dev/null access=rdonly" \
		"4 name=unknown kind=chardev path=/dev/null access=wronly" \
		"5 name=unknown kind=chardev path=/dev/null access=rdwr"
	[ ! -s err ]
}

@test "-L: LISTEN_FDS ' 1' or '+1', or LISTEN_PID ' PID', is a usage error (exit 2) naming the value; the plain values are taken" {
	for v in ' 1' '+1'; do
		run -2 t sh -c 'exec env LISTEN_PID=$$ LISTEN_FDS="$2" fdsend -t 0.2 -L "$1" 3</dev/null' sh "$S" "$v"
		assert_output_lines "fdsend: --listen-fds: invalid LISTEN_FDS: '$v'"
	done
	run -2 t sh -c 'echo $$ >pid; exec env LISTEN_PID=" $$" LISTEN_FDS=1 fdsend -t 0.2 -L "$1" 3</dev/null' sh "$S"
	pid=$(cat pid)
	assert_output_lines "fdsend: --listen-fds: LISTEN_PID is ' $pid', not this process ($pid)"
	# the same without the space and the sign: taken, and only the receiver is missing
	run -4 t sh -c 'exec env LISTEN_PID=$$ LISTEN_FDS=1 fdsend -t 0.2 -L "$1" 3</dev/null' sh "$S"
	assert_output_lines "fdsend: $S: timed out waiting for a receiver"
	absent "$S"
}

# ---- 13. --json is always valid JSON ----

@test "--json: a path with a byte 0xff comes out as \\udcff, valid UTF-8 (é) as it is, and the whole is valid JSON" {
	R=$(realpath "$T")
	bad=$'a\xffb'
	: >"$bad"
	: >é.txt
	bg fdrecv --json "$S" >view
	run -0 t fdsend "$S" 4 5 4<"$bad" 5<é.txt
	reap_ok "$BG"
	assert_file view \
		'[' \
		"{\"fd\":3,\"name\":\"unknown\",\"kind\":\"file\",\"path\":\"$R/a\\udcffb\",\"access\":\"rdonly\",\"flags\":[]}," \
		"{\"fd\":4,\"name\":\"unknown\",\"kind\":\"file\",\"path\":\"$R/é.txt\",\"access\":\"rdonly\",\"flags\":[]}" \
		']'
	if command -v python3 >/dev/null; then
		run -0 python3 -m json.tool view
		run -0 python3 -c 'import json, sys
d = json.load(open(sys.argv[1], encoding="utf-8"))
print(d[0]["path"].encode("utf-8", "surrogateescape") == sys.argv[2].encode("utf-8", "surrogateescape"))
print(d[1]["path"].endswith("/é.txt"))' view "$R/$bad"
		assert_output_lines True True
	fi
}
