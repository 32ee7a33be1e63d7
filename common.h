/* SPDX-License-Identifier: MIT */
/* common.h: what fdsend and fdrecv share: socket addressing, deadlines,
 * the wire protocol, framed I/O carrying descriptors, and describing an fd. */
#ifndef FDSEND_COMMON_H
#define FDSEND_COMMON_H

#include <arpa/inet.h>
#include <err.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
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
#include <unistd.h>

/* Exit statuses, listed in both man pages. */
enum {
	ST_OK = 0,
	ST_SYSTEM = 1,     /* a system call failed */
	ST_USAGE = 2,      /* bad command line or argument */
	ST_HANDOFF = 3,    /* the peer refused, vanished or broke the protocol */
	ST_TIMEOUT = 4,    /* -t ran out */
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
#define CHUNK 65536             /* largest sendmsg; SEQPACKET readers use at least this */
#define MAX_PAYLOAD (16u << 20)
#define SUN_PATH_MAX ((int)sizeof(((struct sockaddr_un *)0)->sun_path) - 1)

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

/* Whole-string unsigned parse; the message quotes the bad text. */
static inline unsigned long parse_number(const char *s, unsigned long min,
				  unsigned long max, const char *what)
{
	unsigned long v = 0;
	const char *p = s;

	/* digits only, checked against max as they come: no sign, no space */
	do {
		unsigned long d = (unsigned long)(*p - '0');

		if (*p < '0' || *p > '9' || d > max || v > (max - d) / 10)
			usage_error("invalid %s: '%s' (expected %lu..%lu)", what, s,
				    min, max);
		v = v * 10 + d;
	} while (*++p);
	if (v < min)
		usage_error("invalid %s: '%s' (expected %lu..%lu)", what, s, min, max);
	return v;
}

/* ---- time ---- */

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
static inline int wait_fd(int fd, short events, msec_t deadline)
{
	struct pollfd p = { .fd = fd, .events = events };

	for (;;) {
		msec_t left = deadline == NO_DEADLINE ? -1 : deadline - now_ms();
		int r;

		if (deadline != NO_DEADLINE && left < 0)
			left = 0;
		r = poll(&p, 1, left > INT_MAX ? INT_MAX : (int)left);
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

/* Waits for a connected peer: until the deadline, and limit_ms at most.
 * Without a deadline no clock is read (its first read faults in pages,
 * which is most of what a one-shot fdsend would spend on it). */
static inline int wait_peer(int fd, short events, msec_t deadline, int limit_ms)
{
	struct pollfd p = { .fd = fd, .events = events };
	int r;

	if (deadline != NO_DEADLINE)
		return wait_fd(fd, events, earlier(deadline, now_ms() + limit_ms));
	do
		r = poll(&p, 1, limit_ms);
	while (r < 0 && errno == EINTR);
	return r > 0 ? 1 : r;
}

/* Every tool starts here: 0, 1 and 2 open (else a socket or a received
 * descriptor could land there and be written to as if it were stderr),
 * and socket files this process owns removed by exit(3), whatever path
 * leads there; exec leaves them alone. */
static inline void start_up(void (*cleanup)(void))
{
	for (int fd = 0; fd < 3; fd++)
		if (fcntl(fd, F_GETFD) < 0 && open("/dev/null", O_RDWR) != fd)
			abort();
	atexit(cleanup);
}

/* ---- SOCKET forms ---- */

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

	if (fstat(fd, &st) < 0)
		errx(ST_USAGE, "%s: %s", label,
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

/* The per-user directory for bare names, created 0700 when missing. */
static inline void runtime_dir(char *dir, size_t size)
{
	const char *x = getenv("XDG_RUNTIME_DIR");
	struct stat st;
	int private = 0;

	if (x && *x == '/')
		snprintf(dir, size, "%s/fdsend", x);
	else if (geteuid() == 0)
		snprintf(dir, size, "/run/fdsend");
	else {
		snprintf(dir, size, "/tmp/fdsend-%u", (unsigned)geteuid());
		private = 1;
	}
	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		err(ST_SYSTEM, "%s: cannot create directory", dir);
	if (lstat(dir, &st) < 0)
		err(ST_SYSTEM, "%s", dir);
	if (!S_ISDIR(st.st_mode))
		errx(ST_SYSTEM, "%s: not a directory", dir);
	/* /tmp is shared: only a directory that is ours alone will do */
	if (private && (st.st_uid != geteuid() || (st.st_mode & 077)))
		errx(ST_SYSTEM, "%s: not a private directory (owner %u, mode %03o)",
		     dir, (unsigned)st.st_uid, (unsigned)(st.st_mode & 0777));
}

/* Decimal digits of v at p, NUL-terminated; returns the end. The success
 * path builds its few strings this way: printf's machinery costs pages. */
static inline char *put_uint(char *p, unsigned long v)
{
	char b[24];
	int i = sizeof(b);

	do
		b[--i] = (char)('0' + v % 10);
	while (v /= 10);
	memcpy(p, b + i, sizeof(b) - (size_t)i);
	p[sizeof(b) - (size_t)i] = 0;
	return p + sizeof(b) - i;
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

static inline int unix_socket(void)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

	if (fd < 0)
		err(ST_SYSTEM, "socket");
	return fd;
}

/* ---- socket files: removed on the way out, and on SIGINT/SIGTERM/SIGHUP ---- */

/* A handler reads these: a slot's path is written while set is 0, and set
 * is flipped only after it, so no signal mask is needed. */
#define MAX_OWNED 16
static struct {
	char path[sizeof(((struct sockaddr_un *)0)->sun_path) + 16];
	volatile sig_atomic_t set;
} owned[MAX_OWNED];
static volatile sig_atomic_t stop_signal;

/* Async-signal-safe: a handler may call it. */
static inline void remove_owned_files(void)
{
	for (int i = 0; i < MAX_OWNED; i++)
		if (owned[i].set)
			unlink(owned[i].path);
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
 * signal is only noted, for a loop that waits in ppoll(2). */
static inline void catch_signals(int fatal)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = fatal ? die_of_signal : note_stop;
	sa.sa_flags = fatal ? SA_RESETHAND : 0;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
}

/* Records (p) or forgets (NULL) the file in a slot; returns the slot. */
static inline int own_file(int slot, const char *p)
{
	if (slot < 0)
		for (slot = 0; slot < MAX_OWNED && owned[slot].set; slot++)
			;
	if (slot == MAX_OWNED)
		errx(ST_USAGE, "%s: more than %d socket files at once", p, MAX_OWNED);
	owned[slot].set = 0;
	if (p) {
		memcpy(owned[slot].path, p, strnlen(p, sizeof(owned[slot].path) - 1));
		owned[slot].path[strnlen(p, sizeof(owned[slot].path) - 1)] = 0;
		atomic_signal_fence(memory_order_seq_cst);
		owned[slot].set = 1;
	}
	return slot;
}

static inline void remove_file(int slot)
{
	if (slot >= 0 && owned[slot].set) {
		unlink(owned[slot].path);
		own_file(slot, NULL);
	}
}

/* Exits after removing what this process created. */
static inline void fail_cleanly(int status, int with_errno, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	if (with_errno)
		vwarn(fmt, ap);
	else
		vwarnx(fmt, ap);
	va_end(ap);
	remove_owned_files();
	exit(status);
}

/* 1 when somebody listens at sa. */
static inline int live_listener(const struct sockaddr_un *sa, socklen_t len)
{
	int fd = unix_socket();
	int r = connect(fd, (const struct sockaddr *)sa, len);
	int live = r == 0 || errno == EAGAIN;

	close(fd);
	return live;
}

/* What is at the channel's path: 0 nothing, 1 a stale socket (nobody
 * listening). A live listener, or anything that is not a socket, ends the
 * program: it is never stolen, unlinked or followed. */
static inline int path_state(const struct chan *c)
{
	struct stat st;

	if (lstat(c->sa.sun_path, &st) < 0) {
		if (errno == ENOENT)
			return 0;
		fail_cleanly(ST_SYSTEM, 1, "%s", c->label);
	}
	if (!S_ISSOCK(st.st_mode))
		fail_cleanly(ST_SYSTEM, 0, "%s: exists and is not a socket", c->label);
	if (live_listener(&c->sa, c->salen))
		fail_cleanly(ST_SYSTEM, 0, "%s: in use by another listener", c->label);
	return 1;
}

/* Puts the listening socket bound at tmp into place at the channel's path,
 * so a waiting peer never meets a half-set-up listener. */
static inline void move_into_place(int slot, const char *tmp,
				   const struct chan *c)
{
	const char *path = c->sa.sun_path;

	for (;;) {
		if (path_state(c)) {
			/* rename replaces the stale socket in one step */
			if (rename(tmp, path) < 0)
				break;
		} else if (link(tmp, path) == 0) {
			unlink(tmp);   /* link fails if somebody got there first */
		} else if (errno == EEXIST) {
			continue;
		} else {
			break;
		}
		own_file(slot, path);
		return;
	}
	fail_cleanly(ST_SYSTEM, 1, "%s", c->label);
}

/* A listening socket at the channel's address; *slot gets the socket file's
 * cleanup slot (-1 for abstract names). The handoff socket is bound under
 * a temporary name and moved into place once listening; a service's
 * socket (service) is bound in place, so that it reports its real address,
 * and is blocking, as servers expect. */
static inline int listen_chan(const struct chan *c, int backlog, mode_t mode,
			      int service, int *slot)
{
	int fd = unix_socket();
	struct sockaddr_un tmp = c->sa;
	const char *slash = strrchr(c->sa.sun_path, '/');
	int dirlen = slash ? (int)(slash - c->sa.sun_path + 1) : 0, n, r;
	socklen_t tlen = c->salen;
	mode_t old;

	*slot = -1;
	if (service == 1 && fcntl(fd, F_SETFL, 0) < 0)
		err(ST_SYSTEM, "%s", c->label);
	if (c->abstract) {
		if (bind(fd, (const struct sockaddr *)&c->sa, c->salen) < 0)
			fail_cleanly(ST_SYSTEM, errno != EADDRINUSE,
				     errno == EADDRINUSE ? "%s: in use by another listener"
							 : "%s: bind", c->label);
		if (listen(fd, backlog) < 0)
			err(ST_SYSTEM, "%s: listen", c->label);
		return fd;
	}
	if (!service && dirlen + 32 >= (int)sizeof(tmp.sun_path))
		service = 2;   /* no room for a temporary name: bind in place */
	if (service) {
		if (path_state(c))
			unlink(c->sa.sun_path);
	} else {
		/* the temporary name lives beside the final one, for rename(2) */
		char name[64], *e = name;

		memcpy(e, ".fdsend.", 8);
		e = put_uint(e + 8, (unsigned long)getpid());
		*e++ = '.';
		e = put_uint(e, (unsigned long)fd);
		n = dirlen + (int)(e - name);
		if (n < (int)sizeof(tmp.sun_path))
			memcpy(tmp.sun_path + dirlen, name, (size_t)(e - name) + 1);
		else
			fail_cleanly(ST_USAGE, 0, "%s: path too long for a temporary name beside it",
				     c->label);
		tlen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
	}
	/* the mode is set from birth: chmod on a socket fd does nothing */
	old = umask(~mode & 0777);
	r = bind(fd, (const struct sockaddr *)&tmp, tlen);
	if (r < 0 && errno == EADDRINUSE && !service) {
		unlink(tmp.sun_path);   /* ours by pid and fd: a crash left it */
		r = bind(fd, (const struct sockaddr *)&tmp, tlen);
	}
	umask(old);
	if (r < 0)
		fail_cleanly(ST_SYSTEM, errno != EADDRINUSE,
			     errno == EADDRINUSE ? "%s: in use by another listener"
						 : "%s: bind", c->label);
	*slot = own_file(-1, tmp.sun_path);
	if (listen(fd, backlog) < 0)
		fail_cleanly(ST_SYSTEM, 1, "%s: listen", c->label);
	if (!service)
		move_into_place(*slot, tmp.sun_path, c);
	return fd;
}

/* --mode: an octal file mode for the socket files a tool creates. */
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

/* ---- waiting for a listener ---- */

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

/* Connects to the listener, waiting for it to appear until the deadline. */
static inline int connect_chan(const struct chan *c, msec_t deadline,
			       const char *whom)
{
	struct waiter w = { 0, 20, -1 };   /* the clock starts at the first miss */
	int fd = unix_socket(), last = 0;

	for (;;) {
		if (connect(fd, (const struct sockaddr *)&c->sa, c->salen) == 0)
			break;
		if (errno == EINTR)
			continue;
		if (errno != ENOENT && errno != ECONNREFUSED && errno != EAGAIN) {
			last = errno;
			close(fd);
			errno = last;
			fail_cleanly(ST_SYSTEM, 1, "%s: cannot connect", c->label);
		}
		last = errno;
		if (!w.start)
			w.start = now_ms();
		if (deadline != NO_DEADLINE && now_ms() >= deadline) {
			close(fd);
			if (last == ECONNREFUSED)
				fail_cleanly(ST_TIMEOUT, 0, "%s: no %s listening (connection refused)",
					     c->label, whom);
			fail_cleanly(ST_TIMEOUT, 0, "%s: timed out waiting for a %s",
				     c->label, whom);
		}
		wait_a_little(&w, c, deadline);
	}
	if (w.inotify >= 0)
		close(w.inotify);
	return fd;
}

/* ---- wire protocol, version 1 (documented in fdrecv.1, PROTOCOL) ---- */

#define PROTO_VERSION 1
#define HDR_LEN 12
static const unsigned char MAGIC[4] = { 'F', 'D', 'H', 'O' };

enum { T_OFFER = 1, T_GO = 2, T_FDS = 3, T_HELD = 4, T_REFUSED = 5 };
enum { F_NOACK = 1 };

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
	if (o->flags & ~(uint32_t)F_NOACK)
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
	return NULL;
}

/* A peer's text (a refusal reason), fit to print on one line of a
 * terminal: anything but printable ASCII becomes '?'. */
static inline const char *peer_text(char *out, size_t size,
				    const unsigned char *p, size_t len)
{
	size_t i;

	for (i = 0; i < len && i + 1 < size; i++)
		out[i] = p[i] >= ' ' && p[i] <= '~' ? (char)p[i] : '?';
	out[i] = 0;
	return out;
}

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

/* Best effort: the peer may already be gone. */
static inline void send_refusal(int fd, const char *why)
{
	size_t len = strlen(why);

	send_frame(fd, T_REFUSED, why, (uint32_t)(len > 1024 ? 1024 : len),
		   now_ms() + 200);
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
	if (ib->cap - ib->len < CHUNK) {
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
		struct iovec iov = { ib->buf + ib->len, ib->cap - ib->len };
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

/* ---- describing a descriptor ---- */

struct field {
	const char *key;
	char val[PATH_MAX];
	size_t len;
};

struct fdinfo {
	struct field f[12];
	int n;
	char flags[64];
};

static inline void add_field(struct fdinfo *d, const char *key, const char *val,
		      size_t len)
{
	struct field *f = &d->f[d->n++];

	f->key = key;
	f->len = len < sizeof(f->val) ? len : sizeof(f->val);
	memcpy(f->val, val, f->len);
}

static inline void add_str(struct fdinfo *d, const char *key, const char *val)
{
	add_field(d, key, val, strlen(val));
}

static inline const char *lookup(int v, const int *keys, const char *const *names,
			  size_t n, char *buf, size_t size)
{
	for (size_t i = 0; i < n; i++)
		if (keys[i] == v)
			return names[i];
	snprintf(buf, size, "%d", v);
	return buf;
}

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

static inline void describe_socket(int fd, struct fdinfo *d)
{
	static const int fams[] = { AF_UNIX, AF_INET, AF_INET6, AF_NETLINK };
	static const char *const famn[] = { "unix", "inet", "inet6", "netlink" };
	static const int types[] = { SOCK_STREAM, SOCK_DGRAM, SOCK_SEQPACKET, SOCK_RAW };
	static const char *const typen[] = { "stream", "dgram", "seqpacket", "raw" };
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	int dom = -1, type = -1, acc = 0;
	socklen_t l = sizeof(int);
	char buf[16], addr[sizeof(ss) + 8];
	size_t alen = 0, plen = 0;
	char paddr[sizeof(ss) + 8];

	getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &dom, &l);
	l = sizeof(int);
	getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &l);
	l = sizeof(int);
	getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &acc, &l);
	add_str(d, "family", lookup(dom, fams, famn, 4, buf, sizeof(buf)));
	add_str(d, "type", lookup(type, types, typen, 4, buf, sizeof(buf)));
	memset(&ss, 0, sizeof(ss));
	if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0)
		alen = format_addr(&ss, sl, addr, sizeof(addr));
	sl = sizeof(ss);
	memset(&ss, 0, sizeof(ss));
	if (!acc && getpeername(fd, (struct sockaddr *)&ss, &sl) == 0) {
		plen = format_addr(&ss, sl, paddr, sizeof(paddr));
		add_str(d, "state", "connected");
	} else {
		add_str(d, "state", acc ? "listening" : alen ? "bound" : "unbound");
	}
	if (alen)
		add_field(d, "local", addr, alen);
	if (plen)
		add_field(d, "peer", paddr, plen);
}

static inline void describe(int fd, const char *name, struct fdinfo *d)
{
	char link[PATH_MAX], proc[32];
	struct stat st;
	ssize_t ll;
	int fl = fcntl(fd, F_GETFL);
	const char *kind = "other";

	memset(d, 0, sizeof(*d));
	add_str(d, "name", *name ? name : "unknown");
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	ll = readlink(proc, link, sizeof(link));
	if (ll < 0)
		ll = 0;
	if (fstat(fd, &st) == 0) {
		switch (st.st_mode & S_IFMT) {
		case S_IFREG: kind = "file"; break;
		case S_IFDIR: kind = "directory"; break;
		case S_IFSOCK: kind = "socket"; break;
		case S_IFCHR: kind = "chardev"; break;
		case S_IFBLK: kind = "blockdev"; break;
		case S_IFLNK: kind = "symlink"; break;
		case S_IFIFO:
			kind = ll > 5 && !memcmp(link, "pipe:", 5) ? "pipe" : "fifo";
			break;
		}
	}
	if (ll > 11 && !memcmp(link, "anon_inode:", 11))
		kind = "anon";
	add_str(d, "kind", kind);
	if (strcmp(kind, "socket") && ll)
		add_field(d, "path", link, (size_t)ll);
	if (fl >= 0) {
		static const struct { int bit; const char *name; } fb[] = {
			{ O_APPEND, "append" }, { O_NONBLOCK, "nonblock" },
			{ O_SYNC, "sync" }, { O_DIRECT, "direct" },
			{ O_NOATIME, "noatime" },
		};
		add_str(d, "access", fl & O_PATH ? "path" :
			(fl & O_ACCMODE) == O_RDONLY ? "rdonly" :
			(fl & O_ACCMODE) == O_WRONLY ? "wronly" : "rdwr");
		for (size_t i = 0; i < sizeof(fb) / sizeof(fb[0]); i++) {
			if ((fl & fb[i].bit) != fb[i].bit)
				continue;
			size_t l = strlen(d->flags);

			snprintf(d->flags + l, sizeof(d->flags) - l, "%s%s",
				 l ? "," : "", fb[i].name);
		}
	}
	if (!strcmp(kind, "socket"))
		describe_socket(fd, d);
}

static inline void put_escaped(FILE *out, const char *s, size_t len, int json)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (json && (c == '"' || c == '\\'))
			fprintf(out, "\\%c", c);
		else if (json && (c < 0x20 || c == 0x7f))
			fprintf(out, "\\u%04x", c);   /* UTF-8 passes as it is */
		else if (!json && (c <= ' ' || c > 0x7e || c == '\\'))
			fprintf(out, "\\x%02x", c);
		else
			putc(c, out);
	}
}

/* One line: "3 name=web kind=socket ..." or one JSON object. */
static inline void print_fdinfo(FILE *out, int target, const struct fdinfo *d,
			 int json)
{
	const char *fl = d->flags;

	fprintf(out, json ? "{\"fd\":%d" : "%d", target);
	for (int i = 0; i < d->n; i++) {
		const struct field *f = &d->f[i];

		fprintf(out, json ? ",\"%s\":\"" : " %s=", f->key);
		put_escaped(out, f->val, f->len, json);
		if (json)
			putc('"', out);
		/* flags come right after access, as in the man page */
		if (!strcmp(f->key, "access")) {
			if (json) {
				fputs(",\"flags\":[", out);
				for (const char *s = fl; *s;) {
					size_t l = strcspn(s, ",");
					fprintf(out, "%s\"%.*s\"", s == fl ? "" : ",", (int)l, s);
					s += l + (s[l] == ',');
				}
				putc(']', out);
			} else if (*fl) {
				fprintf(out, " flags=%s", fl);
			}
		}
	}
	fputs(json ? "}" : "\n", out);
}

#endif
