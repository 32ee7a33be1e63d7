/* SPDX-License-Identifier: MIT */
/* common.h: what fdsend and fdrecv both use, as static functions, so that
 * each tool stays one translation unit. By concern, in this order:
 *   base          exit statuses, limits, usage errors, number parsing
 *   time          monotonic milliseconds, deadlines, waiting on a descriptor
 *   start-up      standard descriptors, inherited signal dispositions
 *   warnings      peer failures told without blocking, at a bounded rate
 *   socket files  the files a tool created, removed only while still ours
 *   channels      the SOCKET forms, and the per-user directory
 *   listening     stale sockets, binding, listen_chan()
 *   connecting    waiting for a listener, connect_chan()
 *   peers         who may be the peer (SO_PEERCRED, --allow-uid)
 *   wire format   frame headers and the OFFER, version 2 (fdrecv.1, PROTOCOL)
 *   transport     sending frames with descriptors; the inbox that receives
 *   text          addresses and UTF-8, for messages and the describe view
 */
#ifndef FDSEND_COMMON_H
#define FDSEND_COMMON_H

#include <arpa/inet.h>
#include <err.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <time.h>
#include <sys/syscall.h>
#include <unistd.h>

/* pidfd system calls, for C libraries that do not name them yet */
#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_pidfd_send_signal
#define SYS_pidfd_send_signal 424
#endif
#ifndef SYS_pidfd_getfd
#define SYS_pidfd_getfd 438
#endif

/* ---- base ---- */

/* Exit statuses, listed in both man pages. */
enum {
	ST_OK = 0,
	ST_SYSTEM = 1,     /* a system call failed */
	ST_USAGE = 2,      /* bad command line or argument */
	ST_HANDOFF = 3,    /* the peer refused, vanished or broke the protocol */
	ST_TIMEOUT = 4,    /* -t ran out */
	ST_ROLLED_BACK = 5, /* fdrecv --ready: the new instance failed; rolled back */
	ST_UNACKED = 6,    /* fdsend: handed to a receiver that cannot acknowledge */
	ST_CANNOT_RUN = 126,
	ST_NOT_FOUND = 127,
};

#define PEER_TIMEOUT_MS 5000    /* a connected peer must answer within this */
#define MAX_FDS 1048576u        /* the kernel's default fs.nr_open */
#define FDS_PER_MSG 253         /* SCM_MAX_FD */
/* what a sender puts in one message: musl's sendmsg refuses control data
 * over 1024 bytes, and CMSG_SPACE(252 * sizeof(int)) is exactly that */
#define FDS_PER_SEND 252
#define NAME_MAX_LEN 255        /* as systemd's FDNAME_MAX */
#define UNNAMED "unknown"       /* systemd's name for a descriptor without one */
#define MAX_ARG_STRLEN (128 * 1024)     /* the kernel's bound on one string of
					 * the environment */
#define CHUNK 65536             /* largest sendmsg; SEQPACKET readers use at least this */
/* a stream sendmsg the kernel does not split with the default send buffer
 * (it cuts at about 36 KiB, or SO_SNDBUF / 2, the descriptors riding on
 * the first piece) */
#define ONE_PIECE 16384
#define MAX_PAYLOAD (16u << 20)
#define SUN_PATH_MAX ((int)sizeof(((struct sockaddr_un *)0)->sun_path) - 1)

__attribute__((noreturn, format(printf, 1, 2)))
static inline void usage_error(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vwarnx(fmt, ap);
	va_end(ap);
	fprintf(stderr, "Try '%s --help' for more information.\n",
		program_invocation_short_name);
	exit(ST_USAGE);
}

/* Decimal digits only, the whole string, at most max: no sign, no space
 * (strtoul would take both). 1 with *v set, else 0. */
static inline int parse_digits(const char *s, unsigned long max,
			       unsigned long *v)
{
	const char *p = s;

	*v = 0;
	do {
		unsigned long d = (unsigned long)(*p - '0');

		if (*p < '0' || *p > '9' || d > max || *v > (max - d) / 10)
			return 0;
		*v = *v * 10 + d;
	} while (*++p);
	return 1;
}

/* v in decimal at p, NUL-terminated; returns the end. For the strings of
 * a successful handoff only: the first snprintf(3) of a process maps in
 * its locale machinery, about 160 KiB of peak RSS that make bench shows
 * fdrecv cannot afford under its 1.5 MiB target. */
static inline char *put_decimal(char *p, unsigned long v)
{
	char b[24];
	size_t i = sizeof(b);

	do
		b[--i] = (char)('0' + v % 10);
	while (v /= 10);
	memcpy(p, b + i, sizeof(b) - i);
	p[sizeof(b) - i] = 0;
	return p + sizeof(b) - i;
}

/* Whole-string unsigned parse; the message quotes the bad text. */
static inline unsigned long parse_number(const char *s, unsigned long min,
					 unsigned long max, const char *what)
{
	unsigned long v;

	if (!parse_digits(s, max, &v) || v < min)
		usage_error("invalid %s: '%s' (expected %lu..%lu)", what, s, min, max);
	return v;
}

/* ---- time and waiting ---- */

typedef int64_t msec_t;
#define NO_DEADLINE INT64_MAX
#define DONT_WAIT 0             /* a deadline already past: never block */
#define WOULD_BLOCK (-2)

static inline msec_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (msec_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* -t SECONDS, fractions allowed; returns milliseconds. Decimal digits and
 * one point only: no sign, space, exponent or hex that strtod would take. */
static inline msec_t parse_timeout(const char *s)
{
	char *end = (char *)s;
	double v = -1;

	if (strspn(s, "0123456789.") == strlen(s) && strchr(s, '.') == strrchr(s, '.'))
		v = strtod(s, &end);
	if (end == s || *end || !(v >= 0 && v <= 31536000))
		usage_error("invalid timeout: '%s' (expected seconds, e.g. 2.5)",
			    s);
	return (msec_t)(v * 1000 + 0.5);
}

static inline msec_t deadline_after(msec_t ms)
{
	return ms == NO_DEADLINE ? NO_DEADLINE : now_ms() + ms;
}

static inline msec_t earlier(msec_t a, msec_t b)
{
	return a < b ? a : b;
}

/* 1 when fd is ready, 0 at the deadline, -1 on error. */
/* poll(2)'s timeout for a deadline: -1 for none, 0 once it has passed. */
static inline int poll_ms(msec_t deadline)
{
	msec_t left;

	if (deadline == NO_DEADLINE)
		return -1;
	left = deadline - now_ms();
	return left < 0 ? 0 : left > INT_MAX ? INT_MAX : (int)left;
}

static inline int wait_fd(int fd, short events, msec_t deadline)
{
	struct pollfd p = { .fd = fd, .events = events };

	for (;;) {
		int r = poll(&p, 1, poll_ms(deadline));

		if (r > 0)
			return 1;
		if (r == 0 && (deadline == NO_DEADLINE || now_ms() < deadline))
			continue;
		if (r == 0)
			return 0;
		if (errno != EINTR)
			return -1;
	}
}

/* ---- start-up: standard descriptors and inherited signals ---- */

/* Bit fd is set when 0, 1 or 2 was closed at start: it holds /dev/null now,
 * which must never be taken for a descriptor the caller meant. */
static unsigned closed_at_start;

/* The stop signals, and the dispositions the tool was started with (the
 * stop signals, then SIGPIPE): COMMAND gets exactly these back. */
static const int stop_sigs[3] = { SIGINT, SIGTERM, SIGHUP };
static struct sigaction start_sigs[4];

/* Every tool starts here: 0, 1 and 2 open (else a socket or a received
 * descriptor could land there and be written to as if it were stderr);
 * SIGPIPE ignored, so that a stderr on a broken pipe costs a message and
 * not the process; socket files this process owns removed by exit(3),
 * whatever path leads there (exec leaves them alone). */
static inline void start_up(void (*cleanup)(void))
{
	struct sigaction ign;

	for (int fd = 0; fd < 3; fd++) {
		if (fcntl(fd, F_GETFD) >= 0)
			continue;
		if (open("/dev/null", O_RDWR) != fd)
			abort();
		closed_at_start |= 1u << fd;
	}
	for (int i = 0; i < 3; i++)
		sigaction(stop_sigs[i], NULL, &start_sigs[i]);
	memset(&ign, 0, sizeof(ign));
	ign.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &ign, &start_sigs[3]);
	atexit(cleanup);
}

static inline int closed_std(int fd)
{
	return fd >= 0 && fd < 3 && (closed_at_start >> fd & 1);
}

/* Before exec: the dispositions the tool was started with. */
static inline void restore_signals(void)
{
	for (int i = 0; i < 3; i++)
		sigaction(stop_sigs[i], &start_sigs[i], NULL);
	sigaction(SIGPIPE, &start_sigs[3], NULL);
}

/* Reads a small file (a pid file, /proc/PID/stat) into buf, NUL-terminated,
 * without blocking on a FIFO; its status into st when asked. The bytes
 * read, or -1 with errno. */
static inline ssize_t read_small(const char *path, char *buf, size_t size,
				 struct stat *st)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY), e;
	ssize_t n;

	if (fd < 0)
		return -1;
	if ((st && fstat(fd, st) < 0) || (n = read(fd, buf, size - 1)) < 0) {
		e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	close(fd);
	buf[n] = 0;
	return n;
}

/* ---- warnings from a loop that serves peers ---- */

/* Peers may be many and hostile: of their failures, the first WARN_BURST
 * of each second are told, the rest counted and told in one line once the
 * second is over; and never by blocking on a stderr nobody reads (a line
 * that cannot go at once is lost). */
#define WARN_BURST 10
struct warn_limit {
	msec_t next;            /* when this second is over */
	unsigned told;          /* lines told in it */
	unsigned long held;     /* failures not told */
};

static inline void say_now(const char *fmt, ...)
{
	char line[1280];
	struct pollfd p = { .fd = 2, .events = POLLOUT };
	size_t n = (size_t)snprintf(line, sizeof(line) - 1, "%s: ",
				    program_invocation_short_name);
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = vsnprintf(line + n, sizeof(line) - 1 - n, fmt, ap);
	va_end(ap);
	n = r < 0 ? n : n + (size_t)r < sizeof(line) - 1 ? n + (size_t)r
							 : sizeof(line) - 2;
	line[n++] = '\n';
	if (poll(&p, 1, 0) == 1 && p.revents == POLLOUT &&
	    write(2, line, n) < 0)
		return;   /* nothing more can be done about it */
}

/* Ends the second once it is over (now, with force), telling what was
 * held back. */
static inline void flush_warnings(struct warn_limit *w, const char *label,
				  const char *peers, int force)
{
	msec_t now = now_ms();

	if (now < w->next && !force)
		return;
	if (w->held)
		say_now("%s: %lu more %s failed or were refused (not shown one by one)",
			label, w->held, peers);
	w->held = 0;
	w->told = 0;
	w->next = now + 1000;
}

static inline void warn_peer(struct warn_limit *w, const char *label,
			     const char *peers, const char *fmt, ...)
{
	char text[1200];
	va_list ap;

	flush_warnings(w, label, peers, 0);
	if (w->told == WARN_BURST) {
		w->held++;
		return;
	}
	w->told++;
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	say_now("%s", text);
}

/* When the loop must wake up next to tell what was held back. */
static inline msec_t warnings_due(const struct warn_limit *w)
{
	return w->held ? w->next : NO_DEADLINE;
}

/* ---- socket files: only our own, removed on the way out ---- */

/* A socket file this process created: the directory it was bound in, held
 * open so that removing it never resolves a path again (a directory on the
 * way may have been swapped for a symbolic link since), its name there, and
 * the identity of the file, so that a successor's file under the same name
 * is left alone. Entries are only ever prepended, never freed: a signal
 * handler may walk the list at any moment. */
struct owned {
	struct owned *next;
	int dirfd;
	dev_t dev;
	ino_t ino;
	volatile sig_atomic_t set;
	char name[];
};
static struct owned *volatile owned_files;
static volatile sig_atomic_t stop_signal;

/* 1 when the file at o's name is still the one o was made as. */
static inline int still_ours(const struct owned *o)
{
	struct stat st;

	return fstatat(o->dirfd, o->name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
	       st.st_dev == o->dev && st.st_ino == o->ino;
}


/* An entry for a file about to be made as name in dirfd: allocated before
 * the file exists, so that nothing can fail between making and claiming. */
static inline struct owned *owned_entry(int dirfd, const char *name)
{
	size_t len = strlen(name) + 1;
	struct owned *o = calloc(1, sizeof(*o) + len);

	if (!o || (o->dirfd = fcntl(dirfd, F_DUPFD_CLOEXEC, 0)) < 0)
		err(ST_SYSTEM, "%s", name);
	memcpy(o->name, name, len);
	o->next = owned_files;
	atomic_signal_fence(memory_order_seq_cst);
	owned_files = o;
	return o;
}

/* The file is made and is st: from now on it goes at exit. */
static inline void claim(struct owned *o, const struct stat *st)
{
	o->dev = st->st_dev;
	o->ino = st->st_ino;
	atomic_signal_fence(memory_order_seq_cst);
	o->set = 1;
}

/* The file is no longer ours to remove (handed over, or gone). */
static inline void disown(struct owned *o)
{
	if (!o || o->dirfd < 0)
		return;
	o->set = 0;
	atomic_signal_fence(memory_order_seq_cst);
	close(o->dirfd);
	o->dirfd = -1;
}

/* At exit, or from a signal handler (it is async-signal-safe). */
static inline void remove_owned_files(void)
{
	for (struct owned *o = owned_files; o; o = o->next) {
		if (o->set && still_ours(o))
			unlinkat(o->dirfd, o->name, 0);
		disown(o);
	}
}

static inline void disown_all(void)
{
	for (struct owned *o = owned_files; o; o = o->next)
		disown(o);
}

static inline void remove_file(struct owned *o)
{
	if (o && o->set && still_ours(o))
		unlinkat(o->dirfd, o->name, 0);
	disown(o);
}

static inline void die_of_signal(int sig)
{
	remove_owned_files();
	raise(sig);    /* SA_RESETHAND: this time it is fatal */
}

static inline void note_stop(int sig)
{
	stop_signal = sig;
}

/* fatal: the process dies of the signal after cleaning up; otherwise the
 * signal is only noted, for a loop that waits in ppoll(2). A signal that
 * was ignored when the tool started stays ignored (nohup). */
static inline void catch_signals(int fatal)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = fatal ? die_of_signal : note_stop;
	sa.sa_flags = fatal ? SA_RESETHAND : 0;
	for (int i = 0; i < 3; i++)
		if (start_sigs[i].sa_handler != SIG_IGN)
			sigaction(stop_sigs[i], &sa, NULL);
}

/* ---- channels: the SOCKET forms ---- */

struct chan {
	char label[PATH_MAX + 8];   /* what messages call it */
	struct sockaddr_un sa;
	socklen_t salen;
	int abstract;
	int inherited;              /* fd:N, else -1 */
};


/* An inherited fd must be a connected AF_UNIX stream or seqpacket socket:
 * over anything else SCM_RIGHTS would fail or silently vanish. */
static inline void check_inherited(const char *label, int fd)
{
	struct stat st;
	int v;
	socklen_t len = sizeof(v);
	struct sockaddr_un peer;
	socklen_t plen = sizeof(peer);

	if (closed_std(fd) || fstat(fd, &st) < 0)
		errx(ST_USAGE, "%s: %s", label, closed_std(fd) ? "not open" :
		     errno == EBADF ? "not open" : strerror(errno));
	if (!S_ISSOCK(st.st_mode))
		errx(ST_USAGE, "%s: not a socket", label);
	if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &v, &len) < 0 || v != AF_UNIX)
		errx(ST_USAGE, "%s: not an AF_UNIX socket (descriptors cannot travel over it)",
		     label);
	len = sizeof(v);
	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &v, &len) < 0 ||
	    (v != SOCK_STREAM && v != SOCK_SEQPACKET))
		errx(ST_USAGE, "%s: not a stream or seqpacket socket", label);
	len = sizeof(v);
	if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &v, &len) == 0 && v)
		errx(ST_USAGE, "%s: a listening socket, not a connection", label);
	if (getpeername(fd, (struct sockaddr *)&peer, &plen) < 0)
		errx(ST_USAGE, "%s: not connected", label);
	/* no O_NONBLOCK here: that flag is shared with whoever else holds
	 * the socket; each call says MSG_DONTWAIT instead */
	if (fcntl(fd, F_SETFD, FD_CLOEXEC) < 0)
		err(ST_SYSTEM, "%s", label);
}

/* Ends the program unless dir is a real directory (not a symlink) owned by
 * the caller that no one else may enter. */
static inline void check_private_dir(const char *dir)
{
	struct stat st;

	if (lstat(dir, &st) < 0)
		err(ST_SYSTEM, "%s", dir);
	if (!S_ISDIR(st.st_mode))
		errx(ST_SYSTEM, "%s: not a directory%s", dir,
		     S_ISLNK(st.st_mode) ? " (a symbolic link)" : "");
	if (st.st_uid != geteuid() || (st.st_mode & 077))
		errx(ST_SYSTEM, "%s: not a private directory (owner uid %u, mode %03o; expected uid %u, mode 0700)",
		     dir, (unsigned)st.st_uid, (unsigned)(st.st_mode & 0777),
		     (unsigned)geteuid());
}

/* The per-user directory for bare names, created 0700 when missing. Root's
 * is always /run/fdsend, where util-linux's fdsend and fdrecv put theirs
 * (and after su without -, root may carry a user's XDG_RUNTIME_DIR). Others
 * follow an XDG_RUNTIME_DIR that is a real directory of their own. */
static inline void runtime_dir(char *dir, size_t size)
{
	const char *x = getenv("XDG_RUNTIME_DIR");
	struct stat st;

	if (geteuid() == 0) {
		snprintf(dir, size, "/run/fdsend");
	} else if (x && *x) {
		if (*x != '/')
			errx(ST_SYSTEM, "XDG_RUNTIME_DIR=%s: not an absolute path", x);
		if (lstat(x, &st) < 0 || !S_ISDIR(st.st_mode) || st.st_uid != geteuid())
			errx(ST_SYSTEM, "XDG_RUNTIME_DIR=%s: not a directory owned by uid %u",
			     x, (unsigned)geteuid());
		snprintf(dir, size, "%s/fdsend", x);
	} else {
		snprintf(dir, size, "/tmp/fdsend-%u", (unsigned)geteuid());
	}
	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		err(ST_SYSTEM, "%s: cannot create directory", dir);
	check_private_dir(dir);
}

static inline void resolve_chan(struct chan *c, const char *word, int abstract)
{
	const char *name = word;
	size_t len;

	memset(c, 0, sizeof(*c));
	c->inherited = -1;
	c->sa.sun_family = AF_UNIX;
	if (!abstract && !strncmp(word, "fd:", 3)) {
		snprintf(c->label, sizeof(c->label), "%s", word);
		c->inherited = (int)parse_number(word + 3, 0, INT_MAX,
						 "socket descriptor");
		check_inherited(c->label, c->inherited);
		return;
	}
	if (abstract || word[0] == '@') {
		name = abstract ? word : word + 1;
		len = strlen(name);
		snprintf(c->label, sizeof(c->label), "@%s", name);
		if (len == 0)
			usage_error("%s: empty abstract socket name", word);
		if (len > (size_t)SUN_PATH_MAX)
			usage_error("%s: name too long (%d bytes at most)",
				    c->label, SUN_PATH_MAX);
		c->abstract = 1;
		memcpy(c->sa.sun_path + 1, name, len);
		c->salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + len);
		return;
	}
	if (!strchr(word, '/')) {
		char dir[PATH_MAX];

		if (!*word || !strcmp(word, ".") || !strcmp(word, ".."))
			usage_error("invalid socket name: '%s'", word);
		runtime_dir(dir, sizeof(dir));
		snprintf(c->label, sizeof(c->label), "%s/%s", dir, word);
	} else if ((len = strlen(word)) < sizeof(c->label)) {
		memcpy(c->label, word, len + 1);
	} else {
		usage_error("%.40s...: path too long (%d bytes at most)", word,
			    SUN_PATH_MAX);
	}
	len = strlen(c->label);
	if (len > (size_t)SUN_PATH_MAX)
		usage_error("%s: path too long (%d bytes at most)", c->label,
			    SUN_PATH_MAX);
	memcpy(c->sa.sun_path, c->label, len);
	c->salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len + 1);
}

static inline int is_stream(int fd)
{
	int v;
	socklen_t len = sizeof(v);

	return getsockopt(fd, SOL_SOCKET, SO_TYPE, &v, &len) == 0 &&
	       v == SOCK_STREAM;
}

static inline int unix_socket(int type)
{
	int fd = socket(AF_UNIX, type | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

	if (fd < 0)
		err(ST_SYSTEM, "socket");
	return fd;
}

/* ---- listening on a channel ---- */

/* Where a socket file goes: its directory, held open, and its name there. */
struct spot {
	char dir[sizeof(((struct sockaddr_un *)0)->sun_path)];
	const char *name;
	int dirfd;
};

static inline void open_spot(const struct chan *c, struct spot *sp)
{
	const char *path = c->sa.sun_path, *slash = strrchr(path, '/');
	size_t len = !slash ? 0 : slash == path ? 1 : (size_t)(slash - path);

	memcpy(sp->dir, len ? path : ".", len ? len : 1);
	sp->dir[len ? len : 1] = 0;
	sp->name = slash ? slash + 1 : path;
	if (!*sp->name)
		usage_error("%s: no file name after the last '/'", c->label);
	sp->dirfd = open(sp->dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (sp->dirfd < 0)
		err(ST_SYSTEM, "%s: directory %s", c->label, sp->dir);
}

/* bind(2) takes a path: the directory it went through must still be the
 * one held open, else the file is somewhere we never looked. */
static inline void check_spot(const struct chan *c, const struct spot *sp)
{
	struct stat a, b;

	if (stat(sp->dir, &a) < 0 || fstat(sp->dirfd, &b) < 0 ||
	    a.st_dev != b.st_dev || a.st_ino != b.st_ino)
		errx(ST_SYSTEM, "%s: directory %s was replaced while binding",
		     c->label, sp->dir);
}

enum { GONE, STALE };

/* What is at name in the spot (sa is its address): GONE, or STALE when a
 * stream connect(2) is refused (nobody listens; the same file before and
 * after asking). Anything else is in use or not ours: the program ends and
 * the file is left exactly as it was. */
static inline int probe_spot(const struct chan *c, const struct spot *sp,
			     const char *name, const struct sockaddr_un *sa,
			     socklen_t salen, struct stat *st)
{
	struct stat again;
	int fd, r, e;

	if (fstatat(sp->dirfd, name, st, AT_SYMLINK_NOFOLLOW) < 0) {
		if (errno == ENOENT)
			return GONE;
		err(ST_SYSTEM, "%s", c->label);
	}
	if (!S_ISSOCK(st->st_mode))
		errx(ST_SYSTEM, "%s: exists and is not a socket", c->label);
	fd = unix_socket(SOCK_STREAM);
	do
		r = connect(fd, (const struct sockaddr *)sa, salen);
	while (r < 0 && errno == EINTR);
	e = errno;
	close(fd);
	if (r == 0 || e == EAGAIN)
		errx(ST_SYSTEM, "%s: in use by another listener", c->label);
	if (e == ENOENT)
		return GONE;
	if (e != ECONNREFUSED)
		errx(ST_SYSTEM, "%s: in use or not ours (connect: %s); left alone",
		     c->label, strerror(e));
	if (fstatat(sp->dirfd, name, &again, AT_SYMLINK_NOFOLLOW) < 0 ||
	    again.st_dev != st->st_dev || again.st_ino != st->st_ino)
		return GONE;   /* changed meanwhile: look again */
	return STALE;
}

/* Removes the stale file st at name, and nothing else: it is first moved
 * to a name of our own, and put back if what moved was not it (another
 * tool replaced it meanwhile). Removing by name could hit that tool's
 * live socket. */
static inline void remove_stale(const struct chan *c, const struct spot *sp,
				const char *name, const struct stat *st)
{
	char aside[64];
	struct stat moved;

	snprintf(aside, sizeof(aside), ".fdsend.%ld.stale", (long)getpid());
	if (renameat(sp->dirfd, name, sp->dirfd, aside) < 0) {
		if (errno == ENOENT)
			return;   /* somebody removed it first */
		err(ST_SYSTEM, "%s: cannot replace the stale socket", c->label);
	}
	if (fstatat(sp->dirfd, aside, &moved, AT_SYMLINK_NOFOLLOW) == 0 &&
	    moved.st_dev == st->st_dev && moved.st_ino == st->st_ino) {
		unlinkat(sp->dirfd, aside, 0);
		return;
	}
	if (linkat(sp->dirfd, aside, sp->dirfd, name, 0) < 0)
		err(ST_SYSTEM, "%s: a socket that replaced the stale one was moved to %s/%s and cannot be put back",
		    c->label, sp->dir, aside);
	unlinkat(sp->dirfd, aside, 0);
}

/* Binds fd at name in the spot (address sa), replacing only a stale
 * socket; the file belongs to o from the moment it exists. */
static inline void bind_spot(int fd, const struct chan *c, const struct spot *sp,
			     const char *name, const struct sockaddr_un *sa,
			     socklen_t salen, mode_t mode, struct owned *o)
{
	struct stat st;
	mode_t old;
	int r;

	for (int tries = 0;; tries++) {
		/* the mode is set from birth: chmod on a socket fd does nothing */
		old = umask(~mode & 0777);
		r = bind(fd, (const struct sockaddr *)sa, salen);
		umask(old);
		if (r == 0)
			break;
		if (errno != EADDRINUSE || tries == 100)
			err(ST_SYSTEM, "%s: bind", c->label);
		if (probe_spot(c, sp, name, sa, salen, &st) == STALE)
			remove_stale(c, sp, name, &st);
	}
	check_spot(c, sp);
	if (fstatat(sp->dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		err(ST_SYSTEM, "%s", c->label);
	claim(o, &st);
}

/* Gives the listening socket bound at tmp its final name in the spot, so a
 * waiting peer never meets a half-set-up listener. link(2) never replaces:
 * of two tools racing for one stale path, exactly one gets it. */
static inline struct owned *move_into_place(const struct chan *c,
					    const struct spot *sp,
					    struct owned *tmp)
{
	struct owned *o = owned_entry(sp->dirfd, sp->name);
	struct stat st;

	st.st_dev = tmp->dev;
	st.st_ino = tmp->ino;
	claim(o, &st);   /* a file of another identity there is not touched */
	for (int tries = 0;; tries++) {
		if (linkat(sp->dirfd, tmp->name, sp->dirfd, sp->name, 0) == 0)
			break;
		if (errno != EEXIST || tries == 100)
			err(ST_SYSTEM, "%s", c->label);
		if (probe_spot(c, sp, sp->name, &c->sa, c->salen, &st) == STALE)
			remove_stale(c, sp, sp->name, &st);
	}
	remove_file(tmp);
	return o;
}

enum listen_for {
	FOR_HANDOFF,    /* bound under a temporary name, moved into place */
	FOR_SERVICE,    /* bound in place, so it reports its real address */
};

/* A listening socket at the channel's address; *own gets its socket file
 * (NULL for abstract names). A service's socket is blocking, as servers
 * expect. */
static inline int listen_chan(const struct chan *c, int backlog, mode_t mode,
			      enum listen_for why, struct owned **own)
{
	int fd = unix_socket(SOCK_STREAM);
	struct sockaddr_un tmp = c->sa;
	char tname[64], *e;
	struct spot sp;
	int n;

	*own = NULL;
	if (why == FOR_SERVICE && fcntl(fd, F_SETFL, 0) < 0)
		err(ST_SYSTEM, "%s", c->label);
	if (c->abstract) {
		if (bind(fd, (const struct sockaddr *)&c->sa, c->salen) < 0)
			err(ST_SYSTEM, errno == EADDRINUSE ? "%s: in use by another listener"
				       : "%s: bind", c->label);
		if (listen(fd, backlog) < 0)
			err(ST_SYSTEM, "%s: listen", c->label);
		return fd;
	}
	open_spot(c, &sp);
	/* the temporary name lives beside the final one, for link(2) */
	memcpy(tname, ".fdsend.", 8);
	e = put_decimal(tname + 8, (unsigned long)getpid());
	*e++ = '.';
	n = (int)(put_decimal(e, (unsigned long)fd) - tname);
	if (why == FOR_SERVICE ||
	    (size_t)(sp.name - c->sa.sun_path) + (size_t)n >= sizeof(tmp.sun_path)) {
		/* no room for a temporary name: bind in place */
		*own = owned_entry(sp.dirfd, sp.name);
		bind_spot(fd, c, &sp, sp.name, &c->sa, c->salen, mode, *own);
		if (listen(fd, backlog) < 0)
			err(ST_SYSTEM, "%s: listen", c->label);
		/* until listen(2), another tool sees a socket that refuses,
		 * takes it for stale and replaces it: then it is theirs */
		if (!still_ours(*own)) {
			disown(*own);
			errx(ST_SYSTEM, "%s: in use by another listener", c->label);
		}
	} else {
		struct owned *t = owned_entry(sp.dirfd, tname);

		memcpy(tmp.sun_path + (sp.name - c->sa.sun_path), tname, (size_t)n + 1);
		bind_spot(fd, c, &sp, tname, &tmp, (socklen_t)(offsetof(struct
			  sockaddr_un, sun_path) + (size_t)(sp.name - c->sa.sun_path) +
			  (size_t)n + 1), mode, t);
		if (listen(fd, backlog) < 0)
			err(ST_SYSTEM, "%s: listen", c->label);
		*own = move_into_place(c, &sp, t);
	}
	close(sp.dirfd);
	return fd;
}

/* --socket-mode: an octal file mode for the socket files a tool creates. */
static inline mode_t parse_mode(const char *s)
{
	char *end;
	unsigned long m;

	errno = 0;
	m = strtoul(s, &end, 8);
	if (*s < '0' || *s > '7' || *end || errno || m > 0777)
		usage_error("invalid mode: '%s' (expected octal, e.g. 0660)", s);
	return (mode_t)m;
}

/* ---- connecting to a channel ---- */

/* Paces connection attempts: fine steps at first, so a receiver starting
 * alongside is met at once; then inotify on the directory (its teardown
 * costs milliseconds, so only long waits pay it); 10 ms polling where
 * nothing can be watched (abstract names, a directory not there yet). */
struct waiter {
	msec_t start;
	long step_us;
	int inotify;    /* -1 not yet, -2 unusable */
};

static inline void nap(long us)
{
	struct timespec ts = { us / 1000000, us % 1000000 * 1000 };

	nanosleep(&ts, NULL);
}

static inline void wait_a_little(struct waiter *w, const struct chan *c,
			  msec_t deadline)
{
	char dir[sizeof(c->sa.sun_path)], buf[4096], *slash;

	if (now_ms() - w->start < 200) {
		nap(w->step_us);
		if (w->step_us < 500)
			w->step_us += w->step_us / 4 + 1;
		return;
	}
	if (c->abstract || w->inotify == -2) {
		nap(10000);
		return;
	}
	if (w->inotify == -1) {
		snprintf(dir, sizeof(dir), "%s", c->sa.sun_path);
		slash = strrchr(dir, '/');
		slash[slash == dir] = 0;      /* "/x" watches "/" */
		w->inotify = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
		if (w->inotify >= 0 &&
		    inotify_add_watch(w->inotify, dir, IN_CREATE | IN_MOVED_TO |
				      IN_ATTRIB) < 0) {
			close(w->inotify);
			w->inotify = -2;
		}
		if (w->inotify < 0)
			w->inotify = -2;
		return;     /* try once more: it may have appeared meanwhile */
	}
	if (wait_fd(w->inotify, POLLIN, earlier(deadline, now_ms() + 1000)) > 0)
		while (read(w->inotify, buf, sizeof(buf)) > 0)
			;
}

/* Connects to the listener, waiting for it to appear until the deadline;
 * a stream socket, or a seqpacket one when that is what listens. */
static inline int connect_chan(const struct chan *c, msec_t deadline,
			       const char *whom)
{
	struct waiter w = { 0, 20, -1 };   /* the clock starts at the first miss */
	int type = SOCK_STREAM, fd = unix_socket(type), last = 0;

	for (;;) {
		if (connect(fd, (const struct sockaddr *)&c->sa, c->salen) == 0)
			break;
		if (errno == EINTR)
			continue;
		if (errno == EPROTOTYPE && last != EPROTOTYPE) {
			close(fd);
			type = type == SOCK_STREAM ? SOCK_SEQPACKET : SOCK_STREAM;
			fd = unix_socket(type);
			last = EPROTOTYPE;
			continue;
		}
		if (errno != ENOENT && errno != ECONNREFUSED && errno != EAGAIN) {
			last = errno;
			close(fd);
			errno = last;
			err(ST_SYSTEM, "%s: cannot connect", c->label);
		}
		last = errno;
		if (!w.start)
			w.start = now_ms();
		if (deadline != NO_DEADLINE && now_ms() >= deadline) {
			close(fd);
			/* an abstract name is per network namespace: the
			 * peer may be listening in another one */
			if (c->abstract)
				errx(ST_TIMEOUT, "%s: timed out waiting for a %s (abstract names are per network namespace)",
				     c->label, whom);
			if (last == ECONNREFUSED)
				errx(ST_TIMEOUT, "%s: no %s listening (connection refused)",
				     c->label, whom);
			errx(ST_TIMEOUT, "%s: timed out waiting for a %s", c->label, whom);
		}
		wait_a_little(&w, c, deadline);
	}
	if (w.inotify >= 0)
		close(w.inotify);
	return fd;
}

/* ---- who may be the peer ---- */

struct allow {
	uid_t *uids;
	size_t n;
};

/* --allow-uid UID[,UID...]: numbers or user names (argv is cut in place). */
static inline void parse_allow(struct allow *a, char *arg)
{
	for (char *tok = arg, *comma; tok; tok = comma ? comma + 1 : NULL) {
		struct passwd *pw;
		uid_t uid;

		if ((comma = strchr(tok, ',')))
			*comma = 0;
		pw = *tok >= '0' && *tok <= '9' ? NULL : getpwnam(tok);
		uid = pw ? pw->pw_uid
			 : (uid_t)parse_number(tok, 0, UINT32_MAX - 1, "uid or user name");
		a->uids = realloc(a->uids, (a->n + 1) * sizeof(uid_t));
		if (!a->uids)
			err(ST_SYSTEM, "realloc");
		a->uids[a->n++] = uid;
	}
}

/* The peer's credentials, as the kernel saw them at connect time (a uid,
 * never a pid, decides: pids are recycled). 1 when the uid may talk to us:
 * our own, root's, or one --allow-uid names. */
static inline int peer_allowed(int fd, const struct allow *a, struct ucred *cr)
{
	socklen_t len = sizeof(*cr);

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, cr, &len) < 0) {
		cr->pid = 0;
		cr->uid = (uid_t)-1;
		return 0;
	}
	static uid_t me = (uid_t)-1;

	if (me == (uid_t)-1)
		me = geteuid();
	if (cr->uid == me || cr->uid == 0)
		return 1;
	for (size_t i = 0; i < a->n; i++)
		if (a->uids[i] == cr->uid)
			return 1;
	return 0;
}

static inline const char *not_allowed(const struct ucred *cr, char *buf,
				      size_t size)
{
	snprintf(buf, size, "uid %u (pid %d) is not allowed (see --allow-uid)",
		 (unsigned)cr->uid, (int)cr->pid);
	return buf;
}

/* ---- wire protocol, version 2 (documented in fdrecv.1, PROTOCOL) ---- */

#define PROTO_VERSION 2
#define HDR_LEN 12
#define FDS_FRAME (HDR_LEN + 4)
#define REASON_MAX 1024         /* bytes of a REFUSED frame's reason */
#define ANSWER_MAX CHUNK        /* the longest frame a sender reads */
static const unsigned char MAGIC[4] = { 'F', 'D', 'H', 'O' };

enum { T_OFFER = 1, T_GO = 2, T_FDS = 3, T_HELD = 4, T_REFUSED = 5 };
/* the FDS frames follow the OFFER without waiting for GO (version 1
 * called it NOACK: the receiver answers HELD all the same) */
enum { F_NOWAIT = 1 };
static const char *const frame_names[] = { "?", "OFFER", "GO", "FDS", "HELD",
					   "REFUSED" };

static inline void put32(unsigned char *p, uint32_t v)
{
	p[0] = v & 0xff;
	p[1] = (v >> 8) & 0xff;
	p[2] = (v >> 16) & 0xff;
	p[3] = v >> 24;
}

static inline uint32_t get32(const unsigned char *p)
{
	return p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

static inline void put_header(unsigned char *p, int type, uint32_t len)
{
	memcpy(p, MAGIC, 4);
	p[4] = PROTO_VERSION;
	p[5] = (unsigned char)type;
	p[6] = p[7] = 0;
	put32(p + 8, len);
}

/* NULL when the header is acceptable, else the reason. */
static inline const char *check_header(const unsigned char *p)
{
	if (memcmp(p, MAGIC, 4))
		return "not an fdsend protocol frame (bad magic)";
	if (p[4] < 1)
		return "bad protocol version 0";
	if (p[5] < T_OFFER || p[5] > T_REFUSED)
		return "unknown frame type";
	if (get32(p + 8) > MAX_PAYLOAD)
		return "frame too long";
	return NULL;
}

/* A name for LISTEN_FDNAMES: printable ASCII without ':' (systemd's rule). */
static inline int name_ok(const char *s, size_t len)
{
	if (len > NAME_MAX_LEN)
		return 0;
	for (size_t i = 0; i < len; i++)
		if (s[i] < ' ' || s[i] > '~' || s[i] == ':')
			return 0;
	return 1;
}

struct offer {
	uint32_t count;
	uint32_t flags;
	const char **names;     /* count pointers into the payload */
	int waits;              /* the sender reads HELD (version 2 field) */
};

/* Parses an OFFER payload; NULL on success, else the reason.
 * o->names must be freed by the caller on success. */
static inline const char *parse_offer(const unsigned char *p, size_t len,
			       struct offer *o)
{
	uint32_t nlen;
	const char *s, *end;

	if (len < 12)
		return "offer too short";
	o->count = get32(p);
	o->flags = get32(p + 4);
	nlen = get32(p + 8);
	if (o->count == 0)
		return "offer of no descriptors";
	if (o->count > MAX_FDS)
		return "too many descriptors offered";
	if (o->flags & ~(uint32_t)F_NOWAIT)
		return "unsupported offer flags";
	if (nlen > len - 12 || nlen < o->count || (nlen && p[12 + nlen - 1]))
		return "malformed descriptor names";
	o->names = malloc(o->count * sizeof(*o->names));
	if (!o->names)
		return "out of memory";
	s = (const char *)p + 12;
	end = s + nlen;
	for (uint32_t i = 0; i < o->count; i++) {
		size_t l = strnlen(s, (size_t)(end - s));

		if (s + l == end || !name_ok(s, l)) {
			free(o->names);
			o->names = NULL;
			return s + l == end ? "malformed descriptor names"
					    : "invalid descriptor name";
		}
		o->names[i] = s;
		s += l + 1;
	}
	if (s != end) {
		free(o->names);
		o->names = NULL;
		return "malformed descriptor names";
	}
	o->waits = len - 12 - nlen >= 4 && (get32(p + 12 + nlen) & 1);
	return NULL;
}

/* ---- transport: frames and descriptors, sent and received ---- */

static inline void close_all(int *fds, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (fds[i] >= 0)
			close(fds[i]);
}

/* One sendmsg without blocking, the descriptors riding along; the bytes
 * sent, 0 when it would block, -1 on error. Chunks stay within CHUNK so a
 * SEQPACKET reader never truncates. */
static inline ssize_t send_some(int fd, const unsigned char *buf, size_t len,
				const int *fds, size_t nfds)
{
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(FDS_PER_MSG * sizeof(int))];
	} ctl;
	struct iovec iov = { (void *)buf, len > CHUNK ? CHUNK : len };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1 };
	ssize_t r;

	if (nfds) {
		struct cmsghdr *c;

		memset(&ctl, 0, sizeof(ctl));
		m.msg_control = ctl.buf;
		m.msg_controllen = CMSG_SPACE(nfds * sizeof(int));
		c = CMSG_FIRSTHDR(&m);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(nfds * sizeof(int));
		memcpy(CMSG_DATA(c), fds, nfds * sizeof(int));
	}
	do
		r = sendmsg(fd, &m, MSG_NOSIGNAL | MSG_DONTWAIT);
	while (r < 0 && errno == EINTR);
	if (r < 0 && errno == EAGAIN)
		return 0;
	return r;
}

/* Sends len bytes, the descriptors riding on the first sendmsg. */
static inline int send_all(int fd, const unsigned char *buf, size_t len,
			   const int *fds, size_t nfds, msec_t deadline)
{
	while (len) {
		ssize_t r = send_some(fd, buf, len, fds, nfds);
		int w;

		if (r < 0)
			return -1;
		if (r > 0) {
			nfds = 0;
			buf += r;
			len -= (size_t)r;
			continue;
		}
		w = wait_fd(fd, POLLOUT, deadline);
		if (w == 0)
			errno = ETIMEDOUT;
		if (w <= 0)
			return -1;
	}
	return 0;
}

static inline int send_frame(int fd, int type, const void *payload, uint32_t len,
		      msec_t deadline)
{
	unsigned char small[HDR_LEN + 1024];
	unsigned char *b = len <= 1024 ? small : malloc(HDR_LEN + (size_t)len);
	int r;

	if (!b)
		return -1;
	put_header(b, type, len);
	if (len)
		memcpy(b + HDR_LEN, payload, len);
	r = send_all(fd, b, HDR_LEN + (size_t)len, NULL, 0, deadline);
	if (b != small)
		free(b);
	return r;
}

/* Best effort: the peer may already be gone. A reason over REASON_MAX
 * bytes is cut there, before a whole UTF-8 character. */
static inline void send_refusal(int fd, const char *why)
{
	size_t len = strlen(why);

	if (len > REASON_MAX)
		for (len = REASON_MAX; len && (why[len] & 0xc0) == 0x80; len--)
			;
	send_frame(fd, T_REFUSED, why, (uint32_t)len, now_ms() + 200);
}

/* The greeting: a receiver's GO, sent as soon as it admits a peer and
 * before it reads; a version 1 sender takes it as its go-ahead. Best
 * effort: a plain sender may be gone already. */
static inline void send_greeting(int fd)
{
	send_frame(fd, T_GO, NULL, 0, now_ms() + 200);
}

/* What arrives from a peer: a byte stream plus the descriptors in order. */
struct inbox {
	int fd;
	unsigned char *buf;
	size_t off, len, cap;       /* unread bytes are buf[off..len) */
	int *fds;
	size_t nfds, maxfds;
	size_t msgs;                /* recvmsg calls that returned data */
	uint32_t maxframe;          /* largest payload accepted */
	int firstfds;               /* the first message carried descriptors */
	/* reads stop at the end of the frame being read, taken to be at
	 * least this long (0: read all there is): on a stream, this tells
	 * which frame the descriptors came with */
	size_t exact;
	size_t limit;               /* inbox_frame to inbox_fill: most to read */
	int timed_out;              /* the last failure was the deadline */
	char why[160];              /* the reason for the last failure */
};

static inline void inbox_init(struct inbox *ib, int fd)
{
	memset(ib, 0, sizeof(*ib));
	ib->fd = fd;
	ib->maxfds = FDS_PER_MSG;
	ib->maxframe = MAX_PAYLOAD;
}

static inline void inbox_free(struct inbox *ib)
{
	close_all(ib->fds, ib->nfds);
	free(ib->fds);
	free(ib->buf);
	ib->fds = NULL;
	ib->buf = NULL;
	ib->nfds = 0;
}

static inline int inbox_fail(struct inbox *ib, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(ib->why, sizeof(ib->why), fmt, ap);
	va_end(ap);
	return -1;
}

/* Takes in the descriptors of one control message; anything unexpected
 * is closed and refused, never leaked. */
static inline int inbox_take(struct inbox *ib, struct msghdr *m)
{
	int bad = 0;

	for (struct cmsghdr *c = CMSG_FIRSTHDR(m); c; c = CMSG_NXTHDR(m, c)) {
		int *p = (int *)CMSG_DATA(c);
		size_t n;

		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) {
			bad = bad ? bad : 1;
			continue;
		}
		n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < n; i++) {
			int fd;

			memcpy(&fd, p + i, sizeof(fd));
			if (bad || ib->nfds >= ib->maxfds) {
				close(fd);
				bad = bad ? bad : 2;
				continue;
			}
			ib->fds[ib->nfds++] = fd;
		}
	}
	if (m->msg_flags & MSG_CTRUNC)
		return inbox_fail(ib, "control data truncated (MSG_CTRUNC)");
	if (bad == 1)
		return inbox_fail(ib, "unexpected control message");
	if (bad == 2)
		return inbox_fail(ib, ib->maxfds ? "more descriptors than announced"
						 : "descriptors attached to it");
	return 0;
}

/* Reads what is there; 1 data, 0 end of stream, -1 failure (ib->why),
 * WOULD_BLOCK when nothing is there and the deadline is DONT_WAIT. */
static inline int inbox_fill(struct inbox *ib, msec_t deadline)
{
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(FDS_PER_MSG * sizeof(int)) + 256];
	} ctl;

	if (ib->off && ib->off == ib->len)
		ib->off = ib->len = 0;
	/* an exact read needs only its own room: growing for CHUNK every
	 * time costs a realloc per frame (5% of a one-descriptor handoff) */
	if (ib->cap - ib->len < (ib->limit && ib->limit < CHUNK ? ib->limit : CHUNK)) {
		size_t cap = ib->len + CHUNK;
		unsigned char *b = realloc(ib->buf, cap);

		if (!b)
			return inbox_fail(ib, "out of memory");
		ib->buf = b;
		ib->cap = cap;
	}
	if (!ib->fds && !(ib->fds = malloc((ib->maxfds + 1) * sizeof(int))))
		return inbox_fail(ib, "out of memory");
	for (;;) {
		struct iovec iov = { ib->buf + ib->len, ib->limit &&
				     ib->limit < ib->cap - ib->len ? ib->limit
				     : ib->cap - ib->len };
		struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1,
				    .msg_control = ctl.buf,
				    .msg_controllen = sizeof(ctl.buf) };
		size_t had = ib->nfds;
		ssize_t r = recvmsg(ib->fd, &m, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
		int w;

		if (r > 0) {
			ib->len += (size_t)r;
			if (inbox_take(ib, &m) < 0)
				return -1;
			if (m.msg_flags & MSG_TRUNC)
				return inbox_fail(ib, "message truncated");
			if (ib->msgs++ == 0)
				ib->firstfds = ib->nfds > had;
			return 1;
		}
		if (r == 0 && m.msg_controllen) {
			/* an empty SEQPACKET record can carry descriptors: close them */
			inbox_take(ib, &m);
			return inbox_fail(ib, "empty message with descriptors");
		}
		if (r == 0)
			return 0;
		if (errno == EINTR)
			continue;
		if (errno == ECONNRESET)
			return 0;
		if (errno != EAGAIN)
			return inbox_fail(ib, "%s", strerror(errno));
		if (deadline == DONT_WAIT)
			return WOULD_BLOCK;
		w = wait_fd(ib->fd, POLLIN, deadline);
		ib->timed_out = w == 0;
		if (w == 0)
			return inbox_fail(ib, "timed out");
		if (w < 0)
			return inbox_fail(ib, "%s", strerror(errno));
	}
}

/* Grows the descriptor array once an offer says how many will come. */
static inline int inbox_expect(struct inbox *ib, size_t maxfds)
{
	int *p;

	if (ib->nfds > maxfds)
		return inbox_fail(ib, "more descriptors than announced");
	p = realloc(ib->fds, (maxfds + 1) * sizeof(int));
	if (!p)
		return inbox_fail(ib, "out of memory");
	ib->fds = p;
	ib->maxfds = maxfds;
	return 0;
}

/* Reads one whole frame: *type, payload at *p (valid until the next read).
 * 1 ok, 0 clean end of stream before any byte of it, -1 failure,
 * WOULD_BLOCK (DONT_WAIT only: call again when readable). */
static inline int inbox_frame(struct inbox *ib, int *type,
			      const unsigned char **p, uint32_t *len,
			      msec_t deadline)
{
	const char *bad;
	size_t need = HDR_LEN;
	int r;

	for (;;) {
		if (ib->len - ib->off >= HDR_LEN) {
			if ((bad = check_header(ib->buf + ib->off)))
				return inbox_fail(ib, "%s", bad);
			need = HDR_LEN + get32(ib->buf + ib->off + 8);
			if (need - HDR_LEN > ib->maxframe)
				return inbox_fail(ib, "frame too long");
		}
		if (ib->len - ib->off >= need)
			break;
		ib->limit = ib->exact ? (need > ib->exact ? need : ib->exact) -
					(ib->len - ib->off) : 0;
		if (ib->off && ib->cap - ib->len < CHUNK) {
			memmove(ib->buf, ib->buf + ib->off, ib->len - ib->off);
			ib->len -= ib->off;
			ib->off = 0;
		}
		r = inbox_fill(ib, deadline);
		if (r == 0 && ib->len != ib->off)
			return inbox_fail(ib, "connection closed in the middle of a frame");
		if (r <= 0)
			return r;
	}
	*type = ib->buf[ib->off + 5];
	*len = (uint32_t)(need - HDR_LEN);
	*p = ib->buf + ib->off + HDR_LEN;
	ib->off += need;
	return 1;
}

/* ---- text: addresses and UTF-8 ---- */

/* Address as text: 1.2.3.4:80, [::1]:80, /path, @abstract; 0 when unnamed. */
static inline size_t format_addr(const struct sockaddr_storage *ss, socklen_t len,
			  char *out, size_t size)
{
	char host[INET6_ADDRSTRLEN];
	const struct sockaddr_un *un = (const void *)ss;
	size_t off = offsetof(struct sockaddr_un, sun_path);
	int n = 0;

	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *in = (const void *)ss;

		if (!in->sin_port && !in->sin_addr.s_addr)
			return 0;   /* not bound */
		inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
		n = snprintf(out, size, "%s:%u", host, ntohs(in->sin_port));
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const void *)ss;

		if (!in6->sin6_port && IN6_IS_ADDR_UNSPECIFIED(&in6->sin6_addr))
			return 0;
		inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
		n = snprintf(out, size, "[%s]:%u", host, ntohs(in6->sin6_port));
	} else if (ss->ss_family == AF_UNIX && len > off) {
		size_t l = len - off;

		if (un->sun_path[0]) {
			l = strnlen(un->sun_path, l);
			memcpy(out, un->sun_path, l);
			return l;
		}
		out[0] = '@';
		memcpy(out + 1, un->sun_path + 1, l - 1);
		return l;
	}
	return n > 0 ? (size_t)n : 0;
}

/* The length of the valid UTF-8 sequence at s (n bytes there), or 0:
 * no overlong forms, surrogates, or code points past U+10FFFF. */
static inline size_t utf8_len(const unsigned char *s, size_t n)
{
	size_t len = s[0] < 0x80 ? 1 : s[0] < 0xc2 ? 0 : s[0] < 0xe0 ? 2 :
		     s[0] < 0xf0 ? 3 : s[0] < 0xf5 ? 4 : 0;
	uint32_t cp;

	if (!len || len > n)
		return 0;
	cp = len == 1 ? s[0] : s[0] & (0x7f >> len);
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
	    (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
		return 0;
	return len;
}

/* A peer's text (a refusal reason) as one line of a terminal: printable
 * UTF-8 as it is; control characters (C0, DEL, C1) and invalid bytes as
 * \xNN. out has room for 4 * len + 1 bytes. */
static inline const char *peer_text(char *out, const unsigned char *p,
				    size_t len)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0;

	for (size_t i = 0; i < len;) {
		size_t n = utf8_len(p + i, len - i);
		int ctl = n == 1 ? p[i] < ' ' || p[i] == 0x7f
			    : n == 2 && p[i] == 0xc2 && p[i + 1] < 0xa0;

		if (n && !ctl) {
			memcpy(out + o, p + i, n);
			o += n;
			i += n;
			continue;
		}
		for (size_t k = 0; k < (n ? n : 1); k++, i++) {
			out[o] = '\\';
			out[o + 1] = 'x';
			out[o + 2] = hex[p[i] >> 4];
			out[o + 3] = hex[p[i] & 15];
			o += 4;
		}
	}
	out[o] = 0;
	return out;
}

/* A REFUSED frame's reason, for a message; text has 4 * REASON_MAX + 1
 * bytes. Over REASON_MAX, only its length is told. */
static inline const char *reason_text(char *text, const unsigned char *p,
				      uint32_t len)
{
	if (len > REASON_MAX) {
		snprintf(text, 4 * REASON_MAX + 1,
			 "(a reason of %u bytes, over the %d-byte limit)", len,
			 REASON_MAX);
		return text;
	}
	return peer_text(text, p, len);
}

#endif
