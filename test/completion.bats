#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# The bash completion: options, their values, and SOCKET names from the
# per-user directory, as bash would offer them.

load test_helper

# complete WORD...: what the completion offers for the last WORD (the line
# typed so far, the last word being completed), one per line, sorted.
complete_words() {
	XDG_RUNTIME_DIR=$T/run bash -c '
		source "$0"
		COMP_WORDS=("${@:1}")
		COMP_CWORD=$(($# - 1))
		"_$1"
		printf "%s\n" "${COMPREPLY[@]}" | sort -u' "$ROOT/completions/fdsend.bash" "$@"
}

@test "completion: options of both tools" {
	run -0 complete_words fdsend --se
	assert_output_lines --serve
	run -0 complete_words fdrecv --re
	assert_output_lines --ready --ready-timeout --replace
	run -0 complete_words fdsend --so
	assert_output_lines --socket-mode
	run -0 complete_words fdrecv --so
	assert_output_lines --socket-mode
}

@test "completion: fdsend -m and --mode offer r, r+ and w; after them, SOCKET" {
	run -0 complete_words fdsend -p 1 -m ''
	assert_output_lines r r+ w
	run -0 complete_words fdsend --mode r
	assert_output_lines r r+
	mkdir d
	: >d/s.sock
	run -0 complete_words fdsend -p 1 --mode r+ d/
	assert_output_lines d/s.sock
}

@test "completion: SOCKET offers the sockets of the per-user directory, not other files" {
	if [ "$(id -u)" -eq 0 ]; then
		# root's bare names are always in /run/fdsend
		d=/run/fdsend p=fdtest-$$-$BATS_TEST_NUMBER-
		[ -e "$d" ] || CLEANUP_DIRS=("$d")
		CLEANUP_FILES=("$d/${p}web" "$d/${p}db" "$d/${p}notes")
	else
		d=$T/run/fdsend p=
	fi
	mkdir -p "$d"
	chmod 700 "$d"
	fdtool stale "$d/${p}web"
	fdtool stale "$d/${p}db"
	: >"$d/${p}notes"
	run -0 complete_words fdrecv -c "${p}w"
	assert_output_lines "${p}web"
	run -0 complete_words fdsend "${p}d"
	assert_output_lines "${p}db"
	run -0 complete_words fdsend "${p}n"
	assert_output_lines ""
}

@test "completion: --stop-signal offers signal names, --ready and --export their words" {
	run -0 complete_words fdrecv --stop-signal QU
	assert_output_lines QUIT
	run -0 complete_words fdrecv --ready n
	assert_output_lines notify
	run -0 complete_words fdrecv --export e
	assert_output_lines einhorn
}

@test "completion: after SOCKET and --, fdrecv completes a command" {
	run -0 complete_words fdrecv web -- fdtoo
	assert_output_lines fdtool
}
