#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# SOCKET forms (paths, @abstract, bare NAME, -a, fd:N), what fdrecv finds at the
# path, and the socket file's removal (after the handoff, on signals).

load test_helper

# handoff_via RECV_SOCKET SEND_SOCKET [fdrecv options...]: one descriptor travels;
# the command writes through it and we read the effect back in $T/out.
handoff_via() {
	local rsock=$1 ssock=$2
	shift 2
	: >"$T/out"
	bg fdrecv "$@" "$rsock" -- fdtool write 3 "via $rsock"
	run -0 t fdsend "$ssock" 5 5>>"$T/out"
	reap_ok "$BG"
	assert_file "$T/out" "via $rsock"
}

# dir_empty_but_out: only our output file in the test directory.
dir_empty_but_out() {
	local left
	left=$(ls -A "$T" | grep -vx out || true)
	[ -z "$left" ] || { echo "left in $T: $left" >&2; return 1; }
}

@test "a relative path SOCKET: handoff works and the socket file is removed" {
	mkdir d
	handoff_via d/s d/s
	dir_empty d
}

@test "an absolute path SOCKET: handoff works and the socket file is removed" {
	mkdir d
	handoff_via "$T/d/s" "$T/d/s"
	dir_empty d
}

@test "a path of exactly 107 bytes is accepted by both tools" {
	mkdir d
	p=./d/$(printf 'p%.0s' {1..103})
	[ "${#p}" -eq 107 ]
	handoff_via "$p" "$p"
	dir_empty d
}

@test "an @abstract SOCKET works and creates no file" {
	handoff_via "@$ABS" "@$ABS"
	dir_empty_but_out
}

@test "fdrecv -a NAME and fdsend @NAME meet on the same abstract socket" {
	handoff_via "$ABS" "@$ABS" -a
	dir_empty_but_out
}

@test "fdrecv @NAME and fdsend -a NAME meet on the same abstract socket" {
	: >out
	bg fdrecv "@$ABS" -- fdtool write 3 abstract
	run -0 t fdsend -a "$ABS" 5 5>>out
	reap_ok "$BG"
	assert_file out abstract
	dir_empty_but_out
}

@test "a bare NAME of a user other than root lives in \$XDG_RUNTIME_DIR/fdsend/, created mode 0700" {
	if [ "$(id -u)" -eq 0 ]; then
		# root's bare NAME is always /run/fdsend/NAME: the rule is the others'
		need_other_users
		as=(setpriv --reuid=65534 --regid=65534 --clear-groups)
		xdg=$(mktemp -d /tmp/fdtest-xdg.XXXXXX)
		chown 65534:65534 "$xdg"
		CLEANUP_DIRS=("$xdg/fdsend" "$xdg")
	else
		as=()
		xdg=$T/xdg
		mkdir -m 700 "$xdg"
	fi
	bg "${as[@]}" env XDG_RUNTIME_DIR="$xdg" fdrecv name >out
	wait_for_socket "$xdg/fdsend/name"
	[ "$(stat -c %a "$xdg/fdsend")" = 700 ]
	run -0 t "${as[@]}" env XDG_RUNTIME_DIR="$xdg" fdsend name 5 5</dev/null
	reap_ok "$BG"
	assert_file out "3 name=unknown kind=chardev path=/dev/null access=rdonly"
	dir_empty "$xdg/fdsend"
}

@test "root's bare NAME is /run/fdsend/NAME even with an XDG_RUNTIME_DIR of its own (util-linux's place)" {
	[ "$(id -u)" -eq 0 ] || skip "needs root: the rule is root's"
	mkdir -m 700 xdg
	export XDG_RUNTIME_DIR=$T/xdg
	name=fdtest-$$-$BATS_TEST_NUMBER
	[ -e /run/fdsend ] || CLEANUP_DIRS=(/run/fdsend)
	CLEANUP_FILES=("/run/fdsend/$name")
	: >out
	bg fdrecv "$name" -- fdtool write 3 root
	wait_for_socket "/run/fdsend/$name"
	run -0 t fdsend "$name" 5 5>>out
	reap_ok "$BG"
	assert_file out root
	absent "/run/fdsend/$name"
	dir_empty xdg
}

@test "a bare NAME without XDG_RUNTIME_DIR lives in /run/fdsend/ for root" {
	[ "$(id -u)" -eq 0 ] || skip "needs root"
	unset XDG_RUNTIME_DIR
	name=fdtest-$$-$BATS_TEST_NUMBER
	created=
	[ -e /run/fdsend ] || { created=1; CLEANUP_DIRS=(/run/fdsend); }
	CLEANUP_FILES=("/run/fdsend/$name")
	: >out
	bg fdrecv "$name" -- fdtool write 3 run-dir
	wait_for_socket "/run/fdsend/$name"
	[ -z "$created" ] || [ "$(stat -c '%u %a' /run/fdsend)" = "0 700" ]
	run -0 t fdsend "$name" 5 5>>out
	reap_ok "$BG"
	assert_file out run-dir
	[ ! -e "/run/fdsend/$name" ]
}

# "${AS_NOBODY[@]}" CMD...: run CMD as uid/gid 65534 without XDG_RUNTIME_DIR.
AS_NOBODY=(setpriv --reuid=65534 --regid=65534 --clear-groups env -u XDG_RUNTIME_DIR)

@test "a bare NAME without XDG_RUNTIME_DIR lives in /tmp/fdsend-UID/ (0700) for other users" {
	[ "$(id -u)" -eq 0 ] || skip "needs root to become another user"
	[ ! -e /tmp/fdsend-65534 ] || skip "/tmp/fdsend-65534 already exists"
	"${AS_NOBODY[@]}" true || skip "setpriv cannot switch to uid 65534"
	CLEANUP_FILES=(/tmp/fdsend-65534/name)
	CLEANUP_DIRS=(/tmp/fdsend-65534)
	bg "${AS_NOBODY[@]}" fdrecv name >out
	wait_for_socket /tmp/fdsend-65534/name
	[ "$(stat -c '%u %a' /tmp/fdsend-65534)" = "65534 700" ]
	run -0 t "${AS_NOBODY[@]}" fdsend name 5 5</dev/null
	reap_ok "$BG"
	assert_file out "3 name=unknown kind=chardev path=/dev/null access=rdonly"
	dir_empty /tmp/fdsend-65534
}

@test "a /tmp/fdsend-UID that is not private (mode 0755) is refused, not used" {
	[ "$(id -u)" -eq 0 ] || skip "needs root to become another user"
	[ ! -e /tmp/fdsend-65534 ] || skip "/tmp/fdsend-65534 already exists"
	"${AS_NOBODY[@]}" true || skip "setpriv cannot switch to uid 65534"
	CLEANUP_FILES=(/tmp/fdsend-65534/name)
	CLEANUP_DIRS=(/tmp/fdsend-65534)
	mkdir -m 755 /tmp/fdsend-65534
	chown 65534:65534 /tmp/fdsend-65534
	run -1 t "${AS_NOBODY[@]}" fdrecv -t 5 name
	[[ "$output" == "fdrecv: "*"/tmp/fdsend-65534"* ]]
	dir_empty /tmp/fdsend-65534
}

# pair_handoff TYPE: fdrecv and fdsend talk over the two ends of a socketpair.
pair_handoff() {
	: >out
	run -0 t fdtool mk "pair-$1" 6 7 sh -c '
		fdrecv fd:6 -- fdtool write 3 "via $0" 7>&- &
		fdsend fd:7 5 6>&-; echo "fdsend $?"
		wait $!; echo "fdrecv $?"' "$1" 5>>out
	assert_output_lines "fdsend 0" "fdrecv 0"
	assert_file out "via $1"
}

@test "fd:N over a SOCK_STREAM socketpair hands the descriptor over" {
	pair_handoff stream
}

@test "fd:N over a SOCK_SEQPACKET socketpair hands the descriptor over" {
	pair_handoff seqpacket
}

@test "fd:N over SOCK_SEQPACKET carries 300 named descriptors in order" {
	run -0 t fdtool mk pair-seqpacket 400 401 bash -c '
		fdrecv fd:400 -- fdtool checkfds 300 401>&- >recv.out &
		fdtool memfds -n 300 fdsend fd:401 400>&-; echo "fdsend $?"
		wait $!; echo "fdrecv $?"'
	assert_output_lines "fdsend 0" "fdrecv 0"
	assert_file recv.out "fds 3..302: 300 memfds in order" "LISTEN_FDS=300 LISTEN_PID=(self)" \
		"LISTEN_FDNAMES=fd0:...:fd299"
}

@test "fd:N: either end of the socketpair can be fdrecv's" {
	: >out
	run -0 t fdtool mk pair-stream 6 7 sh -c '
		fdrecv fd:7 -- fdtool write 3 swapped 6>&- &
		fdsend fd:6 5 7>&-; echo "fdsend $?"
		wait $!; echo "fdrecv $?"' 5>>out
	assert_output_lines "fdsend 0" "fdrecv 0"
	assert_file out swapped
}

@test "fd:N: a refused handoff ends fdrecv with exit 3 (there is no next sender)" {
	run -0 t fdtool mk pair-stream 6 7 sh -c '
		fdrecv -n 2 fd:6 -- true 7>&- 2>recv.err &
		fdsend fd:7 0 6>&- 2>send.err; echo "fdsend $?"
		wait $!; echo "fdrecv $?"'
	assert_output_lines "fdsend 3" "fdrecv 3"
	[[ "$(cat send.err)" == "fdsend: fd:7: refused by receiver: "* ]]
}

@test "fd:N that is not open: 'fd:7: not open' (exit 2)" {
	run -2 t fdrecv fd:7 7>&-
	[ "${lines[0]}" = "fdrecv: fd:7: not open" ]
	run -2 t fdsend fd:7 0 7>&-
	[ "${lines[0]}" = "fdsend: fd:7: not open" ]
}

@test "fd:N that is a pipe: 'fd:7: not a socket' (exit 2)" {
	run -2 t fdtool mk pipe 7 8 fdrecv fd:7
	[ "${lines[0]}" = "fdrecv: fd:7: not a socket" ]
	run -2 t fdtool mk pipe 8 7 fdsend fd:7 0
	[ "${lines[0]}" = "fdsend: fd:7: not a socket" ]
}

@test "fd:N that is a TCP socket: 'fd:7: not an AF_UNIX socket (...)' (exit 2)" {
	run -2 t fdtool mk tcp 7 fdrecv fd:7
	[ "${lines[0]}" = "fdrecv: fd:7: not an AF_UNIX socket (descriptors cannot travel over it)" ]
	run -2 t fdtool mk tcp 7 fdsend fd:7 0
	[ "${lines[0]}" = "fdsend: fd:7: not an AF_UNIX socket (descriptors cannot travel over it)" ]
}

@test "fd:N that is a listening AF_UNIX socket: 'fd:7: a listening socket, not a connection' (exit 2)" {
	run -2 t fdtool mk unixlisten 7 "@$ABS" fdrecv fd:7
	[ "${lines[0]}" = "fdrecv: fd:7: a listening socket, not a connection" ]
	run -2 t fdtool mk unixlisten 7 "@$ABS" fdsend fd:7 0
	[ "${lines[0]}" = "fdsend: fd:7: a listening socket, not a connection" ]
}

@test "fd:N that is an unconnected AF_UNIX socket: 'fd:7: not connected' (exit 2)" {
	run -2 t fdtool mk unixsock 7 fdrecv fd:7
	[ "${lines[0]}" = "fdrecv: fd:7: not connected" ]
	run -2 t fdtool mk unixsock 7 fdsend fd:7 0
	[ "${lines[0]}" = "fdsend: fd:7: not connected" ]
}

@test "fd:N that is an AF_UNIX datagram socket: 'fd:7: not a stream or seqpacket socket' (exit 2)" {
	run -2 t fdtool mk pair-dgram 7 8 fdrecv fd:7
	[ "${lines[0]}" = "fdrecv: fd:7: not a stream or seqpacket socket" ]
	run -2 t fdtool mk pair-dgram 7 8 fdsend fd:7 0
	[ "${lines[0]}" = "fdsend: fd:7: not a stream or seqpacket socket" ]
}

@test "fdrecv refuses an existing regular file: 'exists and is not a socket' (exit 1), file kept" {
	echo keep >f
	run -1 t fdrecv "$T/f"
	[ "$output" = "fdrecv: $T/f: exists and is not a socket" ]
	assert_file f keep
}

@test "fdrecv refuses a symlink at the path (even to a socket) and never unlinks it" {
	echo keep >f
	ln -s f link
	run -1 t fdrecv "$T/link"
	[ "$output" = "fdrecv: $T/link: exists and is not a socket" ]
	[ -L link ]
	fdtool stale "$T/stale"
	ln -s stale link2
	run -1 t fdrecv "$T/link2"
	[ "$output" = "fdrecv: $T/link2: exists and is not a socket" ]
	[ -L link2 ]
	assert_file f keep
}

@test "a second fdrecv on a live socket fails 'in use by another receiver'; the first still works" {
	: >out
	bg fdrecv "$S" -- fdtool write 3 first
	first=$BG
	wait_for_socket "$S"
	run -1 t fdrecv "$S" -- fdtool write 3 second
	[ "$output" = "fdrecv: $S: in use by another listener" ]
	[ -S "$S" ]
	run -0 t fdsend "$S" 5 5>>out
	reap_ok "$first"
	assert_file out first
	[ ! -e "$S" ]
}

@test "fdrecv replaces a stale socket file (nobody listening) and fdsend waits for it" {
	fdtool stale "$S"
	[ -S "$S" ]
	: >out
	bg fdrecv "$S" -- fdtool write 3 replaced
	run -0 t fdsend "$S" 5 5>>out
	reap_ok "$BG"
	assert_file out replaced
	[ ! -e "$S" ]
}

# signal_removes_socket SIG NUMBER: fdrecv dies of SIG and leaves nothing behind.
signal_removes_socket() {
	mkdir d
	bg fdrecv "$T/d/s" -- true
	wait_for_socket d/s
	pid=$(child_of "$BG")
	[ "$(cat "/proc/$pid/comm")" = fdrecv ]
	kill -s "$1" "$pid"
	reap "$BG"
	[ "$REAPED" -eq $((128 + $2)) ]
	dir_empty d
}

@test "SIGTERM: fdrecv removes its socket file and dies of SIGTERM" {
	signal_removes_socket TERM 15
}

@test "SIGINT: fdrecv removes its socket file and dies of SIGINT" {
	signal_removes_socket INT 2
}

@test "SIGHUP: fdrecv removes its socket file and dies of SIGHUP" {
	signal_removes_socket HUP 1
}
