#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# fdrecv without COMMAND: the describe view, line by line, and --json.

load test_helper

# describe [fdrecv options...] -- SENDER...: run fdrecv OPTIONS $S in the background,
# the SENDER command in the foreground; fdrecv's stdout lands in $T/view.
describe() {
	local opts=()
	while [ "$1" != -- ]; do
		opts+=("$1")
		shift
	done
	shift
	bg fdrecv "${opts[@]}" "$S" >"$T/view"
	run -0 t "$@"
	reap_ok "$BG"
}

@test "describe: file (wronly, append), directory, chardev, fifo and pipe, with names" {
	R=$(realpath "$T")
	: >a.txt
	mkfifo ff
	describe -- fdtool mk pipe 8 9 bash -c '
		readlink /proc/$$/fd/9 >pipe.name
		exec fdsend --fdname log:dir:null:fifo:pipe "$1" 4 5 6 7 9' _ "$S" \
		4>>a.txt 5<"$T" 6<>/dev/null 7<>ff
	assert_file view \
		"3 name=log kind=file path=$R/a.txt access=wronly flags=append" \
		"4 name=dir kind=directory path=$R access=rdonly" \
		"5 name=null kind=chardev path=/dev/null access=rdwr" \
		"6 name=fifo kind=fifo path=$R/ff access=rdwr" \
		"7 name=pipe kind=pipe path=$(cat pipe.name) access=wronly"
}

@test "describe: sockets show family, type, state and local/peer addresses" {
	R=$(realpath "$T")
	describe -- fdtool mk tcplisten 4 fdtool mk unixlisten 5 "$R/l.sock" \
		fdtool mk unixlisten 6 "@$ABS" fdtool mk pair-seqpacket 7 20 \
		fdtool mk unixsock 8 fdtool mk udp 9 fdtool mk tcp 10 \
		fdtool mk unixconnect 11 "$R/l.sock" bash -c '
		echo "$FDTOOL_PORT_4 $FDTOOL_PORT_9" >ports
		exec fdsend --fdname web:path:abs:pair:unbound:udp:tcp:client "$1" 4 5 6 7 8 9 10 11' _ "$S"
	read -r tcp udp <ports
	assert_file view \
		"3 name=web kind=socket access=rdwr family=inet type=stream state=listening local=127.0.0.1:$tcp backlog=8" \
		"4 name=path kind=socket access=rdwr family=unix type=stream state=listening local=$R/l.sock" \
		"5 name=abs kind=socket access=rdwr family=unix type=stream state=listening local=@$ABS" \
		"6 name=pair kind=socket access=rdwr family=unix type=seqpacket state=connected" \
		"7 name=unbound kind=socket access=rdwr family=unix type=stream state=unbound" \
		"8 name=udp kind=socket access=rdwr family=inet type=dgram state=bound local=127.0.0.1:$udp" \
		"9 name=tcp kind=socket access=rdwr family=inet type=stream state=unbound" \
		"10 name=client kind=socket access=rdwr family=unix type=stream state=connected peer=$R/l.sock"
}

@test "describe: an inet6 listener shows local=[::1]:PORT" {
	fdtool mk tcp6listen 4 true || skip "no IPv6 loopback"
	describe -- fdtool mk tcp6listen 4 bash -c 'echo "$FDTOOL_PORT_4" >port; exec fdsend "$1" 4' _ "$S"
	assert_file view \
		"3 name=unknown kind=socket access=rdwr family=inet6 type=stream state=listening local=[::1]:$(cat port) backlog=8"
}

@test "describe: eventfd is anon, O_PATH is access=path, O_NONBLOCK shows flags=nonblock" {
	R=$(realpath "$T")
	: >a.txt
	describe -- fdtool mk eventfd 4 fdtool mk opath 5 "$R/a.txt" fdtool mk pipe 6 7 \
		fdtool mk nonblock 6 bash -c '
		readlink /proc/$$/fd/6 >pipe.name
		exec fdsend "$1" 4 5 6 7>&-' _ "$S"
	assert_file view \
		"3 name=unknown kind=anon path=anon_inode:[eventfd] access=rdwr" \
		"4 name=unknown kind=file path=$R/a.txt access=path" \
		"5 name=unknown kind=pipe path=$(cat pipe.name) access=rdonly flags=nonblock"
}

@test "describe: bytes outside printable non-space ASCII and backslash are escaped as \\xHH" {
	R=$(realpath "$T")
	: >'we ird\name'
	describe -- fdsend --fdname 'back\slash' "$S" 4 4<'we ird\name'
	assert_file view \
		"3 name=back\\x5cslash kind=file path=$R/we\\x20ird\\x5cname access=rdonly"
}

@test "describe: lines carry the -f target numbers, in the order received" {
	describe -f 9,4 -- fdsend --fdname first:second "$S" 5 6 5</dev/null 6>/dev/null
	assert_file view \
		"9 name=first kind=chardev path=/dev/null access=rdonly" \
		"4 name=second kind=chardev path=/dev/null access=wronly"
}

@test "describe: descriptors from a plain sender are unnamed" {
	bg fdrecv "$S" >view
	wait_for_socket "$S"
	run -0 t fdtool plainsend "$S" 5 5</dev/null
	reap_ok "$BG"
	assert_file view "3 name=unknown kind=chardev path=/dev/null access=rdonly"
}

@test "--json: one object per line between [ and ], flags always present" {
	R=$(realpath "$T")
	: >a.txt
	describe --json -- fdtool mk tcplisten 4 bash -c '
		echo "$FDTOOL_PORT_4" >port
		exec fdsend --fdname log:web "$1" 5 4 5>>a.txt' _ "$S"
	assert_file view \
		'[' \
		"{\"fd\":3,\"name\":\"log\",\"kind\":\"file\",\"path\":\"$R/a.txt\",\"access\":\"wronly\",\"flags\":[\"append\"]}," \
		"{\"fd\":4,\"name\":\"web\",\"kind\":\"socket\",\"access\":\"rdwr\",\"flags\":[],\"family\":\"inet\",\"type\":\"stream\",\"state\":\"listening\",\"local\":\"127.0.0.1:$(cat port)\",\"backlog\":\"8\"}" \
		']'
	if command -v python3 >/dev/null; then
		python3 -c 'import json, sys; json.load(sys.stdin)' <view
	fi
}

@test "--json with one descriptor and -f target" {
	describe --json -f 7 -- fdsend "$S" 5 5</dev/null
	assert_file view \
		'[' \
		'{"fd":7,"name":"unknown","kind":"chardev","path":"/dev/null","access":"rdonly","flags":[]}' \
		']'
}
