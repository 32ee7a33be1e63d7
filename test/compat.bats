#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# util-linux's fdsend command lines work unchanged (issue 11): -m/--mode
# r|r+|w, --pid PID:INODE, root's bare NAME in /run/fdsend; and the
# differences fdsend(1) documents: waiting without -b, exit 6 with a plain
# receiver, --socket-mode.

load test_helper

# hold SCRIPT: `sh -c SCRIPT` in the background, which prints "ready" once it
# holds its descriptors; HOLDER is its pid.
hold() {
	bg sh -c "$1" >"$T/ready.out"
	wait_for_line "$T/ready.out" '^ready$'
	HOLDER=$(child_of "$BG")
}

# describe_via PID FD [fdsend options...]: what a receiver gets when fdsend
# takes FD of PID, as fdrecv's describe line, in $T/view.
describe_via() {
	local pid=$1 fd=$2
	shift 2
	bg fdrecv "$S" >"$T/view"
	run -0 t fdsend -t 5 -p "$pid" "$@" "$S" "$fd"
	reap_ok "$BG"
}

# ---- -m, --mode: the access mode of the reopen ----

@test "-m r, -m w, -m r+: a file the process holds read-only is reopened rdonly, wronly, rdwr; without -m, rdonly" {
	R=$(realpath "$T")
	echo data >f
	hold 'exec 6<f; echo ready; exec sleep 60'
	for m in r:rdonly w:wronly r+:rdwr; do
		describe_via "$HOLDER" 6 -m "${m%%:*}"
		assert_file view "3 name=unknown kind=file path=$R/f access=${m#*:}"
	done
	describe_via "$HOLDER" 6
	assert_file view "3 name=unknown kind=file path=$R/f access=rdonly"
}

@test "--mode w: the receiver writes, from offset 0, into a file the process only reads" {
	echo data >f
	hold 'exec 6<f; echo ready; exec sleep 60'
	bg fdrecv "$S" -- fdtool write 3 written
	run -0 t fdsend -t 5 --pid "$HOLDER" --mode w "$S" 6
	reap_ok "$BG"
	assert_file f written
}

@test "-m r+ changes only the access mode: O_APPEND of the original stays" {
	R=$(realpath "$T")
	: >f
	hold 'exec 6>>f; echo ready; exec sleep 60'
	describe_via "$HOLDER" 6 -m r+
	assert_file view "3 name=unknown kind=file path=$R/f access=rdwr flags=append"
}

@test "-m w on a directory: exit 1 'fd N (PATH): cannot reopen it with --mode w: Is a directory'" {
	R=$(realpath "$T")
	mkdir dir
	hold 'exec 7<dir; echo ready; exec sleep 60'
	run -1 t fdsend -t 1 -p "$HOLDER" -m w "$S" 7
	assert_output_lines "fdsend: pid $HOLDER: fd 7 ($R/dir): cannot reopen it with --mode w: Is a directory"
	absent "$S"
}

@test "-m w on a file without write permission: exit 1 '... cannot reopen it with --mode w: Permission denied'" {
	[ "$(id -u)" -ne 0 ] || skip "root opens any file (CAP_DAC_OVERRIDE); run the suite as another user"
	R=$(realpath "$T")
	echo data >f
	chmod 444 f
	hold 'exec 6<f; echo ready; exec sleep 60'
	run -1 t fdsend -t 1 -p "$HOLDER" -m w "$S" 6
	assert_output_lines "fdsend: pid $HOLDER: fd 6 ($R/f): cannot reopen it with --mode w: Permission denied"
	assert_file f data
	absent "$S"
}

@test "-m without --pid, or with --dup: usage errors (exit 2), as util-linux refuses --mode with --dup" {
	run -2 t fdsend -m r "$S" 0
	assert_output_lines "fdsend: --mode goes with --pid" "Try 'fdsend --help' for more information."
	run -2 t fdsend -p "$$" -d -m w "$S" 0
	assert_output_lines "fdsend: --mode does not go with --dup: a duplicate keeps its access mode" \
		"Try 'fdsend --help' for more information."
	absent "$S"
}

@test "-m with anything but r, r+ or w, such as the old --mode 0660: usage error naming --socket-mode" {
	for bad in 0660 rw a x ''; do
		run -2 t fdsend -p "$$" --mode "$bad" "$S" 0
		assert_output_lines "fdsend: invalid access mode: '$bad' (expected r, r+ or w; the mode of socket files is --socket-mode)" \
			"Try 'fdsend --help' for more information."
	done
	absent "$S"
}

@test "--socket-mode 0660 gives the --serve socket mode 0660 under umask 077" {
	bg sh -c 'umask 077; exec fdsend --serve --socket-mode 0660 "$1"' sh "$S"
	wait_for_socket "$S"
	[ "$(stat -c %a "$S")" = 660 ]
}

# ---- --pid PID:INODE: the process, named for good ----

# pidfd_inode PID: the inode number of a pidfd of PID (pidfs, Linux 6.9+).
pidfd_inode() {
	python3 -c 'import os, sys; print(os.fstat(os.pidfd_open(int(sys.argv[1]))).st_ino)' "$1"
}

# need_pidfs: python3 is there, and pidfds have inodes of their own.
need_pidfs() {
	command -v python3 >/dev/null || skip "python3 is not installed"
	python3 -c 'import os; os.pidfd_open' 2>/dev/null || skip "python3 has no os.pidfd_open"
	local a b
	a=$(pidfd_inode $$) && b=$(pidfd_inode 1) && [ "$a" != "$b" ] ||
		skip "no pidfs (Linux 6.9 or later): all pidfds share one inode"
}

@test "--pid PID:INODE with the inode of PID's pidfd takes its descriptors (reopened, -m, --dup)" {
	need_pidfs
	R=$(realpath "$T")
	echo data >f
	hold 'exec 6<f; echo ready; exec sleep 60'
	ino=$(pidfd_inode "$HOLDER")
	describe_via "$HOLDER:$ino" 6
	assert_file view "3 name=unknown kind=file path=$R/f access=rdonly"
	describe_via "$HOLDER:$ino" 6 -m w
	assert_file view "3 name=unknown kind=file path=$R/f access=wronly"
	describe_via "$HOLDER:$ino" 6 --dup
	assert_file view "3 name=unknown kind=file path=$R/f access=rdonly"
}

@test "--pid PID:INODE with another inode (a reused pid): exit 2 'pidfd inode X is not Y (the pid was reused?)', nothing sent" {
	need_pidfs
	echo data >f
	hold 'exec 6<f; echo ready; exec sleep 60'
	ino=$(pidfd_inode "$HOLDER")
	for dup in "" --dup; do
		run -2 t fdsend -t 1 $dup --pid "$HOLDER:$((ino + 1))" "$S" 6
		assert_output_lines "fdsend: pid $HOLDER: pidfd inode $ino is not $((ino + 1)) (the pid was reused?)"
	done
	absent "$S"
}

@test "--pid with a bad PID:INODE (12:abc, 12:, :5, 12:0, 0:5, 12:-1, 12:+5): usage error, exit 2" {
	for bad in 12:abc 12: :5 12:0 0:5 12:-1 12:+5 "12: 5" 12:5:6; do
		run -2 t fdsend --pid "$bad" "$S" 0
		assert_output_lines "fdsend: invalid pid: '$bad' (expected PID or PID:INODE, decimal numbers above 0)" \
			"Try 'fdsend --help' for more information."
	done
	absent "$S"
}

# ---- the differences fdsend(1) documents ----

@test "without -b, fdsend waits for a receiver as with it (util-linux's fails at once): exit 4 at -t" {
	for b in "" -b; do
		run -4 t fdsend $b -t 0.2 "$S" 0 </dev/null
		assert_output_lines "fdsend: $S: timed out waiting for a receiver"
	done
}

@test "a plain receiver, as util-linux's fdrecv is, gets the descriptor; fdsend exits 6, or 0 with --no-ack" {
	R=$(realpath "$T")
	echo data >f
	for ack in "" --no-ack; do
		bg fdtool plainrecv "$S" >out
		wait_for_socket "$S"
		if [ -z "$ack" ]; then
			run -6 t fdsend "$S" 5 5<f
			assert_output_lines "fdsend: $S: handed 1 descriptor to a receiver that cannot acknowledge (no greeting, no HELD): whether it took it is unknown"
		else
			run -0 t fdsend --no-ack "$S" 5 5<f
			assert_output_lines ""
		fi
		reap_ok "$BG"
		assert_file out "first frame: magic=FDHO version=2 type=1" "#0 $R/f" "descriptors: 1"
	done
}

@test "root: a bare NAME reaches a plain receiver at /run/fdsend/NAME, util-linux's place, whatever XDG_RUNTIME_DIR says" {
	[ "$(id -u)" -eq 0 ] || skip "needs root: /run/fdsend is root's directory"
	R=$(realpath "$T")
	echo data >f
	mkdir -m 700 xdg
	export XDG_RUNTIME_DIR=$T/xdg
	name=fdtest-$$-$BATS_TEST_NUMBER
	[ -e /run/fdsend ] || { mkdir -m 700 /run/fdsend; CLEANUP_DIRS=(/run/fdsend); }
	CLEANUP_FILES=("/run/fdsend/$name")
	bg fdtool plainrecv "/run/fdsend/$name" >out
	wait_for_socket "/run/fdsend/$name"
	run -0 t fdsend --no-ack "$name" 5 5<f
	reap_ok "$BG"
	assert_file out "first frame: magic=FDHO version=2 type=1" "#0 $R/f" "descriptors: 1"
	dir_empty xdg
}
