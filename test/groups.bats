#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# Several SOCKETs, each with options of its own: util-linux's fdrecv groups
# ("-f 4 S4 -f 5 S5 --run CMD"), and the way fdrecv tells a SOCKET from COMMAND.

load test_helper

@test "fdrecv -f 4 S4 -f 5 S5 --run: senders run one after another in the other order; each gets HELD at once; both files go" {
	echo four >f4; echo five >f5
	bg fdrecv -f 4 "$T/s4" -f 5 "$T/s5" --run sh -c 'cat <&4; cat <&5' >out
	wait_for_socket s5
	run -0 t fdsend "$T/s5" 5 5<f5
	[ -z "$output" ]
	absent s5
	run -0 t fdsend "$T/s4" 5 5<f4
	reap_ok "$BG"
	assert_file out four five
	absent s4
}

@test "groups: -i, -o and -r per util-linux; a plain sender (1 byte, one descriptor) on one of them" {
	echo hello >in
	: >result
	bg fdrecv -i "$T/a" -o "$T/b" -r tr a-z A-Z
	wait_for_socket a
	wait_for_socket b
	run -0 t fdtool plainsend "$T/a" 0 <in
	run -0 t fdsend "$T/b" 6 6>result
	reap_ok "$BG"
	assert_file result HELLO
}

@test "groups: -a belongs to the SOCKET after it, before or after -f" {
	echo one >f1; echo two >f2
	bg fdrecv -a -f 4 "$ABS" -f 5 -a "$ABS-2" --run sh -c 'cat <&4; cat <&5' >out
	run -0 t fdsend "@$ABS-2" 5 5<f2
	run -0 t fdsend -a "$ABS" 5 5<f1
	reap_ok "$BG"
	assert_file out one two
}

@test "groups: COMMAND starts at the first word after a SOCKET with no group options before it" {
	: >f
	bg fdrecv -f 4 "$T/s4" -t 5 echo -f 5 x >out
	run -0 t fdsend "$T/s4" 5 5<f
	reap_ok "$BG"
	assert_file out "-f 5 x"
}

@test "groups: several SOCKETs with one that has no target is a usage error naming it" {
	run -2 t fdrecv -f 4 "$T/s1" -a "$T/s2" -- true
	assert_usage_error fdrecv
	[ "${lines[0]}" = "fdrecv: $T/s2: with several SOCKETs, each needs -f, -i, -o or -e before it" ]
	absent s1
	absent s2
}

@test "groups: options after the last of several SOCKETs are a usage error; after a lone first SOCKET they are its own and the next word is COMMAND" {
	run -2 t fdrecv -f 4 "$T/s4" -f 5 "$T/s5" -f 6 -- true
	assert_usage_error fdrecv
	[ "${lines[0]}" = "fdrecv: the options after $T/s5 need a SOCKET of their own" ]
	run -2 t fdrecv -f 3 "$T/s4" -f 4 -r "$T/s5" echo
	assert_usage_error fdrecv
	[ "${lines[0]}" = "fdrecv: the options after $T/s4 need a SOCKET of their own" ]
	run -2 t fdrecv -f 3 "$T/s4" -f 4 "$T/s4" echo
	assert_usage_error fdrecv
	[ "${lines[0]}" = "fdrecv: $T/s4: a SOCKET of two groups" ]
	absent s4
	: >f
	bg fdrecv "$S" -f 7 sh -c 'test -e /proc/self/fd/7 && echo at7' >out
	run -0 t fdsend "$S" 5 5<f
	reap_ok "$BG"
	assert_file out at7
}

@test "groups: a target twice, in two groups, is a usage error" {
	run -2 t fdrecv -f 4 "$T/s4" -f 4 "$T/s5" -- true
	assert_usage_error fdrecv
	[ "${lines[0]}" = "fdrecv: descriptor 4 is a target twice" ]
}

@test "groups: -f 4,5 takes two descriptors from one SOCKET and -n 1 checks the other's count" {
	echo a >fa; echo b >fb; echo c >fc
	bg fdrecv -f 4,5 "$T/s1" -n 1 -f 6 "$T/s2" -r sh -c 'cat <&4; cat <&5; cat <&6' >out
	run -0 t fdsend "$T/s1" 5 7 5<fa 7<fb
	run -0 t fdsend "$T/s2" 5 5<fc
	reap_ok "$BG"
	assert_file out a b c
}

@test "groups: a sender with the wrong count is refused on its SOCKET; the others keep waiting" {
	: >f
	bg fdrecv -f 4 "$T/s4" -f 5 "$T/s5" -r true 2>err
	wait_for_socket s5
	run -3 t fdsend "$T/s5" 5 5 5<f
	[ "$output" = "fdsend: $T/s5: refused by receiver: expected 1 descriptor, offered 2" ]
	is_waiting "$BG"
	run -0 t fdsend "$T/s5" 5 5<f
	run -0 t fdsend "$T/s4" 5 5<f
	reap_ok "$BG"
}

@test "groups: -t runs out with one SOCKET still waiting: exit 4 naming it, every socket file gone, nothing run" {
	: >f
	bg fdrecv -t 1 -f 4 "$T/s4" -f 5 "$T/s5" -r touch ran 2>err
	run -0 t fdsend "$T/s4" 5 5<f
	reap_ok "$BG" 4
	assert_file err "fdrecv: $T/s5: timed out waiting for a sender"
	absent s4
	absent s5
	[ ! -e ran ]
}

@test "groups with -c: one handoff from each of two holders" {
	echo one >f1; echo two >f2
	bg fdsend --serve --count 1 "$T/h1" 5 5<f1
	h1=$BG
	bg fdsend --serve --count 1 "$T/h2" 5 5<f2
	h2=$BG
	run -0 t fdrecv -c -f 4 "$T/h1" -f 5 "$T/h2" -r sh -c 'cat <&4; cat <&5'
	[ "$output" = "$(printf 'one\ntwo')" ]
	reap_ok "$h1"
	reap_ok "$h2"
}

# ---- util-linux's own examples, word for word but for the names ----

# ulname: a bare NAME unique to this test, cleaned up wherever it lands
# (/run/fdsend for root; $XDG_RUNTIME_DIR/fdsend, set under $T, for others).
ulname() {
	UL=ul-$$-$BATS_TEST_NUMBER-$RANDOM
	if [ "$(id -u)" -eq 0 ]; then
		[ -e /run/fdsend ] || CLEANUP_DIRS+=(/run/fdsend)
		CLEANUP_FILES+=("/run/fdsend/$UL")
	else
		mkdir -m 700 "$T/run"
		export XDG_RUNTIME_DIR=$T/run
	fi
}

@test "util-linux forms: 'fdrecv --stdin NAME --run cat' and 'fdsend --fd 3 NAME', -b or not, either order" {
	ulname
	echo hello >f
	bg fdrecv --stdin "$UL" --run cat >out
	run -0 t bash -c 'exec 3<f; exec fdsend --fd 3 "$1"' _ "$UL"
	reap_ok "$BG"
	assert_file out hello
	bg bash -c 'exec 3<f; exec fdsend -b --fd 3 "$1"' _ "$UL"
	run -0 t fdrecv --stdin "$UL" --run cat
	[ "$output" = hello ]
	reap_ok "$BG"
}

@test "util-linux forms: 'fdrecv -a --stdin NAME --run cat' and 'fdsend --abstract --fd 3 NAME'" {
	echo abstract >f
	bg fdrecv -a --stdin "$ABS" --run cat >out
	run -0 t bash -c 'exec 3<f; exec fdsend --abstract --fd 3 "$1"' _ "$ABS"
	reap_ok "$BG"
	assert_file out abstract
}

@test "util-linux forms: their test's three groups fed by three 'fdsend -f 3 -b PATH' in order, and '--pid \$\$ --dup --fd 7'" {
	bg fdrecv -f 4 "$T/p4" -f 5 "$T/p5" -f 6 "$T/p6" --run sh -c 'cat <&4; cat <&5; cat <&6' >out
	for n in 4 5 6; do
		echo "from_sock$n" >"f$n"
		run -0 t bash -c 'exec 3<"$1"; exec fdsend -f 3 -b "$2"' _ "f$n" "$T/p$n"
	done
	reap_ok "$BG"
	assert_file out from_sock4 from_sock5 from_sock6
	echo dup >f7
	bg fdrecv -i "$T/d" --run cat >out
	run -0 t bash -c 'exec 7<f7; exec fdsend --pid $$ --dup --fd 7 "$1"' _ "$T/d"
	reap_ok "$BG"
	assert_file out dup
}
