#!/usr/bin/env bats
# SPDX-License-Identifier: MIT
# The real nginx behind a holder: `fdrecv -c SOCKET --export nginx -- nginx ...`
# hands it the holder's listening socket through NGINX="3;4;...;", the variable
# of nginx's binary upgrade. nginx serves on it, stops gracefully on SIGQUIT
# (exit 0, no worker left behind), and a second nginx takes over the same port.
# Skipped when nginx is not installed (Debian: apt-get install nginx).

load test_helper
load holder_helper

# nginx workers outlive a master that was killed: teardown stops what is left.
ALL_NGX_WORKERS=()
eval "helper_$(declare -f teardown)"
teardown() {
	helper_teardown
	local w
	for w in "${ALL_NGX_WORKERS[@]}"; do
		same_process "${w%:*}" "${w#*:}" && kill -KILL "${w%:*}" 2>/dev/null
	done
	return 0
}

# need_nginx: NGINX_BIN is nginx's path (often /usr/sbin, off a user's PATH), or skip.
need_nginx() {
	ALL_NGX_WORKERS=()
	NGINX_BIN=$(PATH=$PATH:/usr/local/sbin:/usr/sbin:/sbin command -v nginx) ||
		skip "nginx is not installed (Debian: apt-get install nginx)"
}

# start_time PID: the start time of PID (field 22 of its stat), empty once it is gone.
start_time() {
	local stat
	stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
	stat=${stat##*) }
	set -- $stat
	echo "${20}"
}

# same_process PID START: PID still runs and is the process that started at START
# (never mistake a recycled pid for a worker left behind).
same_process() {
	[ -n "$2" ] && [ "$(start_time "$1")" = "$2" ] &&
		[ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" != Z ]
}

# holder_ports: the ports of the holder's inet listeners, one a line, from a
# describe handoff (one handoff); holder_port of holder_helper reads only the first.
holder_ports() {
	local out line
	out=$(t fdrecv -c -t 10 "$S") || { echo "fdrecv -c $S failed: $out" >&2; return 1; }
	while IFS= read -r line; do
		[[ "$line" =~ \ local=[^\ ]*:([0-9]+)(\ |$) ]] || { echo "no port in: $line" >&2; return 1; }
		echo "${BASH_REMATCH[1]}"
	done <<<"$out"
}

# holder_line: the describe line of the holder's (first) descriptor (one handoff).
holder_line() {
	local out
	out=$(t fdrecv -c -t 10 "$S") || { echo "fdrecv -c $S failed: $out" >&2; return 1; }
	echo "${out%%$'\n'*}"
}

# nginx_conf NAME PORT...: $T/NAME/nginx.conf, an nginx that answers "ok" on
# 127.0.0.1:PORT for each PORT (the listen must be the inherited socket's address,
# or nginx binds a socket of its own), with every path under $T/NAME and no `user`
# directive, so that any user can run it. multi_accept makes a worker accept until
# EAGAIN: on a blocking socket it would hang in accept(2) with the request unanswered,
# so serving proves the socket non-blocking, as nginx assumes inherited ones are.
nginx_conf() {
	local d=$T/$1 p
	shift
	mkdir -p "$d"
	{
		cat <<-EOF
		worker_processes 2;
		pid $d/nginx.pid;
		error_log $d/error.log notice;
		events {
		    worker_connections 64;
		    multi_accept on;
		}
		http {
		    access_log off;
		    client_body_temp_path $d/client_body;
		    proxy_temp_path $d/proxy;
		    fastcgi_temp_path $d/fastcgi;
		    uwsgi_temp_path $d/uwsgi;
		    scgi_temp_path $d/scgi;
		    server {
		EOF
		for p in "$@"; do
			echo "        listen 127.0.0.1:$p;"
		done
		cat <<-EOF
		        location / {
		            return 200 "ok\n";
		        }
		    }
		}
		EOF
	} >"$d/nginx.conf"
}

# pidfile_is FILE PID: FILE holds PID (nginx writes it once its signals are set up).
pidfile_is() {
	[ "$(cat "$1" 2>/dev/null)" = "$2" ]
}

# worker_count PID N: the nginx master PID has N children (its workers).
worker_count() {
	[ "$(pgrep -P "$1" | wc -l)" -eq "$2" ]
}

# start_nginx NAME [FDRECV-OPT...]: nginx with $T/NAME/nginx.conf, in the foreground
# with its master, through `fdrecv -c $S --export nginx`; returns once it wrote
# its pid file and runs its 2 workers. NGX is the master (fdrecv's pid: it execs
# nginx), NGX_BG its guard's, NGX_WORKERS its workers as "pid:start" (also kept in
# ALL_NGX_WORKERS for teardown).
start_nginx() {
	local d=$T/$1 w
	shift
	bg fdrecv -c "$S" --export nginx "$@" -- "$NGINX_BIN" -e "$d/error.log" \
		-c "$d/nginx.conf" -p "$d/" -g 'daemon off; master_process on;' >"$d/out" 2>&1
	NGX_BG=$BG
	NGX=$(child_of "$NGX_BG")
	wait_until pidfile_is "$d/nginx.pid" "$NGX" ||
		{ echo "nginx $NGX wrote no pid file:" >&2; cat "$d/out" "$d/error.log" >&2; return 1; }
	wait_until worker_count "$NGX" 2 ||
		{ echo "nginx $NGX has no 2 workers:" >&2; pgrep -a -P "$NGX" >&2; cat "$d/error.log" >&2; return 1; }
	NGX_WORKERS=()
	for w in $(pgrep -P "$NGX"); do
		NGX_WORKERS+=("$w:$(start_time "$w")")
	done
	ALL_NGX_WORKERS+=("${NGX_WORKERS[@]}")
}

# http_get PORT: GET / on 127.0.0.1:PORT (HTTP/1.0: nginx closes after the answer),
# bounded by 5 s; the answer without carriage returns.
http_get() {
	timeout -k 1 5 bash -c 'exec 5<>"/dev/tcp/127.0.0.1/$0" || exit
		printf "GET / HTTP/1.0\r\nHost: localhost\r\n\r\n" >&5
		cat <&5' "$1" 3>&- | tr -d '\r'
}

# assert_served PORT: a GET on PORT gets nginx's 200 "ok".
assert_served() {
	local answer
	answer=$(http_get "$1")
	if [[ "$answer" != "HTTP/1.1 200 OK"$'\n'* ]] || [[ "$answer" != *$'\nServer: nginx'* ]] ||
	   [[ "$answer" != *$'\n\nok' ]]; then
		printf 'GET on port %s answered:\n%s\n' "$1" "$answer" >&2
		return 1
	fi
}

# holds_file PATH: some process has PATH open.
holds_file() {
	[ -n "$(find /proc/[0-9]*/fd -lname "$1" -print -quit 2>/dev/null)" ]
}

# nginx_gone NAME: nothing of nginx $T/NAME runs: no process whose command line
# names its config (the master; workers retitle themselves "nginx: worker process"),
# no process holding its error log open (master and workers do), and none of the
# workers NGX_WORKERS.
nginx_gone() {
	local d=$T/$1 w
	wait_until eval '! pgrep -f -- "$d/nginx.conf" >/dev/null' ||
		{ echo "still running:" >&2; pgrep -a -f -- "$d/nginx.conf" >&2; return 1; }
	wait_until eval '! holds_file "$d/error.log"' ||
		{ echo "$d/error.log still open:" >&2; find /proc/[0-9]*/fd -lname "$d/error.log" >&2 2>/dev/null; return 1; }
	for w in "${NGX_WORKERS[@]}"; do
		wait_until eval '! same_process "${w%:*}" "${w#*:}"' ||
			{ echo "worker ${w%:*} left behind" >&2; return 1; }
	done
}

# stop_nginx NAME: SIGQUIT to the master NGX (guard NGX_BG, workers NGX_WORKERS),
# a graceful stop: its workers finish, it exits 0 and leaves nothing behind, and
# its log shows a clean shutdown.
stop_nginx() {
	local d=$T/$1
	kill -QUIT "$NGX"
	reap_ok "$NGX_BG" || { cat "$d/out" "$d/error.log" >&2; return 1; }
	nginx_gone "$1"
	grep -q 'signal 3 (SIGQUIT) received' "$d/error.log"
	grep -Eq 'worker process [0-9]+ exited with code 0' "$d/error.log"
	grep -Eq '\[notice\] [0-9#]+: exit$' "$d/error.log"
	assert_clean_log "$1"
}

# assert_clean_log NAME: nginx took the inherited sockets (from 3 on) and logged
# nothing worse than a notice; fdrecv and nginx wrote nothing else.
assert_clean_log() {
	local d=$T/$1
	grep -q 'using inherited sockets from "3;' "$d/error.log" ||
		{ echo "nginx did not inherit 3:" >&2; cat "$d/error.log" >&2; return 1; }
	if grep -E '\[(warn|error|crit|alert|emerg)\]' "$d/error.log" >&2; then
		return 1
	fi
	[ ! -s "$d/out" ] || { cat "$d/out" >&2; return 1; }
}

# listener_re FLAGS PORT: the describe line of the holder's listener on 127.0.0.1:PORT,
# with FLAGS ("flags=nonblock " or nothing), as an extended regex.
listener_re() {
	echo "^3 name=tcp-$2 kind=socket access=rdwr ${1}family=inet type=stream" \
		"state=listening local=127\.0\.0\.1:$2( backlog=[0-9]+)?\$"
}

# serve_and_quit FLAGS [FDSEND-OPT...]: the whole round on a holder made with
# `fdsend --serve FDSEND-OPT... $S tcp:127.0.0.1:0`, whose socket's describe line
# shows FLAGS (such as "flags=nonblock ", or nothing) at first: nginx serves a GET
# through the handed socket, then stops gracefully; the holder keeps its socket,
# now non-blocking, since --export nginx made it so and the flag is shared.
serve_and_quit() {
	local flags=$1
	shift
	start_holder "$@" "$S" tcp:127.0.0.1:0
	base=$(fd_count "$HOLDER")
	port=$(holder_ports)
	line=$(holder_line)
	assert_matches "$line" "$(listener_re "$flags" "$port")"
	nginx_conf web "$port"
	start_nginx web
	# nginx runs: the holder's copy is non-blocking now
	line=$(holder_line)
	assert_matches "$line" "$(listener_re "flags=nonblock " "$port")"
	assert_served "$port"
	assert_served "$port"
	stop_nginx web
	# nginx is gone: the holder still listens, still non-blocking, and leaks nothing
	line=$(holder_line)
	assert_matches "$line" "$(listener_re "flags=nonblock " "$port")"
	wait_fd_count "$HOLDER" "$base"
	[ ! -s "$T/holder.err" ]
}

@test "--export nginx sets NGINX=3;4;... for the command and removes LISTEN_*" {
	start_holder "$S" tcp:127.0.0.1:0 tcp:127.0.0.1:0
	LISTEN_FDS=2 LISTEN_PID=1 LISTEN_FDNAMES=a:b run -0 t fdrecv -c "$S" --export nginx -- env
	grep -qx 'NGINX=3;4;' <<<"$output"
	run -1 grep '^LISTEN_' <<<"$output"
	[ ! -s "$T/holder.err" ]
}

@test "nginx through a holder with a blocking socket: --export nginx makes it non-blocking for the holder too, a GET gets 200, SIGQUIT stops nginx cleanly" {
	need_nginx
	serve_and_quit ""
}

@test "nginx through a holder made with fdsend --nonblock: non-blocking from the start, a GET gets 200, SIGQUIT stops nginx cleanly" {
	need_nginx
	serve_and_quit "flags=nonblock " --nonblock
}

@test "nginx with two listeners from the holder (NGINX=3;4;) serves on both ports" {
	need_nginx
	start_holder "$S" tcp:127.0.0.1:0 tcp:127.0.0.1:0
	ports=($(holder_ports))
	[ "${#ports[@]}" -eq 2 ]
	nginx_conf web "${ports[@]}"
	start_nginx web
	grep -q 'using inherited sockets from "3;4;"' "$T/web/error.log"
	assert_served "${ports[0]}"
	assert_served "${ports[1]}"
	stop_nginx web
	[ ! -s "$T/holder.err" ]
}

@test "a graceful nginx restart through the holder: a second nginx starts next to the first, the first quits, the second serves the same port" {
	need_nginx
	start_holder "$S" tcp:127.0.0.1:0
	port=$(holder_ports)
	nginx_conf old "$port"
	nginx_conf new "$port"
	start_nginx old
	old=$NGX old_bg=$NGX_BG old_workers=("${NGX_WORKERS[@]}")
	assert_served "$port"
	start_nginx new
	new=$NGX new_bg=$NGX_BG new_workers=("${NGX_WORKERS[@]}")
	NGX=$old NGX_BG=$old_bg NGX_WORKERS=("${old_workers[@]}")
	stop_nginx old
	# the new one still runs, and now answers every request
	is_waiting "$new"
	assert_served "$port"
	assert_served "$port"
	NGX=$new NGX_BG=$new_bg NGX_WORKERS=("${new_workers[@]}")
	stop_nginx new
	[ ! -s "$T/holder.err" ]
}
