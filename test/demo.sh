#!/bin/sh
# SPDX-License-Identifier: MIT
# A narrated tour of fdsend and fdrecv, run by `make demo` from the repository root.
#
# Every step is a real handoff between separate processes. Nothing waits on a
# fixed sleep: fdsend waits for its receiver by itself, so each step simply
# starts one side in the background and the other in the foreground. Every
# wait is bounded with -t 10, so a broken build fails instead of hanging.
# The perl programs in step 3 are single-quoted on purpose:
# shellcheck disable=SC2016
set -eu

if ! [ -x ./fdsend ] || ! [ -x ./fdrecv ]; then
	echo "demo: ./fdsend and ./fdrecv not found: run 'make demo' from the repository root" >&2
	exit 1
fi
PATH=$PWD:$PATH
export PATH

tmp=$(mktemp -d "${TMPDIR:-/tmp}/fdsend-demo.XXXXXX")
jobs_started=
cleanup() {
	# Only our own background jobs, by pid, and only if something failed early.
	for pid in $jobs_started; do kill "$pid" 2>/dev/null || :; done
	# step 1's fdsend, if it has not finished (send.rc is written once it has)
	if [ -s "$tmp/send.pid" ] && [ ! -e "$tmp/send.rc" ]; then
		kill "$(cat "$tmp/send.pid")" 2>/dev/null || :
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP
cd "$tmp"

say() { printf '%s\n' "$@"; }
cmd() { printf '  $ %s\n' "$@"; }
out() { sed 's/^/    /' "$@"; }
fail() { say "" "demo: FAILED: $*" >&2; exit 1; }

say "fdsend hands open file descriptors over a UNIX socket to fdrecv, which runs"
say "a command with them (at 3, 4, ... with LISTEN_FDS set) or describes them."
say "Everything below happens in $tmp."
say "(-t 10 only keeps the demo from waiting forever if something is broken.)"

# --- 1 -----------------------------------------------------------------------
say "" "== 1. A pipe handed from one command to another"
say "fdsend's standard output is the write end of a pipe into 'sed'. fdsend hands"
say "that fd 1 over the socket ./pipe.sock; fdrecv runs a command with it on fd 3."
say "What the command writes to fd 3 comes out of sed, although the shell never"
say "connected the two."
cmd "fdsend -t 10 ./pipe.sock 1 | sed 's/^/sed read: /' &" \
    "fdrecv -t 10 ./pipe.sock -- sh -c 'echo \"hello from pid \$\$, via fd 3\" >&3'"
# fdsend runs in the background of the left-hand subshell so that its pid is
# known (for the cleanup on failure) and its status reaches us through a file.
{
	fdsend -t 10 ./pipe.sock 1 &
	echo $! >send.pid
	rc=0; wait $! || rc=$?
	echo "$rc" >send.rc
} | sed 's/^/sed read: /' >pipe.out &
jobs_started=$!
fdrecv -t 10 ./pipe.sock -- sh -c 'echo "hello from pid $$, via fd 3" >&3' ||
	fail "fdrecv exited $?"
wait "$jobs_started" || fail "the sed reader exited $?"
jobs_started=
[ "$(cat send.rc)" = 0 ] || fail "fdsend exited $(cat send.rc)"
out pipe.out
grep -q '^sed read: hello from pid [0-9]*, via fd 3$' pipe.out ||
	fail "sed did not read what the command wrote"
say "fdsend exited 0: the receiver confirmed it held the pipe."

# --- 2 -----------------------------------------------------------------------
say "" "== 2. What did I get? fdrecv without a command describes each descriptor"
say "Here fdsend hands three descriptors with names: its standard input (a pipe"
say "from printf), notes.txt open for reading and log.txt open for appending."
printf 'some notes\n' >notes.txt
cmd "printf 'hi\\n' | fdsend -t 10 --fdname input:notes:log ./view.sock 0 3 4 3<notes.txt 4>>log.txt &" \
    "fdrecv -t 10 ./view.sock"
printf 'hi\n' | fdsend -t 10 --fdname input:notes:log ./view.sock 0 3 4 3<notes.txt 4>>log.txt &
jobs_started=$!
fdrecv -t 10 ./view.sock >view.out || fail "fdrecv exited $?"
wait "$jobs_started" || fail "fdsend exited $?"
jobs_started=
out view.out
for want in '^3 name=input kind=pipe path=pipe:\[[0-9]*\] access=rdonly$' \
    "^4 name=notes kind=file path=$tmp/notes.txt access=rdonly\$" \
    "^5 name=log kind=file path=$tmp/log.txt access=wronly flags=append\$"; do
	grep -q "$want" view.out || fail "the describe view lacks a line matching $want"
done

say "" "The same with --json, for scripts:"
cmd "fdsend -t 10 --fdname notes ./json.sock 3 3<notes.txt &" \
    "fdrecv -t 10 --json ./json.sock"
fdsend -t 10 --fdname notes ./json.sock 3 3<notes.txt &
jobs_started=$!
fdrecv -t 10 --json ./json.sock >json.out || fail "fdrecv exited $?"
wait "$jobs_started" || fail "fdsend exited $?"
jobs_started=
out json.out
grep -q "^{\"fd\":3,\"name\":\"notes\",\"kind\":\"file\",\"path\":\"$tmp/notes.txt\",\"access\":\"rdonly\",\"flags\":\[\]}\$" json.out ||
	fail "the JSON view is not what was handed"

# --- 3 -----------------------------------------------------------------------
say "" "== 3. A listening TCP socket handed to a socket-activated server"
if ! command -v perl >/dev/null 2>&1; then
	say "skipped: this step uses perl (Debian's essential perl-base) to make the"
	say "listening socket and to play the server and the client, and there is none."
else
	say "The server is started first, through fdrecv, and waits for its socket. Like"
	say "any server written for systemd socket activation (sd_listen_fds(3)), it"
	say "checks LISTEN_PID and LISTEN_FDS and takes its listening socket from fd 3."
	server='$ENV{LISTEN_PID} == $$ && $ENV{LISTEN_FDS} == 1
    or die "server: not socket-activated\n";
open(my $l, "+<&=3") or die "server: fd 3: $!\n";
alarm 10;
accept(my $c, $l) or die "server: accept: $!\n";
my $req = <$c>;
chomp $req;
print $c "pid $$ answers \"$req\" on the socket named $ENV{LISTEN_FDNAMES}\n";'
	say "The perl code, in \$server:"
	printf '%s\n' "$server" | out
	cmd "fdrecv -t 10 ./web.sock -- perl -e \"\$server\" &"
	fdrecv -t 10 ./web.sock -- perl -e "$server" &
	jobs_started=$!

	say "" "Another process binds a TCP socket on 127.0.0.1 (a free port), listens,"
	say "and hands it, named 'web', with fdsend: perl makes the socket, then becomes"
	say "fdsend by exec. When fdsend returns, only the server holds the socket."
	listener='my ($portfile, $sock) = @ARGV;
$^F = 255;   # keep the socket open across exec
socket(my $s, PF_INET, SOCK_STREAM, 0) or die "socket: $!\n";
bind($s, pack_sockaddr_in(0, INADDR_LOOPBACK)) or die "bind: $!\n";
listen($s, 16) or die "listen: $!\n";
my ($port) = unpack_sockaddr_in(getsockname($s));
open(my $f, ">", $portfile) or die "$portfile: $!\n";
print $f "$port\n";
close($f) or die "$portfile: $!\n";
exec "fdsend", "-t", "10", "--fdname", "web", $sock, fileno($s)
    or die "exec fdsend: $!\n";'
	say "The perl code, in \$listener:"
	printf '%s\n' "$listener" | out
	cmd "perl -MSocket -e \"\$listener\" port ./web.sock"
	perl -MSocket -e "$listener" port ./web.sock || fail "the listener or fdsend exited $?"
	port=$(cat port)
	say "fdsend exited 0: the server holds the socket listening on 127.0.0.1:$port."

	say "" "A client connects to 127.0.0.1:$port and sends one line:"
	client='socket(my $c, PF_INET, SOCK_STREAM, 0) or die "client: socket: $!\n";
connect($c, pack_sockaddr_in($ARGV[0], INADDR_LOOPBACK)) or die "client: connect: $!\n";
alarm 10;
syswrite($c, "hello server\n") or die "client: write: $!\n";
my $answer = <$c>;
defined $answer or die "client: no answer\n";
print "client read: $answer";'
	cmd "perl -MSocket -e \"\$client\" $port"
	perl -MSocket -e "$client" "$port" >web.out || fail "the client exited $?"
	wait "$jobs_started" || fail "the server (fdrecv) exited $?"
	jobs_started=
	out web.out
	grep -q '^client read: pid [0-9]* answers "hello server" on the socket named web$' web.out ||
		fail "the server did not answer as expected"
fi

say "" "Demo complete. Next: man ./man/fdrecv.1 (the PROTOCOL section describes the"
say "wire format) and man ./man/fdsend.1; 'make test' runs the whole test suite."
