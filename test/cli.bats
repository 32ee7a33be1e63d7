#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# Command lines: --help, --version, usage errors and bad arguments (nothing is bound or sent).

load test_helper

# synopsis_of PROG: the SYNOPSIS of man/PROG.1 as groff renders it, on one line.
synopsis_of() {
	groff -mdoc -Tascii -P-cbou -rLL=300n "$ROOT/man/$1.1" 2>/dev/null |
		sed -n '/^SYNOPSIS/,/^DESCRIPTION/p' | sed '1d;$d' | tr -s ' \n' '  ' |
		sed 's/^ //; s/ $//'
}

# usage_of: the usage lines of $output (up to the first empty line), on one line.
usage_of() {
	printf '%s\n' "$output" | sed -n '1,/^$/p' | sed 's/^Usage: //' |
		tr -s ' \n' '  ' | sed 's/^ //; s/ $//'
}

@test "--help and -h print the man page's SYNOPSIS, word for word, on stdout and exit 0" {
	command -v groff >/dev/null || skip "groff is not installed (Debian: groff-base)"
	for prog in fdsend fdrecv; do
		want=$(synopsis_of "$prog")
		[[ "$want" == "$prog ["* ]]
		for opt in --help -h; do
			run -0 --separate-stderr t "$prog" "$opt"
			[ -z "$stderr" ]
			got=$(usage_of)
			[ "$got" = "$want" ] || { printf 'usage:    %s\nSYNOPSIS: %s\n' "$got" "$want" >&2; false; }
		done
	done
}

@test "--version and -V print 'NAME 0.1.0' on stdout and exit 0" {
	for prog in fdsend fdrecv; do
		for opt in --version -V; do
			run -0 --separate-stderr t "$prog" "$opt"
			[ "$output" = "$prog 0.1.0" ]
			[ -z "$stderr" ]
		done
	done
}

@test "an unknown option is a usage error (exit 2, one line and the --help hint)" {
	run -2 t fdsend --bogus "$S"
	assert_usage_error fdsend
	run -2 t fdrecv --bogus "$S"
	assert_usage_error fdrecv
	[ ! -e "$S" ]
}

@test "a missing SOCKET is a usage error for both tools" {
	run -2 t fdsend
	assert_usage_error fdsend
	run -2 t fdrecv
	assert_usage_error fdrecv
}

@test "fdrecv rejects bad counts: 0, 1048577, 3x, empty (exit 2, quoting the text)" {
	for bad in 0 1048577 3x ''; do
		run -2 t fdrecv -n "$bad" "$S"
		assert_usage_error fdrecv
		[[ "${lines[0]}" == *"'$bad'"* || "${lines[0]}" == *"$bad"* ]]
	done
	[ ! -e "$S" ]
}

@test "fdrecv rejects bad -f targets: x, 3,, -1, 3,x (exit 2)" {
	for bad in x 3,, -1 3,x ''; do
		run -2 t fdrecv -f "$bad" "$S"
		assert_usage_error fdrecv
	done
	[ ! -e "$S" ]
}

@test "both tools reject bad timeouts: abc, -1, 1x, empty (exit 2)" {
	for bad in abc -1 1x ''; do
		run -2 t fdrecv -t "$bad" "$S"
		assert_usage_error fdrecv
		[[ "${lines[0]}" == *"$bad"* ]]
		run -2 t fdsend -t "$bad" "$S" 0
		assert_usage_error fdsend
		[[ "${lines[0]}" == *"$bad"* ]]
	done
	[ ! -e "$S" ]
}

@test "fdsend rejects bad descriptor numbers: -f abc, FD 3x, FD 99999999999 (exit 2)" {
	run -2 t fdsend -f abc "$S"
	assert_usage_error fdsend
	[[ "${lines[0]}" == *abc* ]]
	run -2 t fdsend "$S" 3x
	assert_usage_error fdsend
	[[ "${lines[0]}" == *3x* ]]
	run -2 t fdsend "$S" 99999999999
	assert_usage_error fdsend
	[[ "${lines[0]}" == *99999999999* ]]
}

@test "fdsend: an FD that is not open is refused before connecting: 'fd 99: not open'" {
	run -2 t fdsend -t 5 "$S" 99 99>&-
	[ "${lines[0]}" = "fdsend: fd 99: not open" ]
	run -2 t fdsend -t 5 -f 98 "$S" 98>&-
	[ "${lines[0]}" = "fdsend: fd 98: not open" ]
}

@test "fdsend rejects more names than descriptors (usage error)" {
	run -2 t fdsend -t 5 --fdname a:b "$S" 0
	assert_usage_error fdsend
}

@test "fdsend rejects bad fdnames: 256 characters, tab, DEL, non-ASCII (usage error)" {
	long=$(printf 'n%.0s' {1..256})
	run -2 t fdsend -t 5 --fdname "$long" "$S" 0
	assert_usage_error fdsend
	run -2 t fdsend -t 5 --fdname $'tab\there' "$S" 0
	assert_usage_error fdsend
	run -2 t fdsend -t 5 --fdname $'del\x7f' "$S" 0
	assert_usage_error fdsend
	run -2 t fdsend -t 5 --fdname $'caf\xc3\xa9' "$S" 0
	assert_usage_error fdsend
}

@test "a SOCKET path of 108 bytes is refused: 'path too long (107 bytes at most)'" {
	p=./$(printf 'p%.0s' {1..106})
	[ "${#p}" -eq 108 ]
	run -2 t fdrecv "$p"
	[ "${lines[0]}" = "fdrecv: $p: path too long (107 bytes at most)" ]
	run -2 t fdsend -t 5 "$p" 0
	[ "${lines[0]}" = "fdsend: $p: path too long (107 bytes at most)" ]
	[ ! -e "$p" ]
}

@test "an abstract name of 108 bytes is refused (exit 2)" {
	name=$(printf 'a%.0s' {1..108})
	run -2 t fdrecv "@$name"
	[[ "${lines[0]}" == "fdrecv: "* ]]
	run -2 t fdrecv -a "$name"
	[[ "${lines[0]}" == "fdrecv: "* ]]
	run -2 t fdsend -t 5 "@$name" 0
	[[ "${lines[0]}" == "fdsend: "* ]]
}

@test "fdrecv --json with a COMMAND is a usage error" {
	run -2 t fdrecv --json "$S" -- true
	assert_usage_error fdrecv
	[ ! -e "$S" ]
}

@test "fdsend: options may follow SOCKET (it has no COMMAND); a bad word there is a usage error" {
	run -2 t fdsend -t 5 "$S" -1
	assert_usage_error fdsend
	[[ "${lines[0]}" == "fdsend: invalid option -- '1'" ]]
	run -2 t fdsend "$S" 0 -t nope
	[ "${lines[0]}" = "fdsend: invalid timeout: 'nope' (expected seconds, e.g. 2.5)" ]
	: >out
	bg fdrecv "$S" sh -c 'echo "names $LISTEN_FDNAMES" >&3'
	run -0 t fdsend "$S" 5 --fdname late 5>>out
	reap_ok "$BG"
	assert_file out "names late"
}

@test "fdrecv: options stop at SOCKET, later words belong to the COMMAND (sh -c ...)" {
	: >out
	bg fdrecv "$S" sh -c 'echo "command got $1" >&3' sh -c
	run -0 t fdsend "$S" 5 5>>out
	reap_ok "$BG"
	assert_file out "command got -c"
}

@test "fdrecv: COMMAND not found in PATH exits 127 before binding the socket" {
	run -127 t fdrecv -t 1 "$S" -- no-such-command-fdtest
	[ "$output" = "fdrecv: no-such-command-fdtest: command not found" ]
	[ ! -e "$S" ]
}

@test "fdrecv: a COMMAND path that does not exist exits 127 before binding the socket" {
	run -127 t fdrecv -t 1 "$S" --run "$T/missing/cmd"
	[ "$output" = "fdrecv: $T/missing/cmd: No such file or directory" ]
	[ ! -e "$S" ]
}

@test "fd:N with a bad number is refused with exit 2" {
	run -2 t fdrecv fd:x
	[[ "${lines[0]}" == "fdrecv: "*fd:x* || "${lines[0]}" == "fdrecv: "*"'x'"* ]]
	run -2 t fdsend fd:-1 0
	[[ "${lines[0]}" == "fdsend: "*fd:-1* || "${lines[0]}" == "fdsend: "*"'-1'"* ]]
}

@test "fdrecv: a COMMAND path that is a directory exits 126 before binding" {
	run -126 t fdrecv -t 1 "$S" -- "$T"
	[ "$output" = "fdrecv: $T: not a regular file" ]
	[ ! -e "$S" ]
}

@test "-t takes decimal seconds only: no sign, space, exponent or hex" {
	for bad in ' 1' 1e-1 0x1p-3 -1 1.2.3 ''; do
		run -2 t fdsend -t "$bad" "$S" 0
		[ "${lines[0]}" = "fdsend: invalid timeout: '$bad' (expected seconds, e.g. 2.5)" ]
	done
}
