#!/bin/sh
# SPDX-License-Identifier: MIT
# A narrated tour of fdsend and fdrecv, run by `make demo` from the repository root.
#
# Every step is a real handoff between separate processes. Nothing waits on a
# fixed sleep: fdsend waits for its receiver by itself, so each step simply
# starts one side in the background and the other in the foreground, and in
# step 4 each server instance reports through a FIFO once it is up. Every
# wait is bounded (-t 10, timeout 10, perl's alarm), so a broken build fails
# instead of hanging.
# The perl programs in steps 3 and 4 are single-quoted on purpose:
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
	# Only our own background jobs, by pid, and only if something failed early;
	# each is reaped, so none outlives the demo.
	for pid in $jobs_started; do kill "$pid" 2>/dev/null || :; done
	for pid in $jobs_started; do wait "$pid" 2>/dev/null || :; done
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
# ask N PID (step 4): the client of step 3 connects; instance N, process
# PID, must be the one that answers.
ask() {
	cmd "perl -MSocket -e \"\$client\" $port"
	perl -MSocket -e "$client" "$port" >"restart$1.out" || fail "the client exited $?"
	out "restart$1.out"
	grep -q "^client read: pid $2 answers \"hello server\"\$" "restart$1.out" ||
		fail "instance $1 did not answer"
}

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

# --- 4 -----------------------------------------------------------------------
say "" "== 4. Restarting a server without dropping a connection"
if ! command -v perl >/dev/null 2>&1; then
	say "skipped: this step uses perl to play the server and the client, and there is none."
else
	say "A holder, 'fdsend --serve', creates a listening TCP socket on 127.0.0.1 (port 0:"
	say "the kernel picks a free one), keeps it, and hands a copy to every"
	say "'fdrecv -c' that connects to ./restart.sock, until it gets SIGTERM."
	cmd "fdsend --serve ./restart.sock tcp:127.0.0.1:0 &"
	fdsend --serve ./restart.sock tcp:127.0.0.1:0 &
	holder=$!
	jobs_started=$holder

	say "" "fdrecv -c without a command shows what the holder holds, port included:"
	cmd "fdrecv -t 10 -c ./restart.sock"
	fdrecv -t 10 -c ./restart.sock >holder.out || fail "fdrecv -c exited $?"
	out holder.out
	port=$(sed -n 's/^3 name=tcp-[0-9]* kind=socket .* local=127\.0\.0\.1:\([0-9][0-9]*\) .*$/\1/p' holder.out)
	[ -n "$port" ] || fail "the describe view shows no listening socket on 127.0.0.1"

	say "" "Each instance of the server gets the socket at fd 3 with LISTEN_FDS set."
	say "Once it holds the socket, it writes its pid into the file named on its command"
	say "line: that says it is ready. Then it answers every connection with its pid,"
	say "until SIGTERM makes it exit 0 (a real server would first finish the"
	say "connections it has accepted). The perl code, in \$instance:"
	instance='$ENV{LISTEN_PID} == $$ && $ENV{LISTEN_FDS} == 1
    or die "server: not socket-activated\n";
open(my $l, "+<&=3") or die "server: fd 3: $!\n";
open(my $up, ">", $ARGV[0]) or die "server: $ARGV[0]: $!\n";
print $up "$$\n";
close($up) or die "server: $ARGV[0]: $!\n";
alarm 60;   # an instance left behind does not live forever
$SIG{TERM} = sub { exit 0 };
while (accept(my $c, $l)) {
    my $req = <$c>;
    chomp $req;
    print $c "pid $$ answers \"$req\"\n";
    close($c);
}
die "server: accept: $!\n";'
	printf '%s\n' "$instance" | out
	start='fdrecv -t 10 -c ./restart.sock --replace web.pid --ready pidfile:up.pid --ready-timeout 10'

	say "" "One command starts the first instance and every later one: fdrecv starts it,"
	say "waits until it is ready (here: until up.pid holds its pid), then stops the"
	say "instance web.pid names, if any, writes the new pid into web.pid, and returns."
	cmd "$start -- perl -e \"\$instance\" up.pid"
	$start -- perl -e "$instance" up.pid || fail "fdrecv exited $?"
	inst1=$(cat web.pid)
	jobs_started="$holder $inst1"
	say "Instance 1, pid $inst1, is ready, and web.pid names it. A client (the one of"
	say "step 3) connects to 127.0.0.1:$port:"
	ask 1 "$inst1"

	say "" "The restart is the very same command. Instance 2 gets a copy of the same"
	say "listening socket next to instance 1; only once it is ready is instance 1 sent"
	say "SIGTERM:"
	cmd "$start -- perl -e \"\$instance\" up.pid"
	$start -- perl -e "$instance" up.pid || fail "fdrecv exited $?"
	inst2=$(cat web.pid)
	jobs_started="$holder $inst1 $inst2"
	[ "$inst2" != "$inst1" ] || fail "web.pid still names instance 1"
	timeout 10 sh -c "while kill -0 $inst1 2>/dev/null; do sleep 0.05; done" ||
		fail "instance 1 is still running"
	jobs_started="$holder $inst2"
	say "Instance 2, pid $inst2, is ready; instance 1 is gone. The listening socket"
	say "never closed: the holder and the instances hold it, so a connection that"
	say "arrives while instances change waits in its backlog instead of being refused."
	say "" "The same client again:"
	ask 2 "$inst2"

	say "" "A broken version: the new instance exits before it is ready. fdrecv stops"
	say "nothing, leaves web.pid alone, says why and exits 5:"
	cmd "$start -- perl -e 'exit 1'"
	rc=0; $start -- perl -e 'exit 1' 2>broken.err || rc=$?
	out broken.err
	[ "$rc" = 5 ] || fail "fdrecv exited $rc, not 5"
	[ "$(cat web.pid)" = "$inst2" ] || fail "web.pid changed"
	say "Instance 2 still answers:"
	ask 3 "$inst2"

	say "" "The end: instance 2 is stopped, then the holder. On SIGTERM the holder"
	say "removes its socket file and exits 0."
	cmd "kill -TERM $inst2" "kill -TERM $holder"
	kill -TERM "$inst2"
	timeout 10 sh -c "while kill -0 $inst2 2>/dev/null; do sleep 0.05; done" ||
		fail "instance 2 is still running"
	jobs_started=$holder
	kill -TERM "$holder"
	rc=0; wait "$holder" || rc=$?
	jobs_started=
	[ "$rc" = 0 ] || fail "the holder exited $rc, not 0"
	[ ! -e restart.sock ] || fail "the holder left ./restart.sock behind"
	say "The holder exited 0, and ./restart.sock is gone."
fi

say "" "Demo complete. Next: man ./man/fdrecv.1 (the PROTOCOL section describes the"
say "wire format) and man ./man/fdsend.1; 'make test' runs the whole test suite."
