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
}

@test "completion: SOCKET offers the sockets of the per-user directory, not other files" {
	mkdir -p "$T/run/fdsend"
	chmod 700 "$T/run/fdsend"
	fdtool stale "$T/run/fdsend/web"
	fdtool stale "$T/run/fdsend/db"
	: >"$T/run/fdsend/notes"
	run -0 complete_words fdrecv -c w
	assert_output_lines web
	run -0 complete_words fdsend d
	assert_output_lines db
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
