// SPDX-License-Identifier: MIT
/* server: the holder tests' socket-activated service, and the clients that prove it never drops a connection. */
#include <err.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>

#define FAIL 99 /* helper trouble, distinct from every status the tools use */

static const char usage[] =
	"usage: server [-r PORTFILE] [-w GOFILE] [-p PIDFILE] [-n] [-N] [-x STATUS] [-l LOG] [-i SIG]\n"
	"                                        serve fd 3 of socket activation: read a line,\n"
	"                                        answer \"pid PID\", close; TERM, INT, QUIT, USR1,\n"
	"                                        USR2: finish the request in hand, exit 0 (-i SIG:\n"
	"                                        ignore that one); first become ready: wait for\n"
	"                                        GOFILE, exit STATUS (-x), a child sends READY=1\n"
	"                                        (-N), write PIDFILE, send READY=1 (-n); LOG gets\n"
	"                                        \"ready PID\", \"stop-SIG PID\"; PORTFILE the port\n"
	"       server client HOST PORT STOPFILE  request in a loop until STOPFILE exists; prints\n"
	"                                        \"seen PID\" per new server, then \"ok=N failed=M\"\n"
	"       server ask HOST PORT             one request; prints the answer \"pid PID\"\n"
	"       server http HOST PORT STOPFILE    GET / (HTTP/1.0) in a loop until STOPFILE exists;\n"
	"                                        prints \"seen LINE\" per new first line of a body,\n"
	"                                        then \"ok=N failed=M\" (failed: refused, reset,\n"
	"                                        empty, not 200, no body; each one on stderr)\n"
	"       server get HOST PORT             one GET /; prints the body of a 200 answer\n"
	"       server poke HOST PORT            connect once (retrying while refused, 5 s), close\n"
	"       server stall SOCKET              connect to a holder, read its offer, never answer;\n"
	"                                        prints \"stalled\", then \"dropped\" at hangup\n"
	"       server idle READYFILE            keep the inherited fds open until a signal\n";

static volatile sig_atomic_t stop;

static int num(const char *s, long max)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < 0 || v > max)
		errx(FAIL, "bad number: %s", s);
	return (int)v;
}

static void nap_ms(long ms)
{
	struct timespec ts = { ms / 1000, ms % 1000 * 1000000 };
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Bounds every read and write on fd, so a silent peer cannot hang a helper. */
static void io_timeout(int fd, int seconds)
{
	struct timeval tv = { seconds, 0 };
	if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) < 0)
		err(FAIL, "setsockopt");
}

/* Writes FILE whole or not at all: a waiting test never reads half of it. */
static void write_ready(const char *file, const char *text)
{
	char tmp[PATH_MAX];
	snprintf(tmp, sizeof tmp, "%s.tmp", file);
	FILE *f = fopen(tmp, "we");
	if (!f || fputs(text, f) == EOF || fclose(f) == EOF)
		err(FAIL, "%s", tmp);
	if (rename(tmp, file) < 0)
		err(FAIL, "rename %s", file);
}

static void answer(int c)
{
	char req[256], out[32];
	size_t got = 0;
	ssize_t r;

	io_timeout(c, 5);
	/* the whole request line first: a SIGTERM meanwhile waits for it */
	while (got < sizeof req && (r = read(c, req + got, sizeof req - got)) != 0) {
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return;
		got += (size_t)r;
		if (memchr(req, '\n', got))
			break;
	}
	int n = snprintf(out, sizeof out, "pid %d\n", (int)getpid());
	if (send(c, out, (size_t)n, MSG_NOSIGNAL) != n)
		warn("send");   /* the client counts it; the server goes on */
}

static const char *log_file;     /* -l: events, one line each */
static volatile sig_atomic_t stop_sig;

static void on_stop(int sig)
{
	stop_sig = sig;
	stop = 1;
}

/* Appends "EVENT PID" to the -l log in one write, so that the lines of
 * several instances never mix. */
static void log_event(const char *event)
{
	char line[96];
	if (!log_file)
		return;
	int fd = open(log_file, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
	int n = snprintf(line, sizeof line, "%s %d\n", event, (int)getpid());
	if (fd < 0 || write(fd, line, (size_t)n) != n)
		err(FAIL, "%s", log_file);
	close(fd);
}

/* READY=1 to NOTIFY_SOCKET, the sd_notify(3) way. */
static void notify_ready(void)
{
	const char *where = getenv("NOTIFY_SOCKET");
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	size_t n = where ? strlen(where) : 0;
	if (!n || n >= sizeof sa.sun_path)
		errx(FAIL, "NOTIFY_SOCKET is not set");
	memcpy(sa.sun_path, where, n);
	if (where[0] == '@')
		sa.sun_path[0] = 0;
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || sendto(fd, "STATUS=up\nREADY=1", 17, 0, (struct sockaddr *)&sa,
			     (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n)) < 0)
		err(FAIL, "notify %s", where);
	close(fd);
}

/* Until FILE exists: the test decides when this instance becomes ready. */
static void wait_for_file(const char *file)
{
	long until = now_ms() + 20000;
	while (access(file, F_OK) < 0 && !stop) {
		if (now_ms() > until)
			errx(FAIL, "%s did not appear", file);
		nap_ms(5);
	}
}

struct serve_opts {
	const char *portfile, *gofile, *pidfile;
	int notify, child_notify, exit_status, ignore;
};

/* The steps to readiness that the options ask for; exits instead with -x. */
static void become_ready(const struct serve_opts *o)
{
	char text[24];
	if (o->gofile)
		wait_for_file(o->gofile);
	if (o->exit_status >= 0) {
		log_event("exit-early");
		exit(o->exit_status);
	}
	if (o->child_notify) {   /* a child says READY=1, never the server */
		pid_t c = fork();
		if (c == 0) {
			notify_ready();
			_exit(0);
		}
		if (c < 0 || waitpid(c, NULL, 0) < 0)
			err(FAIL, "child");
	}
	/* logged first: whatever the announcement causes comes after it */
	if (o->notify || o->pidfile)
		log_event("ready");
	if (o->pidfile) {
		snprintf(text, sizeof text, "%d\n", (int)getpid());
		write_ready(o->pidfile, text);
	}
	if (o->notify)
		notify_ready();
}

static void parse_serve(int argc, char **argv, struct serve_opts *o)
{
	int c;
	memset(o, 0, sizeof *o);
	o->exit_status = -1;
	while ((c = getopt(argc, argv, "r:w:p:nNx:l:i:")) != -1) {
		switch (c) {
		case 'r': o->portfile = optarg; break;
		case 'w': o->gofile = optarg; break;
		case 'p': o->pidfile = optarg; break;
		case 'n': o->notify = 1; break;
		case 'N': o->child_notify = 1; break;
		case 'x': o->exit_status = num(optarg, 255); break;
		case 'l': log_file = optarg; break;
		case 'i': o->ignore = num(optarg, 64); break;
		default: errx(FAIL, "%s", usage);
		}
	}
	if (optind != argc)
		errx(FAIL, "%s", usage);
}

static int serve(int argc, char **argv)
{
	const char *fds = getenv("LISTEN_FDS"), *pid = getenv("LISTEN_PID");
	struct serve_opts o;
	int acc = 0;
	socklen_t l = sizeof acc;

	parse_serve(argc, argv, &o);
	if (!fds || !pid || num(pid, INT_MAX) != getpid() || num(fds, INT_MAX) < 1)
		errx(FAIL, "not socket-activated: LISTEN_FDS=%s LISTEN_PID=%s (self %d)",
		     fds ? fds : "(unset)", pid ? pid : "(unset)", (int)getpid());
	if (getsockopt(3, SOL_SOCKET, SO_ACCEPTCONN, &acc, &l) < 0 || !acc)
		errx(FAIL, "fd 3: not a listening socket");
	/* the holder and the next instance share this open file description;
	 * non-blocking, a connection another instance took costs us nothing */
	int fl = fcntl(3, F_GETFL);
	if (fl < 0 || fcntl(3, F_SETFL, fl | O_NONBLOCK) < 0)
		err(FAIL, "fcntl fd 3");
	fcntl(3, F_SETFD, FD_CLOEXEC);

	/* the stop signals a server may be told to use; -i: one ignored */
	static const int stops[] = { SIGTERM, SIGINT, SIGQUIT, SIGUSR1, SIGUSR2 };
	sigset_t term, open_mask;
	sigemptyset(&term);
	struct sigaction sa = { .sa_handler = on_stop };
	for (size_t i = 0; i < sizeof stops / sizeof stops[0]; i++) {
		if (stops[i] == o.ignore)
			continue;
		sigaddset(&term, stops[i]);
		sigaction(stops[i], &sa, NULL);
	}
	if (o.ignore)
		signal(o.ignore, SIG_IGN);
	/* stopped while becoming ready: at once */
	become_ready(&o);
	sigprocmask(SIG_BLOCK, &term, &open_mask);
	if (o.portfile) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof ss;
		unsigned port = 0;
		char text[16];
		if (getsockname(3, (struct sockaddr *)&ss, &sl) < 0)
			err(FAIL, "getsockname fd 3");
		if (ss.ss_family == AF_INET)
			port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
		else if (ss.ss_family == AF_INET6)
			port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
		snprintf(text, sizeof text, "%u\n", port);
		write_ready(o.portfile, text);
	}
	/* a stop signal is let in only while idle in ppoll: a request in hand is finished */
	while (!stop) {
		struct pollfd p = { 3, POLLIN, 0 };
		if (ppoll(&p, 1, NULL, &open_mask) < 0) {
			if (errno == EINTR)
				continue;
			err(FAIL, "ppoll");
		}
		int c = accept4(3, NULL, NULL, SOCK_CLOEXEC);
		if (c < 0) {
			if (errno == EAGAIN || errno == EINTR || errno == ECONNABORTED)
				continue;
			err(FAIL, "accept");
		}
		printf("accepted\n");
		fflush(stdout);
		answer(c);
		close(c);
	}
	char event[32];
	snprintf(event, sizeof event, "stop-%d", (int)stop_sig);
	log_event(event);
	return 0;
}

static socklen_t inet_addr_of(const char *host, const char *port, struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof *ss);
	struct sockaddr_in *in = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
	uint16_t p = htons((uint16_t)num(port, 65535));
	if (inet_pton(AF_INET, host, &in->sin_addr) == 1) {
		in->sin_family = AF_INET;
		in->sin_port = p;
		return sizeof *in;
	}
	if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
		in6->sin6_family = AF_INET6;
		in6->sin6_port = p;
		return sizeof *in6;
	}
	errx(FAIL, "%s: not a numeric address", host);
}

/* Connects, sends req, reads until the server closes: the bytes read into
 * buf (NUL-terminated), or -1 with a warning that names the failure. */
static ssize_t talk(const struct sockaddr_storage *ss, socklen_t len,
		    const char *req, size_t reqlen, char *buf, size_t size)
{
	size_t got = 0;
	ssize_t r;
	int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		err(FAIL, "socket");
	io_timeout(fd, 5);
	if (connect(fd, (const struct sockaddr *)ss, len) < 0) {
		warn("connect");
		close(fd);
		return -1;
	}
	if (send(fd, req, reqlen, MSG_NOSIGNAL) != (ssize_t)reqlen) {
		warn("send");
		close(fd);
		return -1;
	}
	while (got < size - 1 && (r = read(fd, buf + got, size - 1 - got)) != 0) {
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			warn("read after %zu bytes", got);
			close(fd);
			return -1;
		}
		got += (size_t)r;
	}
	close(fd);
	buf[got] = 0;
	return (ssize_t)got;
}

/* One request: the answering server's pid, or -1 (with a warning) on any failure. */
static int request(const struct sockaddr_storage *ss, socklen_t len)
{
	char buf[64];
	ssize_t n = talk(ss, len, "hello\n", 6, buf, sizeof buf);
	int pid = -1, end = -1;

	if (n < 0)
		return -1;
	size_t got = (size_t)n;
	/* exactly "pid N\n", nothing after it */
	if (sscanf(buf, "pid %d\n%n", &pid, &end) != 1 || end != (int)got || buf[got - 1] != '\n') {
		warnx("bad answer: '%s'", buf);
		return -1;
	}
	return pid;
}

static int client(int argc, char **argv)
{
	struct sockaddr_storage ss;
	int seen[1024], nseen = 0, ok = 0, failed = 0;

	if (argc != 4)
		errx(FAIL, "%s", usage);
	socklen_t len = inet_addr_of(argv[1], argv[2], &ss);
	setvbuf(stdout, NULL, _IOLBF, 0);
	while (access(argv[3], F_OK) < 0) {
		int pid = request(&ss, len), i;
		if (pid < 0) {
			failed++;
			continue;
		}
		ok++;
		for (i = 0; i < nseen && seen[i] != pid; i++)
			;
		if (i == nseen && nseen < 1024) {
			seen[nseen++] = pid;
			printf("seen %d\n", pid);
		}
		nap_ms(1);   /* pacing, not synchronisation: spares ephemeral ports */
	}
	printf("ok=%d failed=%d\n", ok, failed);
	return failed ? 1 : 0;
}

/* One GET / over HTTP/1.0 (the server closes after the answer): the body of
 * a "200" answer in body (NUL-terminated), its length, or -1 with a warning
 * that names the failure: refused, reset, empty answer, other status, no body. */
static int http_get(const struct sockaddr_storage *ss, socklen_t len, char *body, size_t size)
{
	static const char req[] = "GET / HTTP/1.0\r\nHost: 127.0.0.1\r\nUser-Agent: fdsend-test\r\n\r\n";
	char buf[16384], *end;
	ssize_t n = talk(ss, len, req, sizeof req - 1, buf, sizeof buf);

	if (n < 0)
		return -1;
	size_t got = (size_t)n;
	if (!got) {
		warnx("empty answer");
		return -1;
	}
	if (strncmp(buf, "HTTP/1.", 7) || strncmp(buf + 8, " 200 ", 5)) {
		warnx("bad status: '%.*s'", (int)strcspn(buf, "\r\n"), buf);
		return -1;
	}
	if (!(end = strstr(buf, "\r\n\r\n")) || !end[4]) {
		warnx("no body in %zu bytes", got);
		return -1;
	}
	snprintf(body, size, "%s", end + 4);
	return (int)strlen(body);
}

static int http(int argc, char **argv)
{
	struct sockaddr_storage ss;
	static char seen[64][128];
	char body[4096];
	int nseen = 0, ok = 0, failed = 0;

	if (argc != 4)
		errx(FAIL, "%s", usage);
	socklen_t len = inet_addr_of(argv[1], argv[2], &ss);
	setvbuf(stdout, NULL, _IOLBF, 0);
	while (access(argv[3], F_OK) < 0) {
		int i;
		if (http_get(&ss, len, body, sizeof body) < 0) {
			failed++;
			continue;
		}
		ok++;
		body[strcspn(body, "\r\n")] = 0;
		for (i = 0; i < nseen && strcmp(seen[i], body); i++)
			;
		if (i == nseen && nseen < 64) {
			snprintf(seen[nseen++], sizeof seen[0], "%.127s", body);
			printf("seen %s\n", body);
		}
		nap_ms(1);   /* pacing, not synchronisation: spares ephemeral ports */
	}
	printf("ok=%d failed=%d\n", ok, failed);
	return failed ? 1 : 0;
}

static int get(int argc, char **argv)
{
	struct sockaddr_storage ss;
	char body[4096];

	if (argc != 3)
		errx(FAIL, "%s", usage);
	if (http_get(&ss, inet_addr_of(argv[1], argv[2], &ss), body, sizeof body) < 0)
		return 1;
	fputs(body, stdout);
	return 0;
}

static int ask(int argc, char **argv)
{
	struct sockaddr_storage ss;

	if (argc != 3)
		errx(FAIL, "%s", usage);
	int pid = request(&ss, inet_addr_of(argv[1], argv[2], &ss));
	if (pid < 0)
		return 1;
	printf("pid %d\n", pid);
	return 0;
}

static int poke(int argc, char **argv)
{
	struct sockaddr_storage ss;

	if (argc != 3)
		errx(FAIL, "%s", usage);
	socklen_t len = inet_addr_of(argv[1], argv[2], &ss);
	for (long end = now_ms() + 5000;; nap_ms(10)) {
		int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0)
			err(FAIL, "socket");
		if (connect(fd, (struct sockaddr *)&ss, len) == 0) {
			close(fd);
			return 0;
		}
		if (errno != ECONNREFUSED || now_ms() >= end)
			err(1, "connect %s:%s", argv[1], argv[2]);
		close(fd);
	}
}

static int stall(int argc, char **argv)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	unsigned char buf[4096];
	size_t got = 0, n;
	ssize_t r;

	if (argc != 2 || (n = strlen(argv[1])) >= sizeof sa.sun_path)
		errx(FAIL, "%s", usage);
	memcpy(sa.sun_path, argv[1], n);
	if (argv[1][0] == '@')
		sa.sun_path[0] = 0;
	socklen_t len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + (argv[1][0] != '@'));
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, len) < 0)
		err(FAIL, "connect %s", argv[1]);
	/* the offer's header arrived: the holder has accepted us and waits for our go-ahead */
	while (got < 12) {
		if ((r = read(fd, buf, sizeof buf)) <= 0)
			errx(FAIL, "no offer from %s", argv[1]);
		got += (size_t)r;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("stalled\n");
	while ((r = read(fd, buf, sizeof buf)) > 0 || (r < 0 && errno == EINTR))
		;
	printf("dropped\n");
	return 0;
}

static int idle(int argc, char **argv)
{
	sigset_t s;
	int sig;

	if (argc != 2)
		errx(FAIL, "%s", usage);
	sigemptyset(&s);
	sigaddset(&s, SIGTERM);
	sigaddset(&s, SIGINT);
	sigaddset(&s, SIGHUP);
	sigprocmask(SIG_BLOCK, &s, NULL);
	write_ready(argv[1], "ready\n");
	sigwait(&s, &sig);
	return 0;
}

int main(int argc, char **argv)
{
	signal(SIGPIPE, SIG_IGN);
	if (argc > 1 && !strcmp(argv[1], "client"))
		return client(argc - 1, argv + 1);
	if (argc > 1 && !strcmp(argv[1], "ask"))
		return ask(argc - 1, argv + 1);
	if (argc > 1 && !strcmp(argv[1], "http"))
		return http(argc - 1, argv + 1);
	if (argc > 1 && !strcmp(argv[1], "get"))
		return get(argc - 1, argv + 1);
	if (argc > 1 && !strcmp(argv[1], "poke"))
		return poke(argc - 1, argv + 1);
	if (argc > 1 && !strcmp(argv[1], "stall"))
		return stall(argc - 1, argv + 1);
	if (argc > 1 && !strcmp(argv[1], "idle"))
		return idle(argc - 1, argv + 1);
	return serve(argc, argv);
}
