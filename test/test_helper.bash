# SPDX-License-Identifier: MIT
# Loaded by every test file: fresh binaries first on PATH, one directory per
# test, guarded background processes reaped in teardown, bounded waits.

bats_require_minimum_version 1.5.0

ROOT=$(cd "$BATS_TEST_DIRNAME/.." && pwd)
PATH="$ROOT:$ROOT/test:$PATH"

# Every bound below is a bound on an event, never a pace: generous, and
# multiplied by FDSEND_TEST_SLOW (make sets it for sanitizer builds and for
# check-busy, where the same work takes several times as long).
SLOW=${FDSEND_TEST_SLOW:-1}
GUARD=$((20 * SLOW))

setup() {
	local b
	for b in fdsend fdrecv test/fdtool; do
		[ -x "$ROOT/$b" ] || { echo "$ROOT/$b missing: run 'make all helpers'" >&2; return 1; }
	done
	T=$BATS_TEST_TMPDIR
	cd "$T"
	S=$T/s.sock                                  # the usual socket path
	ABS=fdtest-$$-$BATS_TEST_NUMBER-$RANDOM      # a unique abstract name
	BG_PIDS=()
	CLEANUP_FILES=()   # files this test may leave outside $T
	CLEANUP_DIRS=()    # directories this test created outside $T
	unset LISTEN_FDS LISTEN_PID LISTEN_FDNAMES
}

teardown() {
	local p
	for p in "${BG_PIDS[@]}"; do
		is_our_child "$p" && kill -TERM "$p" 2>/dev/null
	done
	for p in "${BG_PIDS[@]}"; do
		wait "$p" 2>/dev/null || true
	done
	BG_PIDS=()
	# outside $BATS_TEST_TMPDIR: our files, then our directories if left empty
	for p in "${CLEANUP_FILES[@]}"; do rm -f -- "$p"; done
	for p in "${CLEANUP_DIRS[@]}"; do rmdir -- "$p" 2>/dev/null || true; done
}

# True when PID is still a child of this shell (never signal a recycled pid).
is_our_child() {
	local stat
	stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	stat=${stat##*) }
	set -- $stat
	[ "$2" = "$BASHPID" ]
}

# bg CMD...: run CMD in the background under a guard (20 s, times SLOW), away
# from bats' fd 3. Sets BG to its pid (the timeout process; the command is its
# only child).
bg() {
	timeout -k 2 "$GUARD" "$@" 3>&- &
	BG=$!
	BG_PIDS+=("$BG")
}

# reap PID: wait for a background process; its status lands in REAPED.
reap() {
	REAPED=0
	wait "$1" || REAPED=$?
	local p keep=()
	for p in "${BG_PIDS[@]}"; do
		[ "$p" = "$1" ] || keep+=("$p")
	done
	BG_PIDS=("${keep[@]}")
}

# reap_ok PID [STATUS]: reap and insist on the status (default 0).
reap_ok() {
	reap "$1"
	[ "$REAPED" -eq "${2:-0}" ] || { echo "pid $1 exited $REAPED, expected ${2:-0}" >&2; return 1; }
}

# t CMD...: run a foreground command under the same guard (for `run`), without fd 3.
t() {
	timeout -k 2 "$GUARD" "$@" 3>&-
}

# wait_until CMD...: until CMD succeeds, trying every 10 ms for 5 s (times
# SLOW) at most (a bounded wait on an event, never a fixed sleep).
wait_until() {
	local i
	for ((i = 0; i < 500 * SLOW; i++)); do
		"$@" && return 0
		sleep 0.01
	done
	return 1
}

# child_of PID: the pid of the only child of PID (the command under `timeout`).
child_of() {
	wait_until pgrep -P "$1"
}

# wait_for_socket PATH: until PATH is a socket (fdrecv renames it into place once listening).
wait_for_socket() {
	wait_until test -S "$1" && return 0
	echo "socket $1 did not appear within 5 s" >&2
	return 1
}

# wait_for_abstract NAME: until a listening abstract socket @NAME exists.
wait_for_abstract() {
	wait_until grep -q " 00010000 .* @$1\$" /proc/net/unix && return 0
	echo "abstract socket @$1 did not appear within 5 s" >&2
	return 1
}

# wait_for_line FILE REGEX: until a line of FILE matches (e.g. a warning was printed).
wait_for_line() {
	wait_until grep -Eq -- "$2" "$1" 2>/dev/null && return 0
	echo "no line matching '$2' in $1 within 5 s:" >&2
	cat "$1" >&2 2>/dev/null
	return 1
}

# complete_line FILE: FILE holds at least one line, and ends with a newline.
complete_line() {
	[ -s "$1" ] && [ -z "$(tail -c 1 "$1")" ]
}

# wait_for_output FILE: until FILE holds at least one complete line.
wait_for_output() {
	wait_until complete_line "$1" && return 0
	echo "nothing written to $1 within 5 s" >&2
	return 1
}

# default_backlog: what listen(fd, SOMAXCONN) gets here (the kernel caps it).
default_backlog() {
	local cap
	cap=$(cat /proc/sys/net/core/somaxconn)
	echo $((cap < 4096 ? cap : 4096))
}

# ---- acting as other users, and writing protocol frames by hand ----

# "${AS_NOBODY[@]}" CMD...: CMD as uid/gid 65534; AS_OTHER: as uid/gid 65533.
AS_NOBODY=(setpriv --reuid=65534 --regid=65534 --clear-groups)
AS_OTHER=(setpriv --reuid=65533 --regid=65533 --clear-groups)

need_other_users() {
	[ "$(id -u)" -eq 0 ] || skip "needs root to act as other users"
	command -v setpriv >/dev/null || skip "setpriv is not installed"
	"${AS_NOBODY[@]}" true 2>/dev/null || skip "setpriv cannot switch to uid 65534"
	"${AS_OTHER[@]}" true 2>/dev/null || skip "setpriv cannot switch to uid 65533"
}

# bg_guarded SECONDS CMD...: bg with a longer guard than bg's 20 s.
bg_guarded() {
	local secs=$1
	shift
	timeout -k 2 "$secs" "$@" 3>&- &
	BG=$!
	BG_PIDS+=("$BG")
}

# frame TYPE PAYLOAD_HEX: one protocol frame, as hex (header: "FDHO", v1, type, 0, length LE).
frame() {
	local p=${2// /}
	local n=$((${#p} / 2))
	printf '4644484f01%02x0000%s%s' "$1" "$(le32 "$n")" "$p"
}

# le32 N: N as 4 little-endian bytes, in hex.
le32() {
	printf '%02x%02x%02x%02x' $(($1 & 255)) $(($1 >> 8 & 255)) $(($1 >> 16 & 255)) $(($1 >> 24 & 255))
}

# offer COUNT FLAGS: an OFFER payload with COUNT unnamed descriptors.
offer() {
	local names
	names=$(printf '00%.0s' $(seq "$1"))
	printf '%s%s%s%s' "$(le32 "$1")" "$(le32 "$2")" "$(le32 "$1")" "$names"
}

# absent PATH: nothing at PATH, not even a dangling link.
absent() {
	[ ! -e "$1" ] && [ ! -L "$1" ]
}

# wait_gone PATH: until PATH no longer exists.
wait_gone() {
	wait_until absent "$1" && return 0
	echo "$1 still exists after 5 s" >&2
	return 1
}

# fd_count PID: how many descriptors PID has open.
fd_count() {
	ls "/proc/$1/fd" | wc -l
}

# fd_count_is PID N: PID holds exactly N descriptors.
fd_count_is() {
	[ "$(fd_count "$1")" -eq "$2" ]
}

# wait_fd_count PID N: until PID holds exactly N descriptors (a holder closes a
# receiver's connection only after reading its last answer).
wait_fd_count() {
	wait_until fd_count_is "$1" "$2" && return 0
	echo "pid $1 holds $(fd_count "$1") descriptors after 5 s, expected $2:" >&2
	ls -l "/proc/$1/fd" >&2
	return 1
}

# is_waiting PID: the background process is alive (not yet exited).
is_waiting() {
	kill -0 "$1" 2>/dev/null && [ "$(awk '{print $3}' "/proc/$1/stat")" != Z ]
}

# assert_file FILE LINE...: FILE holds exactly these lines.
assert_file() {
	local f=$1
	shift
	local want
	want=$(printf '%s\n' "$@")
	if [ "$(cat "$f")" != "$want" ]; then
		printf 'file %s:\n%s\n-- expected:\n%s\n' "$f" "$(cat "$f")" "$want" >&2
		return 1
	fi
}

# assert_output_lines LINE...: $output is exactly these lines.
assert_output_lines() {
	local want
	want=$(printf '%s\n' "$@")
	if [ "$output" != "$want" ]; then
		printf 'output:\n%s\n-- expected:\n%s\n' "$output" "$want" >&2
		return 1
	fi
}

# assert_usage_error PROG: $output is one line then the --help hint.
assert_usage_error() {
	if [ "${#lines[@]}" -ne 2 ] || [ "${lines[1]}" != "Try '$1 --help' for more information." ] ||
	   [[ "${lines[0]}" != "$1: "* ]]; then
		printf 'not a usage error of %s:\n%s\n' "$1" "$output" >&2
		return 1
	fi
}

# dir_empty DIR: nothing left behind (no socket file, no temporary name).
dir_empty() {
	local left
	left=$(ls -A "$1")
	[ -z "$left" ] || { echo "left in $1: $left" >&2; return 1; }
}
