/* SPDX-License-Identifier: MIT */
/* driver: times fdsend/fdrecv against raw C floors (rawsend, rawrecv,
 * rawserve), tool and floor rounds interleaved, and prints table rows.
 *
 *   driver DIR handoff recv-first|send-first N ROUNDS [SECONDS]
 *   driver DIR holder BATCHES PER-BATCH
 *   driver DIR restart RESTARTS WINDOW-MS
 *   driver DIR rss N
 *
 * Run from the repository root: it uses bench/ and the tools in
 * $FDBENCH_TOOLS (default: .), where run.sh keeps a copy taken at the
 * start, safe from rebuilds meanwhile. DIR is a scratch directory for the
 * sockets. Both sides of a comparison are started the same way (posix_spawn;
 * receivers with every fd above 2 closed), so process start costs the same
 * for tool and floor. */
#include <arpa/inet.h>
#include <err.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "../common.h"


extern char **environ;

/* children alive right now: killed if anything goes wrong */
static volatile pid_t kids[4];

/* the restart case: an fdrecv --replace at work (SIGTERM makes it roll
 * back), and the running service instance (no child of ours: reparented) */
static volatile pid_t restarter, instance;

static void stop_restart(void)
{
	if (restarter > 0)
		kill(restarter, SIGTERM);
	if (instance > 0)
		kill(instance, SIGTERM);
}

static void kill_kids(void)
{
	stop_restart();
	if (restarter > 0)
		waitpid(restarter, NULL, 0);
	for (int i = 0; i < 4; i++)
		if (kids[i] > 0) {
			kill(kids[i], SIGKILL);
			waitpid(kids[i], NULL, 0);
			kids[i] = 0;
		}
}

static void die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fputs("driver: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	kill_kids();
	exit(1);
}

static void on_signal(int sig)
{
	static const char msg[] = "driver: round timed out or interrupted\n";

	stop_restart();
	for (int i = 0; i < 4; i++)
		if (kids[i] > 0)
			kill(kids[i], SIGKILL);
	if (write(2, msg, sizeof(msg) - 1) < 0)
		_exit(1);
	_exit(sig == SIGALRM ? 1 : 128 + sig);
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static pid_t track(pid_t pid)
{
	for (int i = 0; i < 4; i++)
		if (!kids[i]) {
			kids[i] = pid;
			break;
		}
	return pid;
}

static pid_t spawn(char **argv, int close_above_2)
{
	posix_spawn_file_actions_t fa;
	pid_t pid;
	int e;

	posix_spawn_file_actions_init(&fa);
	if (close_above_2)
		posix_spawn_file_actions_addclosefrom_np(&fa, 3);
	e = posix_spawn(&pid, argv[0], &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	if (e)
		die("%s: %s", argv[0], strerror(e));
	return track(pid);
}

static void forget(pid_t pid)
{
	for (int i = 0; i < 4; i++)
		if (kids[i] == pid)
			kids[i] = 0;
}

static void check_status(int st, const char *what)
{
	if (!WIFEXITED(st) || WEXITSTATUS(st))
		die("%s failed (%s %d)", what,
		    WIFEXITED(st) ? "exit status" : "signal",
		    WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
}

/* Waits for pid; it must exit 0. */
static void reap(pid_t pid, const char *what)
{
	int st;

	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			die("waitpid: %s", strerror(errno));
	forget(pid);
	check_status(st, what);
}

/* ---- socket files appearing ---- */

static int ino = -1;

static void drain_inotify(void)
{
	char buf[4096];

	while (read(ino, buf, sizeof(buf)) > 0)
		;
}

/* Blocks until NAME is created (or renamed/linked) in the watched dir. */
static void wait_created(const char *name, pid_t owner)
{
	char buf[4096] __attribute__((aligned(8)));

	for (;;) {
		struct pollfd p = { .fd = ino, .events = POLLIN };
		ssize_t r;

		if (poll(&p, 1, 1000) == 0) {
			if (waitpid(owner, NULL, WNOHANG) == owner) {
				forget(owner);
				die("%s never appeared: its listener exited", name);
			}
			continue;
		}
		r = read(ino, buf, sizeof(buf));
		for (char *q = buf; r > 0 && q < buf + r;) {
			struct inotify_event *ev = (struct inotify_event *)q;

			if (ev->len && !strcmp(ev->name, name))
				return;
			q += sizeof(*ev) + ev->len;
		}
	}
}

/* ---- statistics and rows ---- */

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static double median(double *v, size_t n)
{
	qsort(v, n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* A 95% interval for the ratio of the medians: bootstrap over the rounds,
 * resampling tool and floor round i together since they ran side by side.
 * Called before median() sorts the samples in place. */
static char *ratio_ci(char *buf, const double *tool, const double *base,
		      size_t n)
{
	enum { B = 1000 };
	double *est = malloc(B * sizeof(double)), *a = malloc(n * sizeof(double)),
	       *b = malloc(n * sizeof(double));
	uint64_t x = 0x9e3779b97f4a7c15u;     /* fixed seed: same run, same answer */

	if (!est || !a || !b)
		die("out of memory");
	for (int k = 0; k < B; k++) {
		for (size_t i = 0; i < n; i++) {
			size_t j;

			x ^= x << 13;           /* xorshift64 */
			x ^= x >> 7;
			x ^= x << 17;
			j = (size_t)(x % n);
			a[i] = tool[j];
			b[i] = base[j];
		}
		est[k] = median(a, n) / median(b, n);
	}
	qsort(est, B, sizeof(*est), cmp_double);
	sprintf(buf, "%.2f-%.2f", est[B / 40], est[B - 1 - B / 40]);
	free(est);
	free(a);
	free(b);
	return buf;
}

/* case rounds tool floor ratio ci95 target verdict (pass < 0: no target);
 * bench/run.sh prints its rows in the same columns */
static void row(FILE *out, const char *label, const char *rounds,
		const char *tool, const char *base, double ratio,
		const char *ci, const char *target, int pass)
{
	fprintf(out, "%-26s %6s %11s %11s %6.2fx %9s  %-10s %s\n", label,
		rounds, tool, base, ratio, ci, target,
		pass < 0 ? "-" : pass ? "PASS" : "MISS");
	fflush(out);
}

/* ---- end-to-end handoffs ---- */

struct side {
	char **recv_argv, **send_argv;
	const char *name;       /* socket file name inside DIR */
	double *t;
};

static void one_round(struct side *s, int recv_first, size_t i)
{
	pid_t r, snd;
	double t0, t1;

	drain_inotify();
	alarm(30);
	t0 = now();
	if (recv_first) {
		r = spawn(s->recv_argv, 1);
		wait_created(s->name, r);
		snd = spawn(s->send_argv, 0);
	} else {
		snd = spawn(s->send_argv, 0);
		r = spawn(s->recv_argv, 1);
	}
	reap(snd, s->send_argv[0]);
	reap(r, s->recv_argv[0]);
	t1 = now();
	alarm(0);
	s->t[i] = t1 - t0;
}

static char *fmt_ms(char *buf, double sec)
{
	sprintf(buf, "%.3f ms", sec * 1e3);
	return buf;
}

static char *fmt_mib(char *buf, long kib)
{
	sprintf(buf, "%.2f MiB", kib / 1024.0);
	return buf;
}

static char *path_in(const char *dir, const char *name)
{
	char *p;

	if (asprintf(&p, "%s/%s", dir, name) < 0)
		die("out of memory");
	return p;
}

static char *tool_path(const char *name)
{
	const char *dir = getenv("FDBENCH_TOOLS");
	char *p = path_in(dir && *dir ? dir : ".", name), *abs = realpath(p, NULL);

	free(p);
	return abs;
}

/* argv of both sides for n descriptors; sockets t (tool), f (floor) */
static void make_sides(const char *dir, long n, struct side *tool,
		       struct side *raw)
{
	char *nop = realpath("bench/nop", NULL), *num;
	char **v = calloc((size_t)n + 16, sizeof(char *));

	if (!nop || !v || asprintf(&num, "%ld", n) < 0)
		die("bench/nop missing (run `make bench` from the repository root)");
	tool->recv_argv = v;
	v[0] = tool_path("fdrecv");
	v[1] = path_in(dir, "t");
	v[2] = nop;
	tool->send_argv = v += 4;
	v[0] = tool_path("fdsend");
	v[1] = tool->recv_argv[1];
	for (long i = 0; i < n; i++)
		if (asprintf(&v[i + 2], "%ld", 3 + i) < 0)
			die("out of memory");
	raw->recv_argv = v += n + 3;
	v[0] = realpath("bench/rawrecv", NULL);
	v[1] = path_in(dir, "f");
	v[2] = num;
	v[3] = nop;
	raw->send_argv = v += 5;
	v[0] = realpath("bench/rawsend", NULL);
	v[1] = raw->recv_argv[1];
	v[2] = num;
	tool->name = "t";
	raw->name = "f";
	if (!tool->recv_argv[0] || !tool->send_argv[0] || !raw->recv_argv[0] ||
	    !raw->send_argv[0])
		die("binaries missing (run `make bench` from the repository root)");
}

/* SECONDS bounds the case on a busy machine: past it, no new rounds (but
 * at least 30 pairs); the table shows how many were done. */
static void handoff(const char *dir, const char *order, long n, long rounds,
		    double budget)
{
	int recv_first = !strcmp(order, "recv-first");
	long warm = rounds / 20 > 5 ? rounds / 20 : 5;
	double start = now();
	struct side tool, raw;
	char label[64], nr[32], a[32], b[32], ci[32];
	double ratio, tm, fm;

	if (strcmp(order, "recv-first") && strcmp(order, "send-first"))
		die("order: recv-first or send-first");
	make_sides(dir, n, &tool, &raw);
	tool.t = calloc((size_t)rounds, sizeof(double));
	raw.t = calloc((size_t)rounds, sizeof(double));
	if (!tool.t || !raw.t)
		die("out of memory");
	for (long i = 0; i < warm; i++) {
		one_round(&tool, recv_first, 0);
		one_round(&raw, recv_first, 0);
	}
	/* ABBA: neither side always runs right after the other */
	for (long i = 0; i < rounds; i++) {
		struct side *first = i % 2 ? &raw : &tool;

		if (budget > 0 && i >= 30 && i % 2 == 0 && now() - start > budget) {
			rounds = i;
			break;
		}
		one_round(first, recv_first, (size_t)i);
		one_round(first == &tool ? &raw : &tool, recv_first, (size_t)i);
	}
	/* FDBENCH_BUILD names a build other than the default (static, musl) */
	snprintf(label, sizeof(label), "%ld fd%s, %s first%s%s", n,
		 n == 1 ? "" : "s", recv_first ? "receiver" : "sender",
		 getenv("FDBENCH_BUILD") ? ", " : "",
		 getenv("FDBENCH_BUILD") ? getenv("FDBENCH_BUILD") : "");
	snprintf(nr, sizeof(nr), "%ld", rounds);
	ratio_ci(ci, tool.t, raw.t, (size_t)rounds);
	tm = median(tool.t, (size_t)rounds);
	fm = median(raw.t, (size_t)rounds);
	ratio = tm / fm;
	row(stdout, label, nr, fmt_ms(a, tm), fmt_ms(b, fm), ratio, ci,
	    n == 1 ? "<= 1.10x" : "<= 1.20x", ratio <= (n == 1 ? 1.10 : 1.20));
}

/* ---- holder throughput: one client process, many handoffs ---- */

/* Connect, greet (GO), OFFER and FDS (closing what came, but the first one when
 * keep is set: it lands in *keep), HELD, hang up: the frames are read and
 * written with the tools' own code (common.h). */
static void fetch_fds(const struct sockaddr_un *sa, int *keep)
{
	const unsigned char *p;
	unsigned char held[4];
	struct inbox ib;
	uint32_t len, want;
	int type, fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0 || connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) < 0)
		die("holder: %s: %s", sa->sun_path, strerror(errno));
	inbox_init(&ib, fd);
	send_greeting(fd);
	if (inbox_frame(&ib, &type, &p, &len, NO_DEADLINE) != 1 || type != T_OFFER ||
	    len < 12)
		die("holder: expected OFFER (%s)", ib.why[0] ? ib.why : "end of stream");
	want = get32(p);
	if (want < 1 || want > FDS_PER_MSG || inbox_expect(&ib, want) < 0)
		die("holder: offer of %u descriptors", want);
	while (ib.nfds < want)
		if (inbox_frame(&ib, &type, &p, &len, NO_DEADLINE) != 1 || type != T_FDS)
			die("holder: expected FDS (%s)", ib.why[0] ? ib.why : "end of stream");
	put32(held, (uint32_t)ib.nfds);
	if (send_frame(fd, T_HELD, held, 4, NO_DEADLINE) < 0)
		die("holder: send: %s", strerror(errno));
	if (keep) {
		*keep = ib.fds[0];
		ib.fds[0] = -1;   /* inbox_free closes the others */
	}
	inbox_free(&ib);
	close(fd);
}

static void fetch_one(const struct sockaddr_un *sa)
{
	fetch_fds(sa, NULL);
}

static pid_t start_server(char **argv, const char *name)
{
	pid_t pid;

	drain_inotify();
	alarm(30);
	pid = spawn(argv, 0);
	wait_created(name, pid);
	alarm(0);
	return pid;
}

static void stop_server(pid_t pid, const char *what)
{
	int st;

	kill(pid, SIGTERM);
	alarm(10);
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			die("waitpid: %s", strerror(errno));
	alarm(0);
	forget(pid);
	if (WIFEXITED(st) ? WEXITSTATUS(st) && WEXITSTATUS(st) != 128 + SIGTERM
			  : WTERMSIG(st) != SIGTERM)
		die("%s did not end cleanly on SIGTERM", what);
}

static double batch(const struct sockaddr_un *sa, long per)
{
	double t0, t1;

	alarm(30);
	t0 = now();
	for (long i = 0; i < per; i++)
		fetch_one(sa);
	t1 = now();
	alarm(0);
	return per / (t1 - t0);
}

static void holder(const char *dir, long batches, long per)
{
	char *tool_argv[] = { tool_path("fdsend"), "--serve",
			      path_in(dir, "h"), "3", NULL };
	char *raw_argv[] = { realpath("bench/rawserve", NULL), path_in(dir, "g"), NULL };
	struct sockaddr_un ts = { .sun_family = AF_UNIX }, rs = { .sun_family = AF_UNIX };
	double *tr = calloc((size_t)batches, sizeof(double));
	double *rr = calloc((size_t)batches, sizeof(double));
	pid_t tp, rp;
	char nr[32], a[32], b[32], ci[32];
	double ratio;

	if (!tool_argv[0] || !raw_argv[0] || !tr || !rr)
		die("bench binaries missing (run `make bench` from the repository root)");
	snprintf(ts.sun_path, sizeof(ts.sun_path), "%s", tool_argv[2]);
	snprintf(rs.sun_path, sizeof(rs.sun_path), "%s", raw_argv[1]);
	tp = start_server(tool_argv, "h");
	rp = start_server(raw_argv, "g");
	batch(&ts, per / 5 + 1);        /* warm up */
	batch(&rs, per / 5 + 1);
	for (long i = 0; i < batches; i++) {
		if (i % 2) {
			rr[i] = batch(&rs, per);
			tr[i] = batch(&ts, per);
		} else {
			tr[i] = batch(&ts, per);
			rr[i] = batch(&rs, per);
		}
	}
	stop_server(tp, "fdsend --serve");
	stop_server(rp, "rawserve");
	ratio_ci(ci, tr, rr, (size_t)batches);
	ratio = median(tr, (size_t)batches) / median(rr, (size_t)batches);
	snprintf(nr, sizeof(nr), "%ldx%ld", batches, per);
	sprintf(a, "%.0f/s", median(tr, (size_t)batches));
	sprintf(b, "%.0f/s", median(rr, (size_t)batches));
	row(stdout, "holder, handoffs/s", nr, a, b, ratio, ci, ">= 0.80x",
	    ratio >= 0.80);
}

/* ---- client-visible latency over restarts ---- */

/* Requests from one client process to a service behind a holder (fdsend
 * --serve, a TCP listener on 127.0.0.1), in windows of equal length taken
 * in turn: one without a restart, one that begins with a restart by
 * `fdrecv -c --replace PIDFILE --ready notify --stop-timeout 5 -- server -n`
 * (test/server: READY=1 over NOTIFY_SOCKET, TERM ends it after the request
 * in hand). "tool": the latency of the requests that began in a restart
 * window; "floor": in a window without one; the same client, the same run. */

enum { LAT_CAP = 1 << 20 };

struct lat_shared {             /* shared with the client process */
	volatile int stop;
	long n, failed;
	char why[160];          /* the first failure */
	struct {
		double t0, lat;
	} s[];
};

/* One request as test/server's clients make it: "pid N\n" back, then end
 * of stream. NULL, or what went wrong. */
static const char *lat_request(const struct sockaddr_in *sa)
{
	static char why[96];
	struct timeval tv = { 5, 0 };
	char buf[64];
	size_t got = 0;
	ssize_t r;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return "socket failed";
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) < 0) {
		snprintf(why, sizeof(why), "connect: %s", strerror(errno));
		close(fd);
		return why;
	}
	if (send(fd, "bench\n", 6, MSG_NOSIGNAL) != 6) {
		snprintf(why, sizeof(why), "send: %s", strerror(errno));
		close(fd);
		return why;
	}
	while (got < sizeof(buf) - 1 &&
	       (r = read(fd, buf + got, sizeof(buf) - 1 - got)) != 0) {
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			snprintf(why, sizeof(why), "read: %s", strerror(errno));
			close(fd);
			return why;
		}
		got += (size_t)r;
	}
	close(fd);
	if (!got)
		return "empty answer";
	if (strncmp(buf, "pid ", 4) || buf[got - 1] != '\n')
		return "not a \"pid N\" answer";
	return NULL;
}

/* The client process: requests until told to stop, 0.2 ms apart (pacing,
 * which spares ephemeral ports). */
static void lat_client(struct lat_shared *sh, const struct sockaddr_in *sa)
{
	const struct timespec pace = { 0, 200000 };

	signal(SIGALRM, SIG_DFL);
	signal(SIGINT, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
	signal(SIGHUP, SIG_DFL);
	while (!sh->stop && sh->n < LAT_CAP) {
		double t0 = now();
		const char *why = lat_request(sa);
		double t1 = now();

		if (why) {
			if (!sh->failed++)
				snprintf(sh->why, sizeof(sh->why), "%s", why);
		} else {
			sh->s[sh->n].t0 = t0;
			sh->s[sh->n].lat = t1 - t0;
			sh->n++;
		}
		nanosleep(&pace, NULL);
	}
	_exit(0);
}

static pid_t read_pid(const char *path)
{
	char buf[32];
	ssize_t r;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		die("%s: %s", path, strerror(errno));
	r = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	buf[r > 0 ? r : 0] = 0;
	if (atol(buf) <= 0)
		die("%s: no pid in it", path);
	return (pid_t)atol(buf);
}

/* The running instance: its pid in `instance`, pinned by a pidfd. */
static int instance_fd = -1;

/* Stops the instance that fd pins (TERM: it finishes the request in hand
 * and exits 0), waiting 10 s at most; 0 if it had exited already. */
static int stop_pinned(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	if (poll(&p, 1, 0) == 1) {
		close(fd);
		return 0;
	}
	if (syscall(SYS_pidfd_send_signal, fd, SIGTERM, NULL, 0) < 0 ||
	    poll(&p, 1, 10000) != 1)
		die("restart: an instance did not exit within 10 s of SIGTERM");
	close(fd);
	return 1;
}

/* One run of the restart command; it must exit 0, and (--stop-timeout)
 * the old instance must have exited by then: else it counts in *left and
 * is stopped here. Its output (test/server prints "accepted" per request)
 * goes to /dev/null. */
static void restart_once(char **argv, const char *pidfile, long *left)
{
	int old_fd = instance_fd;

	posix_spawn_file_actions_t fa;
	pid_t pid;
	int st, e;

	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addclosefrom_np(&fa, 3);
	posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	alarm(30);
	e = posix_spawn(&pid, argv[0], &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	if (e)
		die("%s: %s", argv[0], strerror(e));
	restarter = pid;
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			die("waitpid: %s", strerror(errno));
	restarter = 0;
	alarm(0);
	check_status(st, "fdrecv --replace");
	instance = read_pid(pidfile);
	if ((instance_fd = (int)syscall(SYS_pidfd_open, instance, 0)) < 0)
		die("restart: instance %d: %s", (int)instance, strerror(errno));
	if (old_fd >= 0 && stop_pinned(old_fd))
		++*left;
}

static void sleep_until(double t)
{
	for (double left; (left = t - now()) > 0;) {
		struct timespec ts = { (time_t)left, (long)((left - (time_t)left) * 1e9) };

		nanosleep(&ts, NULL);
	}
}

/* The p-th quantile (nearest rank) of v[0..n), sorting v. */
static double quantile(double *v, size_t n, double p)
{
	size_t k = (size_t)(p * n + 0.999999);

	qsort(v, n, sizeof(*v), cmp_double);
	return v[k ? (k > n ? n : k) - 1 : 0];
}

static void restart(const char *dir, long restarts, long window_ms)
{
	char *holder_argv[] = { tool_path("fdsend"), "--serve", path_in(dir, "r"),
				"tcp:127.0.0.1:0", NULL };
	char *pidfile = path_in(dir, "web.pid");
	char *fdrecv_argv[] = { tool_path("fdrecv"), "-c", holder_argv[2],
				"--replace", pidfile, "--ready", "notify",
				"--stop-signal", "TERM", "--stop-timeout", "5", "--",
				tool_path("server"), "-n", NULL };
	struct sockaddr_un hs = { .sun_family = AF_UNIX };
	struct sockaddr_in sa;
	socklen_t sl = sizeof(sa);
	size_t size = sizeof(struct lat_shared) + LAT_CAP * sizeof(((struct lat_shared *)0)->s[0]);
	struct lat_shared *sh;
	long windows = 2 * restarts, *lo, *hi;
	double *ws, *we, *took, win = window_ms / 1e3, *q, *r, *a, *b, *est, qm[3], rm[3];
	size_t nq = 0, nr = 0;
	char nr_s[32], x[32], y[32], ci[32];
	pid_t hp, cp;
	int lfd = -1;
	long left = 0;          /* restarts that left the old instance running */
	enum { B = 1000 };

	if (!holder_argv[0] || !fdrecv_argv[0] || !fdrecv_argv[12])
		die("restart: fdsend, fdrecv or server missing (run `make bench`)");
	if (restarts < 2 || window_ms < 10)
		die("restart: RESTARTS >= 2, WINDOW-MS >= 10");
	sh = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	ws = calloc((size_t)windows, sizeof(double));
	we = calloc((size_t)windows, sizeof(double));
	lo = calloc((size_t)windows, sizeof(long));
	hi = calloc((size_t)windows, sizeof(long));
	took = calloc((size_t)restarts, sizeof(double));
	if (sh == MAP_FAILED || !ws || !we || !lo || !hi || !took)
		die("out of memory");

	/* the holder, its port, the first instance */
	drain_inotify();
	alarm(30);
	hp = spawn(holder_argv, 1);
	wait_created("r", hp);
	snprintf(hs.sun_path, sizeof(hs.sun_path), "%s", holder_argv[2]);
	fetch_fds(&hs, &lfd);
	if (getsockname(lfd, (struct sockaddr *)&sa, &sl) < 0 || sa.sin_family != AF_INET)
		die("restart: the holder's listener has no inet address");
	close(lfd);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	alarm(0);
	restart_once(fdrecv_argv, pidfile, &left);

	/* the client, warmed up; then the windows, taken in turn */
	if ((cp = fork()) < 0)
		die("fork: %s", strerror(errno));
	if (cp == 0)
		lat_client(sh, &sa);
	track(cp);
	sleep_until(now() + 0.3);
	for (long w = 0; w < windows; w++) {
		ws[w] = now();
		if (w % 2) {
			restart_once(fdrecv_argv, pidfile, &left);
			took[w / 2] = now() - ws[w];
		}
		sleep_until(ws[w] + win);
		we[w] = now();
	}
	sh->stop = 1;
	alarm(30);
	reap(cp, "restart client");
	alarm(0);

	/* the last instance, then the holder */
	stop_pinned(instance_fd);
	instance = 0;
	instance_fd = -1;
	stop_server(hp, "fdsend --serve");
	if (sh->failed)
		die("restart: %ld of %ld requests failed, the first one: %s",
		    sh->failed, sh->failed + sh->n, sh->why);

	/* each request to the window it began in (the samples are in time order) */
	q = malloc((size_t)sh->n * sizeof(double));
	r = malloc((size_t)sh->n * sizeof(double));
	a = malloc((size_t)sh->n * sizeof(double));
	b = malloc((size_t)sh->n * sizeof(double));
	est = malloc(B * sizeof(double));
	if (!q || !r || !a || !b || !est)
		die("out of memory");
	{
		long i = 0;

		for (long w = 0; w < windows; w++) {
			while (i < sh->n && sh->s[i].t0 < ws[w])
				i++;
			lo[w] = i;
			while (i < sh->n && sh->s[i].t0 < we[w]) {
				if (w % 2)
					r[nr++] = sh->s[i].lat;
				else
					q[nq++] = sh->s[i].lat;
				i++;
			}
			hi[w] = i;
		}
	}
	if (nq < 100 || nr < 100)
		die("restart: too few requests (%zu, %zu)", nr, nq);

	/* a 95% interval for the ratio of the p99s: bootstrap over the pairs of
	 * windows (a restart and the quiet window before it) */
	{
		uint64_t s = 0x9e3779b97f4a7c15u;

		for (int k = 0; k < B; k++) {
			size_t na = 0, nb = 0;

			for (long j = 0; j < restarts; j++) {
				long p;

				s ^= s << 13;
				s ^= s >> 7;
				s ^= s << 17;
				p = (long)(s % (uint64_t)restarts);
				for (long i = lo[2 * p + 1]; i < hi[2 * p + 1]; i++)
					a[na++] = sh->s[i].lat;
				for (long i = lo[2 * p]; i < hi[2 * p]; i++)
					b[nb++] = sh->s[i].lat;
			}
			est[k] = na && nb ? quantile(a, na, 0.99) / quantile(b, nb, 0.99) : 1;
		}
		qsort(est, B, sizeof(*est), cmp_double);
		sprintf(ci, "%.2f-%.2f", est[B / 40], est[B - 1 - B / 40]);
	}
	rm[0] = quantile(r, nr, 0.5);
	rm[1] = quantile(r, nr, 0.99);
	rm[2] = r[nr - 1];
	qm[0] = quantile(q, nq, 0.5);
	qm[1] = quantile(q, nq, 0.99);
	qm[2] = q[nq - 1];
	snprintf(nr_s, sizeof(nr_s), "%ld", restarts);
	row(stdout, "restart latency, median", nr_s, fmt_ms(x, rm[0]), fmt_ms(y, qm[0]),
	    rm[0] / qm[0], "-", "-", -1);
	row(stdout, "restart latency, p99", nr_s, fmt_ms(x, rm[1]), fmt_ms(y, qm[1]),
	    rm[1] / qm[1], ci, "<= 1.50x", rm[1] / qm[1] <= 1.5);
	row(stdout, "restart latency, max", nr_s, fmt_ms(x, rm[2]), fmt_ms(y, qm[2]),
	    rm[2] / qm[2], "-", "-", -1);
	quantile(took, (size_t)restarts, 0.5);         /* sorts took */
	printf("  (restart: %zu requests in %ld windows of %ld ms that begin with a restart,"
	       " %zu in as many without;\n   none failed; a restart took %s median, %s at most)\n",
	       nr, restarts, window_ms, nq, fmt_ms(x, took[(restarts - 1) / 2]),
	       fmt_ms(y, took[restarts - 1]));
	if (left)
		printf("  warning: %ld of %ld restarts left the old instance running (see fdrecv's"
		       " warnings above); the bench stopped them\n", left, restarts);
	munmap(sh, size);
}

/* ---- peak RSS of each tool's own image ---- */

/* wait4's ru_maxrss cannot tell: exec folds the old mm's high-water mark
 * into it, and a posix_spawn child's old mm is the driver's. So each side
 * runs traced instead, and VmHWM is read from /proc while the tool's image
 * is still there: when it calls execve (fdrecv; a seccomp filter stops the
 * tracee there and nowhere else) and when it exits (fdsend). */
struct traced {
	pid_t pid;
	int execs;      /* 1 while the tool's own image runs */
	long hwm;       /* KiB */
	const char *what;
};

static void read_hwm(struct traced *t)
{
	char path[64], line[256];
	FILE *f;
	long kib;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)t->pid);
	if (!(f = fopen(path, "r")))
		return;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmHWM: %ld", &kib) == 1 && kib > t->hwm)
			t->hwm = kib;
	fclose(f);
}

/* In the child: execve (and only execve) stops for the tracer. */
static void stop_at_execve(void)
{
	struct sock_filter f[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_execve, 1, 0),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_TRACE),
	};
	struct sock_fprog prog = { sizeof(f) / sizeof(f[0]), f };

	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 ||
	    prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) < 0)
		_exit(126);
}

static void spawn_traced(struct traced *t, char **argv, int close_above_2)
{
	int st;

	t->execs = 0;
	t->hwm = 0;
	t->what = argv[0];
	if ((t->pid = fork()) < 0)
		die("fork: %s", strerror(errno));
	if (t->pid == 0) {
		if (close_above_2)
			close_range(3, ~0U, 0);
		ptrace(PTRACE_TRACEME, 0, 0, 0);
		raise(SIGSTOP);
		stop_at_execve();
		execv(argv[0], argv);
		_exit(127);
	}
	track(t->pid);
	if (waitpid(t->pid, &st, 0) < 0 || !WIFSTOPPED(st) ||
	    ptrace(PTRACE_SETOPTIONS, t->pid, 0, PTRACE_O_TRACESECCOMP |
		   PTRACE_O_TRACEEXEC | PTRACE_O_TRACEEXIT | PTRACE_O_EXITKILL) < 0 ||
	    ptrace(PTRACE_CONT, t->pid, 0, 0) < 0)
		die("ptrace %s: %s", argv[0], strerror(errno));
}

/* Runs one sender-first handoff traced; the two peaks land in s and r. */
static void traced_round(struct side *side, struct traced *s, struct traced *r)
{
	int left = 2;

	alarm(30);
	spawn_traced(s, side->send_argv, 0);
	spawn_traced(r, side->recv_argv, 1);
	while (left) {
		int st, sig = 0;
		pid_t pid = waitpid(-1, &st, __WALL);
		struct traced *t = pid == s->pid ? s : pid == r->pid ? r : NULL;

		if (pid < 0 && errno == EINTR)
			continue;
		if (pid < 0 || !t)
			die("waitpid: %s", pid < 0 ? strerror(errno) : "stranger");
		if (!WIFSTOPPED(st)) {
			forget(pid);
			check_status(st, t->what);
			left--;
			continue;
		}
		if (st >> 8 == (SIGTRAP | PTRACE_EVENT_EXEC << 8))
			t->execs++;
		else if (st >> 8 == (SIGTRAP | PTRACE_EVENT_SECCOMP << 8) ||
			 st >> 8 == (SIGTRAP | PTRACE_EVENT_EXIT << 8)) {
			if (t->execs == 1)
				read_hwm(t);
		} else {
			sig = WSTOPSIG(st);     /* a real signal: deliver it */
		}
		ptrace(PTRACE_CONT, pid, 0, sig);
	}
	alarm(0);
}

static void rss(const char *dir, long n, long rounds)
{
	struct side tool, raw;
	struct traced ts, tr, fs, fr;
	long peak[4] = { 0 };
	char label[64], nr[32], a[32], b[32];
	int one = n == 1;

	make_sides(dir, n, &tool, &raw);
	for (long i = 0; i < rounds; i++) {
		traced_round(&tool, &ts, &tr);
		traced_round(&raw, &fs, &fr);
		if (!ts.hwm || !tr.hwm || !fs.hwm || !fr.hwm)
			die("no VmHWM read (is /proc mounted?)");
		peak[0] = ts.hwm > peak[0] ? ts.hwm : peak[0];
		peak[1] = tr.hwm > peak[1] ? tr.hwm : peak[1];
		peak[2] = fs.hwm > peak[2] ? fs.hwm : peak[2];
		peak[3] = fr.hwm > peak[3] ? fr.hwm : peak[3];
	}
	/* the 1.5 MiB target is for a one-descriptor handoff */
	snprintf(nr, sizeof(nr), "%ld", rounds);
	snprintf(label, sizeof(label), "peak RSS fdsend, %ld fd%s", n, one ? "" : "s");
	row(stdout, label, nr, fmt_mib(a, peak[0]), fmt_mib(b, peak[2]),
	    (double)peak[0] / peak[2], "-", one ? "<= 1.5 MiB" : "-",
	    one ? peak[0] <= 1536 : -1);
	snprintf(label, sizeof(label), "peak RSS fdrecv, %ld fd%s", n, one ? "" : "s");
	row(stdout, label, nr, fmt_mib(a, peak[1]), fmt_mib(b, peak[3]),
	    (double)peak[1] / peak[3], "-", one ? "<= 1.5 MiB" : "-",
	    one ? peak[1] <= 1536 : -1);
}

/* ---- setup ---- */

/* Moves fd above the range handed to senders, close-on-exec. */
static int park(int fd, int above)
{
	int moved = fcntl(fd, F_DUPFD_CLOEXEC, above);

	if (moved < 0)
		die("fcntl: %s", strerror(errno));
	close(fd);
	return moved;
}

int main(int argc, char **argv)
{
	struct sigaction sa = { .sa_handler = on_signal };
	struct rlimit rl;
	long n = 1;
	int p[2];

	if (argc < 3)
		errx(2, "usage: driver DIR handoff ORDER N ROUNDS [SECONDS] | holder BATCHES PER | restart RESTARTS WINDOW-MS | rss N");
	if (!strcmp(argv[2], "handoff") && (argc == 6 || argc == 7))
		n = atol(argv[4]);
	if (!strcmp(argv[2], "rss") && argc == 4)
		n = atol(argv[3]);
	if (n < 1 || n > 100000)
		errx(2, "N: 1..100000");
	sigaction(SIGALRM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	/* the sender holds N, the receiver gets N: both inherit this */
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		die("getrlimit: %s", strerror(errno));
	if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < (rlim_t)n + 64)
		die("RLIMIT_NOFILE hard limit %lu is too low for %ld descriptors",
		    (unsigned long)rl.rlim_max, n);
	rl.rlim_cur = rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
		die("setrlimit: %s", strerror(errno));
	if (pipe2(p, O_CLOEXEC) < 0 ||
	    (ino = inotify_init1(IN_CLOEXEC | IN_NONBLOCK)) < 0)
		die("pipe/inotify: %s", strerror(errno));
	p[0] = park(p[0], (int)n + 3);
	p[1] = park(p[1], (int)n + 3);
	ino = park(ino, (int)n + 3);
	if (inotify_add_watch(ino, argv[1], IN_CREATE | IN_MOVED_TO) < 0)
		die("%s: %s", argv[1], strerror(errno));
	/* what senders hand over: fds 3 .. N+2, the pipe's write end */
	for (long i = 0; i < n; i++)
		if (dup2(p[1], 3 + (int)i) < 0)
			die("dup2: %s", strerror(errno));
	if (!strcmp(argv[2], "handoff") && (argc == 6 || argc == 7))
		handoff(argv[1], argv[3], n, atol(argv[5]),
			argc == 7 ? atof(argv[6]) : 0);
	else if (!strcmp(argv[2], "rss") && argc == 4)
		rss(argv[1], n, 3);
	else if (!strcmp(argv[2], "holder") && argc == 5)
		holder(argv[1], atol(argv[3]), atol(argv[4]));
	else if (!strcmp(argv[2], "restart") && argc == 5)
		restart(argv[1], atol(argv[3]), atol(argv[4]));
	else
		errx(2, "usage: driver DIR handoff ORDER N ROUNDS [SECONDS] | holder BATCHES PER | restart RESTARTS WINDOW-MS | rss N");
	return 0;
}
