/* SPDX-License-Identifier: MIT */
/* fdsend: hand open descriptors to a receiver over AF_UNIX, once or, as a
 * holder, to every receiver that comes. */
#include <dirent.h>
#include <getopt.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include "common.h"

#define PIDFS_MAGIC 0x50494446  /* linux/magic.h, since Linux 6.9 */

static const char usage_text[] =
	"Usage: fdsend [-a] [-b] [--no-ack] [-t SECONDS] [--fdname NAME[:NAME...]]\n"
	"              [-f FD] [-L] [-p PID[:INODE] [-d | -m ACCESS]]\n"
	"              [--serve [--count N] [-v]] [--backlog N] [--allow-uid UID[,UID...]]\n"
	"              [--socket-mode MODE] [--nonblock] SOCKET [FD...]\n"
	"\n"
	"Send descriptors FD... (default: 0) to the fdrecv listening on SOCKET, in one\n"
	"handoff, and wait until it holds them all; with --serve, listen on SOCKET and\n"
	"hand copies of them to every fdrecv --connect that comes.\n"
	"\n"
	"  -a, --abstract         SOCKET is an abstract socket name\n"
	"  -b, --blocking         accepted for compatibility; waiting is the default\n"
	"  -f, --fd FD            send FD (repeatable), like an FD operand\n"
	"      --fdname NAME[:NAME...]\n"
	"                         names of the descriptors, in order\n"
	"      --no-ack           send at once, wait for no answer (plain receivers)\n"
	"  -t, --timeout SECONDS  bound every wait (default: wait for the receiver\n"
	"                         forever, 10 s for its greeting, 5 s for HELD)\n"
	"  -L, --listen-fds       send the descriptors of socket activation\n"
	"                         (LISTEN_FDS, LISTEN_PID, LISTEN_FDNAMES)\n"
	"  -p, --pid PID[:INODE]  FD numbers are descriptors of process PID (whose\n"
	"                         pidfd has inode INODE: Linux 6.9 and later)\n"
	"  -d, --dup              with --pid: duplicate them (pidfd_getfd) instead of\n"
	"                         reopening /proc/PID/fd/FD\n"
	"  -m, --mode ACCESS      with --pid, no --dup: reopen them for r (reading),\n"
	"                         r+ (both) or w (writing), not as the process has them\n"
	"      --serve            hold the descriptors and serve every receiver\n"
	"      --count N          with --serve: stop after N handoffs\n"
	"      --backlog N        listen backlog for tcp:, unix: and --serve sockets\n"
	"      --allow-uid UID[,UID...]\n"
	"                         also hand over to peers of these users (default:\n"
	"                         only the same user and root)\n"
	"      --socket-mode MODE mode of the socket files fdsend creates (0600)\n"
	"      --nonblock         create tcp:, udp: and unix: sockets non-blocking\n"
	"  -v, --verbose          with --serve: a line per handoff and refusal\n"
	"  -h, --help             show this help and exit\n"
	"  -V, --version          show the version and exit\n"
	"\n"
	"FD: a descriptor number, or a socket to create and listen on: tcp:HOST:PORT,\n"
	"tcp:[IPV6]:PORT, udp:HOST:PORT, unix:PATH; with --pid, the socket of PID\n"
	"bound to that address.\n"
	"SOCKET: PATH (with a '/'), @ABSTRACT, fd:N (an inherited connected socket),\n"
	"or NAME (in /run/fdsend for root, else $XDG_RUNTIME_DIR/fdsend). See fdsend(1).\n";

/* SRC_MADE_NAMED: made by fdsend, named by --fdname (nothing to free) */
enum { SRC_FD, SRC_SPEC, SRC_MADE, SRC_MADE_NAMED };

/* 16 bytes: 10 000 of them should cost few pages */
struct source {
	int kind;
	int fd;                 /* SRC_SPEC: -1 until made */
	const char *name;       /* "" when unnamed; SRC_SPEC: the spec until
				 * made; not SRC_FD: allocated, or "" */
};

struct sender {
	struct chan chan;
	struct source *src;
	size_t nsrc, cap;
	int *fds;               /* the descriptors to send, in order */
	char **names;           /* --fdname entries; "" keeps the default */
	size_t nnames;
	int noack, serve, dup;
	int nonblock;           /* --nonblock: sockets made non-blocking */
	int verbose;            /* --serve -v: a line per handoff */
	pid_t pid;
	unsigned long pidino;   /* --pid PID:INODE; 0 when not given */
	unsigned long count;    /* --serve: handoffs before stopping; 0 = no end */
	int backlog;
	msec_t timeout;
	struct allow allow;
	mode_t sockmode;        /* --socket-mode */
	int acc;                /* -m: O_RDONLY, O_WRONLY, O_RDWR; -1 keeps the original's */
};

/* name: NULL for unnamed, or a string this source now owns */
static void add_source(struct sender *s, int kind, int fd, const char *spec,
		       char *name)
{
	struct source *e;

	if (s->nsrc == s->cap) {
		s->cap = s->cap ? 2 * s->cap : 16;
		s->src = realloc(s->src, s->cap * sizeof(*s->src));
		if (!s->src)
			err(ST_SYSTEM, "realloc");
	}
	e = &s->src[s->nsrc++];
	e->kind = kind;
	e->fd = fd;
	e->name = kind == SRC_SPEC ? spec : name ? name : "";
}

/* The kinds of socket specification an FD operand may be. */
enum spec_kind { NOT_A_SPEC, SPEC_TCP, SPEC_UDP, SPEC_UNIX };

static enum spec_kind spec_kind(const char *arg)
{
	return !strncmp(arg, "tcp:", 4) ? SPEC_TCP : !strncmp(arg, "udp:", 4) ? SPEC_UDP
	       : !strncmp(arg, "unix:", 5) ? SPEC_UNIX : NOT_A_SPEC;
}

/* What follows "tcp:", "udp:" or "unix:". */
static const char *spec_address(const char *spec)
{
	return spec + (spec_kind(spec) == SPEC_UNIX ? 5 : 4);
}

static void add_operand(struct sender *s, const char *arg)
{
	if (spec_kind(arg) != NOT_A_SPEC)
		add_source(s, SRC_SPEC, -1, arg, NULL);
	else
		add_source(s, SRC_FD, (int)parse_number(arg, 0, INT_MAX,
					"descriptor number"), arg, NULL);
}

static void add_names(struct sender *s, const char *arg)
{
	const char *tok = arg;

	/* empty fields count: "a::c" leaves the second one's default */
	for (;;) {
		size_t l = strcspn(tok, ":");

		if (!name_ok(tok, l))
			usage_error("invalid descriptor name: '%.*s' (at most %d printable characters, no ':')",
				    (int)l, tok, NAME_MAX_LEN);
		s->names = realloc(s->names, (s->nnames + 1) * sizeof(*s->names));
		if (!s->names || !(s->names[s->nnames++] = strndup(tok, l)))
			err(ST_SYSTEM, "malloc");
		if (!tok[l])
			break;
		tok += l + 1;
	}
}

/* -L: the descriptors socket activation gave this process, at 3, 4, ... */
static void add_activated(struct sender *s)
{
	const char *fds = getenv("LISTEN_FDS"), *pid = getenv("LISTEN_PID");
	const char *names = getenv("LISTEN_FDNAMES");
	unsigned long n, p;

	if (!fds || !pid)
		errx(ST_USAGE, "--listen-fds: LISTEN_FDS and LISTEN_PID are not set (not socket-activated)");
	/* digits only, as sd_listen_fds(3) reads them */
	if (!parse_digits(pid, INT_MAX, &p) || p != (unsigned long)getpid())
		errx(ST_USAGE, "--listen-fds: LISTEN_PID is '%s', not this process (%d)",
		     pid, (int)getpid());
	if (!parse_digits(fds, MAX_FDS, &n) || n < 1)
		errx(ST_USAGE, "--listen-fds: invalid LISTEN_FDS: '%s'", fds);
	for (unsigned long i = 0; i < n; i++) {
		size_t l = names ? strcspn(names, ":") : 0;
		char *name = NULL;

		if (fcntl(3 + (int)i, F_SETFD, FD_CLOEXEC) < 0)
			errx(ST_USAGE, "--listen-fds: fd %lu: not open", 3 + i);
		/* UNNAMED is what systemd calls an unnamed one */
		if (l && name_ok(names, l) &&
		    !(l == strlen(UNNAMED) && !strncmp(names, UNNAMED, l)) &&
		    !(name = strndup(names, l)))
			err(ST_SYSTEM, "strndup");
		add_source(s, SRC_MADE, 3 + (int)i, "--listen-fds", name);
		if (names)
			names = names[l] ? names + l + 1 : NULL;
	}
	/* passed on, they would mislead the next program */
	unsetenv("LISTEN_FDS");
	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDNAMES");
}

/* -m: util-linux's words for the access mode of a reopen. */
static int parse_access(const char *s)
{
	if (!strcmp(s, "r"))
		return O_RDONLY;
	if (!strcmp(s, "r+"))
		return O_RDWR;
	if (!strcmp(s, "w"))
		return O_WRONLY;
	usage_error("invalid access mode: '%s' (expected r, r+ or w; the mode of socket files is --socket-mode)",
		    s);
}

/* --pid PID, or PID:INODE as util-linux writes it (kill, nsenter, ...):
 * INODE, the inode number of a pidfd of PID, names one process for good,
 * where a PID may be recycled. */
static pid_t parse_pid(const char *arg, unsigned long *ino)
{
	const char *colon = strchr(arg, ':');
	char num[12];
	unsigned long pid;

	*ino = 0;
	if (!colon)
		return (pid_t)parse_number(arg, 1, INT_MAX, "pid");
	snprintf(num, sizeof(num), "%.*s", (int)(colon - arg), arg);
	if ((size_t)(colon - arg) >= sizeof(num) || !parse_digits(num, INT_MAX, &pid) ||
	    !pid || !parse_digits(colon + 1, ULONG_MAX, ino) || !*ino)
		usage_error("invalid pid: '%s' (expected PID or PID:INODE, decimal numbers above 0)",
			    arg);
	return (pid_t)pid;
}

static const char *access_word(int acc)
{
	return acc == O_RDONLY ? "r" : acc == O_WRONLY ? "w" : "r+";
}

enum { OPT_FDNAME = 256, OPT_NOACK, OPT_SERVE, OPT_COUNT, OPT_BACKLOG,
       OPT_ALLOW, OPT_SOCKET_MODE, OPT_NONBLOCK };

static const struct option long_opts[] = {
	{ "abstract", no_argument, NULL, 'a' },
	{ "blocking", no_argument, NULL, 'b' },
	{ "fd", required_argument, NULL, 'f' },
	{ "fdname", required_argument, NULL, OPT_FDNAME },
	{ "no-ack", no_argument, NULL, OPT_NOACK },
	{ "timeout", required_argument, NULL, 't' },
	{ "listen-fds", no_argument, NULL, 'L' },
	{ "pid", required_argument, NULL, 'p' },
	{ "dup", no_argument, NULL, 'd' },
	{ "serve", no_argument, NULL, OPT_SERVE },
	{ "count", required_argument, NULL, OPT_COUNT },
	{ "backlog", required_argument, NULL, OPT_BACKLOG },
	{ "allow-uid", required_argument, NULL, OPT_ALLOW },
	{ "mode", required_argument, NULL, 'm' },
	{ "socket-mode", required_argument, NULL, OPT_SOCKET_MODE },
	{ "nonblock", no_argument, NULL, OPT_NONBLOCK },
	{ "verbose", no_argument, NULL, 'v' },
	{ "help", no_argument, NULL, 'h' },
	{ "version", no_argument, NULL, 'V' },
	{ 0 }
};

static void parse_args(struct sender *s, int argc, char **argv)
{
	int abstract = 0, c;

	memset(s, 0, sizeof(*s));
	s->timeout = NO_DEADLINE;
	s->backlog = SOMAXCONN;
	s->sockmode = 0600;
	s->acc = -1;
	while ((c = getopt_long(argc, argv, "abf:t:Lp:dm:vhV", long_opts, NULL)) != -1) {
		switch (c) {
		case 'a': abstract = 1; break;
		case 'b': break;
		case 'f': add_operand(s, optarg); break;
		case OPT_FDNAME: add_names(s, optarg); break;
		case OPT_NOACK: s->noack = 1; break;
		case 't': s->timeout = parse_timeout(optarg); break;
		case 'L': add_activated(s); break;
		case 'p': s->pid = parse_pid(optarg, &s->pidino); break;
		case 'd': s->dup = 1; break;
		case 'm': s->acc = parse_access(optarg); break;
		case OPT_SERVE: s->serve = 1; break;
		case OPT_COUNT:
			s->count = parse_number(optarg, 1, ULONG_MAX, "count");
			break;
		case OPT_BACKLOG:
			s->backlog = (int)parse_number(optarg, 1, INT_MAX, "backlog");
			break;
		case OPT_ALLOW: parse_allow(&s->allow, optarg); break;
		case OPT_SOCKET_MODE: s->sockmode = parse_mode(optarg); break;
		case OPT_NONBLOCK: s->nonblock = 1; break;
		case 'v': s->verbose = 1; break;
		case 'h': fputs(usage_text, stdout); exit(ST_OK);
		case 'V': puts("fdsend " VERSION); exit(ST_OK);
		default:
			fprintf(stderr, "Try 'fdsend --help' for more information.\n");
			exit(ST_USAGE);
		}
	}
	if (optind >= argc)
		usage_error("missing SOCKET");
	for (int i = optind + 1; i < argc; i++)
		add_operand(s, argv[i]);
	if (!s->nsrc)
		add_operand(s, "0");
	if (s->nnames > s->nsrc)
		usage_error("%zu names for %zu descriptors", s->nnames, s->nsrc);
	if (s->dup && !s->pid)
		usage_error("--dup goes with --pid");
	if (s->acc >= 0 && !s->pid)
		usage_error("--mode goes with --pid");
	if (s->acc >= 0 && s->dup)
		usage_error("--mode does not go with --dup: a duplicate keeps its access mode");
	if (s->count && !s->serve)
		usage_error("--count goes with --serve");
	if (s->verbose && !s->serve)
		usage_error("--verbose goes with --serve");
	if (s->serve && s->timeout == 0)
		usage_error("--serve -t 0: a holder needs a per-peer timeout above 0");
	resolve_chan(&s->chan, argv[optind], abstract);
	if (s->serve && s->chan.inherited >= 0)
		usage_error("--serve listens: it needs a PATH, @NAME or NAME, not %s",
			    s->chan.label);
}

/* ---- where descriptors come from ---- */

/* An inet spec's address: tcp:HOST:PORT, tcp:[V6]:PORT, udp:...; HOST may
 * be * or empty for any. Returns the socket type. */
union inet_addr {
	struct sockaddr sa;
	struct sockaddr_in in;
	struct sockaddr_in6 in6;
	struct sockaddr_storage ss;
};

static int parse_inet(const char *spec, union inet_addr *a, socklen_t *alen)
{
	int udp = spec_kind(spec) == SPEC_UDP;
	const char *hp = spec_address(spec), *colon = strrchr(hp, ':');
	char host[INET6_ADDRSTRLEN + 2];
	unsigned long port;

	if (!colon || (size_t)(colon - hp) >= sizeof(host))
		usage_error("%s: expected %.3s:HOST:PORT", spec, spec);
	snprintf(host, sizeof(host), "%.*s", (int)(colon - hp), hp);
	port = parse_number(colon + 1, 0, 65535, "port");
	memset(a, 0, sizeof(*a));
	if (host[0] == '[' && host[strlen(host) - 1] == ']') {
		host[strlen(host) - 1] = 0;
		a->in6.sin6_family = AF_INET6;
		a->in6.sin6_port = htons((uint16_t)port);
		if (inet_pton(AF_INET6, host + 1, &a->in6.sin6_addr) != 1)
			usage_error("%s: not a numeric IPv6 address", spec);
		*alen = sizeof(a->in6);
	} else {
		a->in.sin_family = AF_INET;
		a->in.sin_port = htons((uint16_t)port);
		if (strcmp(host, "*") && *host &&
		    inet_pton(AF_INET, host, &a->in.sin_addr) != 1)
			usage_error("%s: not a numeric IPv4 address (write IPv6 as [::1])",
				    spec);
		*alen = sizeof(a->in);
	}
	return udp ? SOCK_DGRAM : SOCK_STREAM;
}

/* The default name of a socket that a spec made or found: tcp-PORT,
 * udp-PORT or unix; NULL when out of memory. */
static char *socket_name(int fd)
{
	union inet_addr a;
	socklen_t alen = sizeof(a);
	int type = 0;
	socklen_t l = sizeof(type);
	char *name;

	getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &l);
	if (getsockname(fd, &a.sa, &alen) < 0 || a.sa.sa_family == AF_UNIX)
		return strdup("unix");
	if (asprintf(&name, "%s-%u", type == SOCK_DGRAM ? "udp" : "tcp",
		     ntohs(a.sa.sa_family == AF_INET6 ? a.in6.sin6_port : a.in.sin_port)) < 0)
		return NULL;
	return name;
}

/* tcp:HOST:PORT, tcp:[V6]:PORT, udp:..., unix:PATH: a fresh socket,
 * non-blocking with --nonblock. */
static int make_socket(const struct sender *s, const char *spec, char **name)
{
	int type, fd, one = 1;
	union inet_addr a;
	socklen_t alen;

	if (spec_kind(spec) == SPEC_UNIX) {
		struct chan c;
		struct owned *own;   /* removed on failure, the service's after */

		resolve_chan(&c, spec_address(spec), 0);
		if (c.inherited >= 0)
			usage_error("%s: not a path or @name", spec);
		*name = strdup("unix");
		fd = listen_chan(&c, s->backlog, s->sockmode, FOR_SERVICE, &own);
		if (s->nonblock && fcntl(fd, F_SETFL, O_NONBLOCK) < 0)
			err(ST_SYSTEM, "%s", spec);
		return fd;
	}
	type = parse_inet(spec, &a, &alen);
	fd = socket(a.sa.sa_family, type | SOCK_CLOEXEC | (s->nonblock ? SOCK_NONBLOCK : 0), 0);
	if (fd < 0)
		err(ST_SYSTEM, "%s: socket", spec);
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, &a.sa, alen) < 0) {
		if (errno == EADDRINUSE)
			errx(ST_SYSTEM, "%s: address already in use", spec);
		err(ST_SYSTEM, "%s: bind", spec);
	}
	if (type == SOCK_STREAM && listen(fd, s->backlog) < 0)
		err(ST_SYSTEM, "%s: listen", spec);
	*name = socket_name(fd);
	return fd;
}

/* The process of --pid, looked up once: a pidfd, which also tells whether
 * it exited (its pid may then name another process), and its /proc
 * directory, through which descriptors are reopened. */
struct pinned {
	pid_t pid;
	int pidfd, procfd;
};

/* PID:INODE: the pidfd must be the one of that very process. Checked on
 * the pidfd that pins it, so what is taken next comes from the process
 * checked, or the run fails (unpin_process). */
static void check_pidfd_inode(const struct pinned *v, unsigned long ino)
{
	struct statfs fs;
	struct stat st;

	if (fstatfs(v->pidfd, &fs) < 0 || fstat(v->pidfd, &st) < 0)
		err(ST_SYSTEM, "pid %d: pidfd", (int)v->pid);
	/* before pidfs, every pidfd shares one anonymous inode */
	if (fs.f_type != PIDFS_MAGIC)
		errx(ST_SYSTEM, "pid %d: --pid PID:INODE needs pidfs (Linux 6.9 or later)",
		     (int)v->pid);
	if ((unsigned long)st.st_ino != ino)
		errx(ST_USAGE, "pid %d: pidfd inode %lu is not %lu (the pid was reused?)",
		     (int)v->pid, (unsigned long)st.st_ino, ino);
}

static void pin_process(struct pinned *v, pid_t pid, unsigned long ino)
{
	char path[32];

	v->pid = pid;
	v->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);   /* close-on-exec */
	if (v->pidfd < 0)
		errx(errno == ESRCH ? ST_USAGE : ST_SYSTEM, "pid %d: %s", (int)pid,
		     errno == ESRCH ? "no such process" : strerror(errno));
	if (ino)
		check_pidfd_inode(v, ino);
	snprintf(path, sizeof(path), "/proc/%d", (int)pid);
	v->procfd = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (v->procfd < 0)
		err(ST_SYSTEM, "%s", path);
}

/* 1 when the process has exited, or does within ms: a dying process
 * closes its descriptors a moment before its pidfd says it exited. */
static int has_exited(const struct pinned *v, int ms)
{
	struct pollfd p = { .fd = v->pidfd, .events = POLLIN };

	return poll(&p, 1, ms) != 0;
}

/* What was taken came from the pinned process only if it had not exited
 * by the time the last descriptor was taken. */
static void unpin_process(struct pinned *v)
{
	if (has_exited(v, 0))
		errx(ST_SYSTEM, "pid %d: exited before all its descriptors were taken",
		     (int)v->pid);
	close(v->pidfd);
	close(v->procfd);
}

static int dup_from_pid(const struct pinned *v, int num)
{
	int fd = (int)syscall(SYS_pidfd_getfd, v->pidfd, num, 0);

	if (fd >= 0)
		return fd;   /* pidfd_getfd makes it close-on-exec */
	if (errno == EPERM)
		errx(ST_SYSTEM, "pid %d: not permitted to take its descriptors (this needs ptrace access to it: the same user with kernel.yama.ptrace_scope allowing it, or CAP_SYS_PTRACE)",
		     (int)v->pid);
	if (errno == ESRCH || has_exited(v, 100))
		errx(ST_SYSTEM, "pid %d: exited before all its descriptors were taken",
		     (int)v->pid);
	errx(errno == EBADF ? ST_USAGE : ST_SYSTEM, "pid %d: fd %d: %s",
	     (int)v->pid, num, errno == EBADF ? "not open" : strerror(errno));
}

/* 1 when the socket fd is bound to the address of spec, a listening
 * socket (a bound datagram socket for udp:); what it is goes to what. */
static int socket_matches(int fd, const char *spec, char *what, size_t size)
{
	union inet_addr want, got;
	socklen_t wlen, glen = sizeof(got);
	int type = 0, acc = 0, is_unix = spec_kind(spec) == SPEC_UNIX, match;
	socklen_t l = sizeof(int);
	char addr[sizeof(got) + 8];
	size_t n;

	getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &l);
	l = sizeof(int);
	getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &acc, &l);
	memset(&got, 0, sizeof(got));
	if (getsockname(fd, &got.sa, &glen) < 0)
		glen = 0;
	n = format_addr(&got.ss, glen, addr, sizeof(addr) - 1);
	addr[n] = 0;
	snprintf(what, size, "%s %s%s", type == SOCK_DGRAM ? "dgram" : "stream",
		 n ? addr : "(unbound)", acc ? " listening" : "");
	if (is_unix) {   /* the spec in its SOCKET form: NAME, PATH, @NAME */
		struct chan c;

		resolve_chan(&c, spec_address(spec), 0);
		return got.sa.sa_family == AF_UNIX && acc && !strcmp(addr, c.label);
	}
	match = parse_inet(spec, &want, &wlen) == type && got.sa.sa_family == want.sa.sa_family;
	if (match && want.sa.sa_family == AF_INET)
		match = got.in.sin_port == want.in.sin_port &&
			got.in.sin_addr.s_addr == want.in.sin_addr.s_addr;
	else if (match)
		match = got.in6.sin6_port == want.in6.sin6_port &&
			!memcmp(&got.in6.sin6_addr, &want.in6.sin6_addr, 16);
	return match && (type == SOCK_DGRAM || acc);
}

/* --pid with an address: the one socket of the pinned process bound to
 * it, duplicated (pidfd_getfd), found among all its descriptors; copies
 * of one socket at several numbers count once. */
static int take_by_address(const struct pinned *v, const char *spec)
{
	char link[64], what[160], list[2048] = "";
	int dirfd = openat(v->procfd, "fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = dirfd >= 0 ? fdopendir(dirfd) : NULL;
	struct dirent *e;
	struct stat st;
	ino_t ino = 0;
	int found = -1, first = -1;
	size_t len = 0;

	if (!d)
		err(ST_SYSTEM, "pid %d: its descriptors", (int)v->pid);
	while ((e = readdir(d))) {
		ssize_t l = readlinkat(dirfd, e->d_name, link, sizeof(link) - 1);
		unsigned long num;
		int fd;

		if (l < 8 || memcmp(link, "socket:[", 8) ||
		    !parse_digits(e->d_name, INT_MAX, &num))
			continue;
		/* closed by the process since it was listed: not a candidate */
		if ((fd = (int)syscall(SYS_pidfd_getfd, v->pidfd, (int)num, 0)) < 0 &&
		    errno == EBADF)
			continue;
		if (fd < 0)
			fd = dup_from_pid(v, (int)num);   /* says why, and exits */
		if (socket_matches(fd, spec, what, sizeof(what)) &&
		    fstat(fd, &st) == 0 && (found < 0 || st.st_ino != ino)) {
			if (found >= 0)
				errx(ST_USAGE, "pid %d: fd %d and fd %lu are both bound to %s",
				     (int)v->pid, first, num, spec);
			found = fd;
			first = (int)num;
			ino = st.st_ino;
			continue;
		}
		close(fd);
		len += (size_t)snprintf(list + len, sizeof(list) - len, "%sfd %lu %s",
					len ? ", " : "", num, what);
		if (len >= sizeof(list))
			len = sizeof(list) - 1;
	}
	closedir(d);
	if (found < 0)
		errx(ST_USAGE, "pid %d: no %s socket bound to %s; it has: %s",
		     (int)v->pid, spec_kind(spec) == SPEC_UDP ? "datagram" : "listening",
		     spec_address(spec),
		     len ? list : "no sockets");
	return found;
}

/* The access mode and O_APPEND|O_NONBLOCK of descriptor num, from fdinfo. */
static int flags_of(const struct pinned *v, int num)
{
	char path[32], info[256];
	int fd, fl = O_RDONLY;
	FILE *f;

	snprintf(path, sizeof(path), "fdinfo/%d", num);
	fd = openat(v->procfd, path, O_RDONLY | O_CLOEXEC);
	if (fd >= 0 && (f = fdopen(fd, "r"))) {
		while (fgets(info, sizeof(info), f))
			if (sscanf(info, "flags: %o", (unsigned *)&fl) == 1)
				break;
		fclose(f);
	} else if (fd >= 0) {
		close(fd);
	}
	return fl & (O_ACCMODE | O_APPEND | O_NONBLOCK);
}

/* The file behind descriptor num, opened afresh with the original's
 * access mode, or acc (-m) unless it is -1: never blocking (a FIFO without
 * a peer would wait for one), then blocking again if it was. */
static int reopen_from_pid(const struct pinned *v, int num, int acc)
{
	char path[32], link[128] = "";
	int fd, e, fl = flags_of(v, num);
	struct stat st;

	if (acc >= 0)
		fl = (fl & ~O_ACCMODE) | acc;

	snprintf(path, sizeof(path), "fd/%d", num);
	/* sockets and anonymous inodes (eventfd, epoll, ...) have no file
	 * to open again, whatever open(2) would say first */
	if (readlinkat(v->procfd, path, link, sizeof(link) - 1) >= 0 &&
	    !strncmp(link, "socket:", 7))
		errx(ST_USAGE, "pid %d: fd %d is a socket, which cannot be reopened: use --dup",
		     (int)v->pid, num);
	if (!strncmp(link, "anon_inode:", 11))
		errx(ST_USAGE, "pid %d: fd %d (%s) cannot be reopened: use --dup",
		     (int)v->pid, num, link);
	fd = openat(v->procfd, path, fl | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
	if (fd >= 0) {
		if (!(fl & O_NONBLOCK) && fcntl(fd, F_SETFL, fl & O_APPEND) < 0)
			err(ST_SYSTEM, "pid %d: fd %d", (int)v->pid, num);
		return fd;
	}
	e = errno;
	if (has_exited(v, 100))   /* whatever failed, that is why */
		errx(ST_SYSTEM, "pid %d: exited before all its descriptors were taken",
		     (int)v->pid);
	if (e == ENXIO && fstatat(v->procfd, path, &st, 0) == 0 && S_ISFIFO(st.st_mode))
		errx(ST_USAGE, "pid %d: fd %d (%s) cannot be reopened for writing while no one reads it: use --dup",
		     (int)v->pid, num, link);
	if (e == ENXIO)
		errx(ST_USAGE, "pid %d: fd %d (%s) cannot be reopened: use --dup",
		     (int)v->pid, num, link);
	if (e == ENOENT)
		errx(ST_USAGE, "pid %d: fd %d: not open", (int)v->pid, num);
	/* the link was read, so ptrace access is not what failed: the file
	 * refuses that mode */
	if (acc >= 0 && *link)
		errx(ST_SYSTEM, "pid %d: fd %d (%s): cannot reopen it with --mode %s: %s",
		     (int)v->pid, num, link, access_word(acc), strerror(e));
	if (e == EACCES || e == EPERM)
		errx(ST_SYSTEM, "pid %d: fd %d: permission denied (reopening needs ptrace access to the process and permission on the file; --dup may work)",
		     (int)v->pid, num);
	errno = e;
	err(ST_SYSTEM, "pid %d: fd %d", (int)v->pid, num);
}

/* The first of the given descriptors that is not open, or -1: one poll(2)
 * sorts out all of them, however many there are; only what it calls
 * POLLNVAL is asked again, since it says that of O_PATH descriptors too. */
static int first_closed(const struct sender *s)
{
	struct pollfd pf[256];

	for (size_t at = 0; at < s->nsrc; at += 256) {
		size_t n = s->nsrc - at < 256 ? s->nsrc - at : 256;

		for (size_t i = 0; i < n; i++) {
			const struct source *e = &s->src[at + i];

			pf[i] = (struct pollfd){
				.fd = e->kind == SRC_FD && !s->pid ? e->fd : -1 };
		}
		/* poll refuses more entries than RLIMIT_NOFILE: ask each then */
		if (poll(pf, n, 0) < 0)
			for (size_t i = 0; i < n; i++)
				pf[i].revents = POLLNVAL;
		for (size_t i = 0; i < n; i++)
			if (closed_std(pf[i].fd) ||
			    ((pf[i].revents & POLLNVAL) && pf[i].fd >= 0 &&
			     fcntl(pf[i].fd, F_GETFD) < 0))
				return pf[i].fd;
	}
	return -1;
}

/* Turns every source into a descriptor, in order. */
static void gather(struct sender *s)
{
	int bad = first_closed(s);
	struct pinned v = { 0, -1, -1 };

	if (bad >= 0)
		errx(ST_USAGE, "fd %d: not open", bad);
	if (s->pid)
		pin_process(&v, s->pid, s->pidino);
	s->fds = malloc(s->nsrc * sizeof(int));
	if (!s->fds)
		err(ST_SYSTEM, "malloc");
	for (size_t i = 0; i < s->nsrc; i++) {
		struct source *e = &s->src[i];

		if (e->kind == SRC_SPEC && s->pid) {
			char *name;

			e->fd = take_by_address(&v, e->name);
			e->kind = SRC_MADE;
			e->name = (name = socket_name(e->fd)) ? name : "";
		} else if (e->kind == SRC_SPEC) {
			char *name = NULL;

			e->fd = make_socket(s, e->name, &name);
			e->name = name ? name : "";
		} else if (e->kind == SRC_FD && s->pid) {
			e->fd = s->dup ? dup_from_pid(&v, e->fd)
				       : reopen_from_pid(&v, e->fd, s->acc);
		}
		if (i < s->nnames && *s->names[i]) {
			if (e->kind != SRC_FD && *e->name)
				free((char *)e->name);
			e->name = s->names[i];
			e->kind = e->kind == SRC_FD ? SRC_FD : SRC_MADE_NAMED;
		}
		s->fds[i] = e->fd;
	}
	if (s->pid)
		unpin_process(&v);
}

/* ---- the handoff, one peer at a time or many at once ---- */

/* A handoff as the sender sees it; step() makes every transition:
 *   S_OFFER  sending the OFFER, the first descriptors riding on it -> S_FDS
 *   S_FDS    sending the other FDS frames -> S_HELD, or with --no-ack S_DONE
 *   S_HELD   awaiting HELD (the receiver's greeting, a GO, may come first)
 *            -> S_DONE
 * A REFUSED, a wrong answer, a failed send or the deadline ends it from
 * any state (step() returns -1 with why); so does a receiver that closes
 * without a word, which is a plain one (ST_UNACKED) unless it greeted. */
enum { S_OFFER, S_FDS, S_HELD, S_DONE };

struct peer {
	int fd;
	int state;
	size_t off;             /* bytes of the current frame sent */
	size_t done;            /* descriptors sent */
	short events;           /* what it waits for */
	int greeted;            /* a GO came: the receiver speaks the protocol */
	msec_t deadline;
	int status;             /* exit status that goes with why */
	int quiet;              /* gone before a word: a probe, not a failure */
	char why[4 * REASON_MAX + 200];
	char comm[20];          /* --verbose: its command name, read at connect */
	struct inbox ib;
};

struct offer_msg {
	unsigned char *buf;
	size_t len;             /* what the first sendmsg carries */
	size_t first;           /* descriptors riding on it */
};

static void fds_frame(unsigned char *b, size_t n)
{
	put_header(b, T_FDS, 4);
	put32(b + HDR_LEN, (uint32_t)n);
}

/* The OFFER frame: count, flags, names each NUL-terminated, then whether
 * HELD is awaited. The first FDS frame joins it, its descriptors riding
 * on the OFFER's first byte, so a plain receiver's single recvmsg gets
 * them; the others never wait for GO. With more frames to follow, only
 * when the kernel sends it in one piece: a version 1 receiver reading on
 * would take the next frame's descriptors before it knows the count. */
static void build_offer(const struct sender *s, struct offer_msg *m)
{
	size_t nlen = 0, off;

	for (size_t i = 0; i < s->nsrc; i++)
		nlen += strlen(s->src[i].name) + 1;
	m->len = HDR_LEN + 12 + nlen + 4;
	m->buf = malloc(m->len + FDS_FRAME);
	if (!m->buf)
		err(ST_SYSTEM, "malloc");
	put_header(m->buf, T_OFFER, (uint32_t)(12 + nlen + 4));
	put32(m->buf + HDR_LEN, (uint32_t)s->nsrc);
	put32(m->buf + HDR_LEN + 4, F_NOWAIT);
	put32(m->buf + HDR_LEN + 8, (uint32_t)nlen);
	off = HDR_LEN + 12;
	for (size_t i = 0; i < s->nsrc; i++) {
		size_t l = strlen(s->src[i].name) + 1;

		memcpy(m->buf + off, s->src[i].name, l);
		off += l;
	}
	put32(m->buf + off, !s->noack);
	m->first = 0;
	if (m->len + FDS_FRAME <= (s->nsrc <= FDS_PER_SEND ? CHUNK : ONE_PIECE)) {
		m->first = s->nsrc < FDS_PER_SEND ? s->nsrc : FDS_PER_SEND;
		fds_frame(m->buf + m->len, m->first);
		m->len += FDS_FRAME;
	}
}

static int peer_fail(struct peer *p, int status, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(p->why, sizeof(p->why), fmt, ap);
	va_end(ap);
	p->status = status;
	return -1;
}

/* The receiver closed without HELD or REFUSED: after greeting, it failed;
 * without, it is a plain receiver, which cannot acknowledge. */
static int closed_silently(struct peer *p, size_t nfds)
{
	/* a holder's neighbour checking whether the path is in use */
	p->quiet = !p->ib.msgs;
	if (p->greeted)
		return peer_fail(p, ST_HANDOFF, "receiver closed the connection without answering");
	if (p->done < nfds)
		return peer_fail(p, ST_HANDOFF, "receiver closed the connection after %zu of %zu descriptors (a plain receiver takes only the first message)",
				 p->done, nfds);
	return peer_fail(p, ST_UNACKED, "handed %zu descriptor%s to a receiver that cannot acknowledge (no greeting, no HELD): whether it took %s is unknown",
			 nfds, nfds == 1 ? "" : "s", nfds == 1 ? "it" : "them all");
}

/* Reads what the receiver said so far: 1 HELD of nfds came (S_HELD only),
 * 0 nothing more yet, -1 the handoff ended (p->why). */
static int read_answer(struct peer *p, size_t nfds)
{
	const unsigned char *pl = NULL;
	uint32_t len = 0;
	int type = 0, r;
	char text[4 * REASON_MAX + 1];

	while ((r = inbox_frame(&p->ib, &type, &pl, &len, DONT_WAIT)) == 1) {
		if (type == T_REFUSED)
			return peer_fail(p, ST_HANDOFF, "refused by receiver: %s",
					 reason_text(text, pl, len));
		if (type == T_GO && !p->greeted) {
			p->greeted = 1;
			continue;
		}
		if (type != T_HELD)
			return peer_fail(p, ST_HANDOFF, "bad answer from receiver: expected HELD, got %s",
					 frame_names[type]);
		if (len < 4)
			return peer_fail(p, ST_HANDOFF, "bad answer from receiver: a HELD of %u bytes (4 at least)",
					 len);
		if (get32(pl) != nfds || p->state != S_HELD)
			return peer_fail(p, ST_HANDOFF, "bad answer from receiver: expected HELD of %zu, got HELD of %u%s",
					 nfds, get32(pl), p->state == S_HELD
					 ? "" : " before all were sent");
		return 1;
	}
	if (r == WOULD_BLOCK)
		return 0;
	if (r == 0)
		return closed_silently(p, nfds);
	return peer_fail(p, ST_HANDOFF, "bad answer from receiver: %s", p->ib.why);
}

/* A send failed: the receiver may have said why before it hung up. */
static int send_failed(struct peer *p, size_t nfds)
{
	int e = errno;

	if (e == EPIPE || e == ECONNRESET)
		return read_answer(p, nfds) < 0 ? -1 : closed_silently(p, nfds);
	if (e == ETOOMANYREFS)
		return peer_fail(p, ST_SYSTEM, "too many descriptors in flight (ETOOMANYREFS: more than RLIMIT_NOFILE allows)");
	return peer_fail(p, ST_SYSTEM, "send: %s", strerror(e));
}

/* Moves a handoff on as far as it goes without blocking: 1 done, 0 waiting
 * for p->events, -1 failed (p->why, p->status). */
static int step(const struct sender *s, const struct offer_msg *m, struct peer *p)
{
	unsigned char fr[FDS_FRAME];
	ssize_t r;

	for (;;) {
		switch (p->state) {
		case S_OFFER:
			r = send_some(p->fd, m->buf + p->off, m->len - p->off,
				      s->fds, p->off ? 0 : m->first);
			if (r <= 0)
				break;
			if ((p->off += (size_t)r) < m->len)
				continue;
			p->off = 0;
			p->done = m->first;
			p->state = S_FDS;
			continue;
		case S_HELD:
			if ((r = read_answer(p, s->nsrc)) == 0)
				p->events = POLLIN;
			if (r > 0)
				p->state = S_DONE;
			return (int)r;
		case S_FDS: {
			size_t n = s->nsrc - p->done;

			if (!n) {
				p->state = s->noack ? S_DONE : S_HELD;
				if (s->noack)
					return 1;
				continue;
			}
			if (n > FDS_PER_SEND)
				n = FDS_PER_SEND;
			fds_frame(fr, n);
			r = send_some(p->fd, fr + p->off, sizeof(fr) - p->off,
				      s->fds + p->done, p->off ? 0 : n);
			if (r <= 0)
				break;
			if ((p->off += (size_t)r) == sizeof(fr)) {
				p->off = 0;
				p->done += n;
			}
			continue;
		}
		default:
			return 1;
		}
		/* a send that did not go */
		if (r < 0)
			return send_failed(p, s->nsrc);
		/* blocked: a receiver that refused may be waiting to say so */
		if (!s->noack && read_answer(p, s->nsrc) < 0)
			return -1;
		p->events = s->noack ? POLLOUT : POLLOUT | POLLIN;
		return 0;
	}
}

static void peer_init(struct peer *p, int fd, msec_t deadline)
{
	memset(p, 0, sizeof(*p));
	p->fd = fd;
	p->deadline = deadline;
	inbox_init(&p->ib, fd);
	p->ib.maxfds = 0;   /* an answer carries no descriptors */
	p->ib.maxframe = ANSWER_MAX;
}

static void peer_timed_out(struct peer *p)
{
	peer_fail(p, ST_TIMEOUT, p->events & POLLOUT
		  ? "receiver stopped reading (timed out)"
		  : "no answer from receiver (timed out)");
}

/* The command name of pid, fit to print; "?" once it is gone. */
static void command_name(pid_t pid, char *comm, size_t size)
{
	char path[32];
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/%d/comm", (int)pid);
	if ((n = read_small(path, comm, size, NULL)) > 0)
		comm[n - (comm[n - 1] == '\n')] = 0;
	else
		snprintf(comm, size, "?");
	for (char *c = comm; *c; c++)
		if (*c < ' ' || *c > '~')
			*c = '?';
}

/* A new receiver on fd: its handoff starts, or, when its uid may not
 * have the descriptors, it is refused (-1, p->why; *cr says who). */
static int admit_peer(const struct sender *s, struct peer *p, int fd,
		      msec_t deadline, struct ucred *cr)
{
	char why[100];
	int allowed;

	peer_init(p, fd, deadline);
	allowed = peer_allowed(fd, &s->allow, cr);
	if (s->verbose)   /* now: a receiver may be gone by the time it is told */
		command_name(cr->pid, p->comm, sizeof(p->comm));
	if (allowed)
		return 0;
	send_refusal(fd, not_allowed(cr, why, sizeof(why)));
	return peer_fail(p, ST_HANDOFF, "not allowed (see --allow-uid)");
}

/* One handoff on a connected socket; exits with a message on failure. */
static void hand_over(const struct sender *s, const struct offer_msg *m,
		      int conn, msec_t deadline)
{
	struct peer p;
	struct ucred cr;
	char why[100];
	int r, phase = -1;

	if (admit_peer(s, &p, conn, deadline, &cr) < 0) {
		close(conn);
		errx(ST_HANDOFF, "%s: refused the receiver: %s", s->chan.label,
		     not_allowed(&cr, why, sizeof(why)));
	}
	while ((r = step(s, m, &p)) == 0) {
		/* each bound is a total from the start of its phase, however
		 * slowly the receiver reads or answers: a receiver gives each
		 * sender PEER_TIMEOUT_MS in turn, so its greeting may wait
		 * behind one that stalls; after it, PEER_TIMEOUT_MS */
		int after_go = p.greeted;

		if (after_go != phase) {
			phase = after_go;
			p.deadline = earlier(deadline, now_ms() + (after_go
					     ? PEER_TIMEOUT_MS : 2 * PEER_TIMEOUT_MS));
		}
		if (wait_fd(conn, p.events, p.deadline) <= 0) {
			peer_timed_out(&p);
			r = -1;
			break;
		}
	}
	if (r < 0) {
		inbox_free(&p.ib);
		close(conn);
		errx(p.status, "%s: %s", s->chan.label, p.why);
	}
	inbox_free(&p.ib);
}

/* --verbose: one line for a handoff or a refusal, when and to whom. */
static void log_peer(const struct sender *s, const struct peer *p,
		     const struct ucred *cr)
{
	char when[32];
	struct timespec now;
	struct tm tm;

	clock_gettime(CLOCK_REALTIME, &now);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", localtime_r(&now.tv_sec, &tm));
	if (p->status)
		say_now("%s: %s.%03ld receiver pid %d uid %u (%s): refused: %s",
			s->chan.label, when, now.tv_nsec / 1000000, (int)cr->pid,
			(unsigned)cr->uid, p->comm, p->why);
	else
		say_now("%s: %s.%03ld receiver pid %d uid %u (%s): handed %zu descriptor%s",
			s->chan.label, when, now.tv_nsec / 1000000, (int)cr->pid,
			(unsigned)cr->uid, p->comm, s->nsrc, s->nsrc == 1 ? "" : "s");
}

/* A receiver is done with: told in the log (--verbose), or, failed, in a
 * warning; then forgotten. */
static void drop_peer(const struct sender *s, struct peer *p,
		      struct warn_limit *wl)
{
	struct ucred cr = { 0, (uid_t)-1, (gid_t)-1 };
	socklen_t cl = sizeof(cr);

	if ((p->status || s->verbose) && !p->quiet)
		getsockopt(p->fd, SOL_SOCKET, SO_PEERCRED, &cr, &cl);
	if (s->verbose && !p->quiet)
		log_peer(s, p, &cr);
	else if (p->status && !p->quiet)
		warn_peer(wl, s->chan.label, "receivers", "%s: receiver uid %u pid %d: %s",
			  s->chan.label, (unsigned)cr.uid, (int)cr.pid, p->why);
	inbox_free(&p->ib);
	close(p->fd);
}

#define MAX_PEERS 512

/* The receivers a holder serves at once, and what it knows of them. */
struct holder {
	struct peer peers[MAX_PEERS];
	size_t np;
	unsigned long served;   /* handoffs completed */
	struct warn_limit wl;
};

/* Moves every receiver on whose descriptor poll found ready, or whose
 * time is up; those that are done leave the table. */
static void step_peers(const struct sender *s, const struct offer_msg *m,
		       struct holder *h, const struct pollfd *pf, int polled)
{
	msec_t now = now_ms();
	size_t k = 0;

	for (size_t i = 0; i < h->np; i++) {
		struct peer *p = &h->peers[i];
		int st = 0;

		if (polled > 0 && pf[i].revents)
			st = step(s, m, p);
		else if (now >= p->deadline) {
			peer_timed_out(p);
			st = -1;
		}
		if (st == 0) {
			h->peers[k++] = *p;
			continue;
		}
		h->served += st > 0;
		drop_peer(s, p, &h->wl);
	}
	h->np = k;
}

/* A newcomer on the listening socket: admitted and started, or refused. */
static void accept_peer(const struct sender *s, const struct offer_msg *m,
			struct holder *h, int lfd, msec_t per_peer)
{
	int c = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK), r;
	struct peer *p = &h->peers[h->np];
	struct ucred cr;

	if (c < 0) {
		if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
			warn_peer(&h->wl, s->chan.label, "receivers", "%s: accept: %s",
				  s->chan.label, strerror(errno));
		return;
	}
	r = admit_peer(s, p, c, now_ms() + per_peer, &cr);
	if (r == 0)
		r = step(s, m, p);
	if (r == 0) {
		h->np++;
		return;
	}
	h->served += r > 0;
	drop_peer(s, p, &h->wl);
}

/* How long ppoll may sleep: until the first receiver's deadline, or the
 * end of the warnings' second; NULL for ever. */
static struct timespec *poll_timeout(const struct holder *h, struct timespec *ts)
{
	msec_t next = warnings_due(&h->wl), left;

	for (size_t i = 0; i < h->np; i++)
		next = earlier(next, h->peers[i].deadline);
	if (next == NO_DEADLINE)
		return NULL;
	left = next - now_ms();
	if (left < 0)
		left = 0;
	ts->tv_sec = left / 1000;
	ts->tv_nsec = left % 1000 * 1000000;
	return ts;
}

/* --serve: every receiver that connects gets copies of the descriptors;
 * handoffs go on side by side, each bounded by the per-peer timeout. */
static void serve(const struct sender *s, const struct offer_msg *m)
{
	static struct holder h;
	struct pollfd pf[MAX_PEERS + 1];
	msec_t per_peer = s->timeout == NO_DEADLINE ? PEER_TIMEOUT_MS : s->timeout;
	sigset_t stop, none;
	struct owned *own;
	int lfd, r;

	sigemptyset(&stop);
	for (int i = 0; i < 3; i++)
		sigaddset(&stop, stop_sigs[i]);
	sigprocmask(SIG_BLOCK, &stop, &none);
	catch_signals(0);
	lfd = listen_chan(&s->chan, s->backlog, s->sockmode, FOR_HANDOFF, &own);
	while (!stop_signal && (!s->count || h.served < s->count)) {
		struct timespec ts;
		size_t np = h.np;

		for (size_t i = 0; i < np; i++)
			pf[i] = (struct pollfd){ .fd = h.peers[i].fd, .events = h.peers[i].events };
		/* at the limit, newcomers wait in the backlog */
		pf[np] = (struct pollfd){ .fd = np < MAX_PEERS ? lfd : -1, .events = POLLIN };
		r = ppoll(pf, np + 1, poll_timeout(&h, &ts), &none);
		if (r < 0 && errno != EINTR)
			err(ST_SYSTEM, "poll");
		step_peers(s, m, &h, pf, r);
		if (r > 0 && (pf[np].revents & POLLIN))
			accept_peer(s, m, &h, lfd, per_peer);
		flush_warnings(&h.wl, s->chan.label, "receivers", 0);
	}
	for (size_t i = 0; i < h.np; i++) {
		peer_fail(&h.peers[i], ST_HANDOFF, "the holder stopped");
		drop_peer(s, &h.peers[i], &h.wl);
	}
	/* only the holder's own socket goes, while it still listens (a
	 * successor waits for that): unix: listeners may live on in the
	 * service */
	remove_file(own);
	close(lfd);
	disown_all();
	flush_warnings(&h.wl, s->chan.label, "receivers", 1);
}

static void free_sender(struct sender *s, struct offer_msg *m)
{
	/* what fdsend opened itself, as opposed to what it was given */
	for (size_t i = 0; i < s->nsrc; i++) {
		if (s->src[i].kind != SRC_FD || s->pid)
			close(s->src[i].fd);
		if ((s->src[i].kind == SRC_SPEC || s->src[i].kind == SRC_MADE) &&
		    *s->src[i].name)
			free((char *)s->src[i].name);
	}
	for (size_t i = 0; i < s->nnames; i++)
		free(s->names[i]);
	free(s->names);
	free(s->src);
	free(s->fds);
	free(s->allow.uids);
	free(m->buf);
}

int main(int argc, char **argv)
{
	struct sender s;
	struct offer_msg m;
	msec_t deadline;
	int conn;

	start_up(remove_owned_files);
	parse_args(&s, argc, argv);
	for (size_t i = 0; i < s.nsrc; i++)
		if (s.src[i].kind == SRC_SPEC && spec_kind(s.src[i].name) == SPEC_UNIX)
			catch_signals(1);   /* unix: files not yet handed over go */
	gather(&s);
	build_offer(&s, &m);
	if (s.serve) {
		serve(&s, &m);
		free_sender(&s, &m);
		return ST_OK;
	}
	deadline = deadline_after(s.timeout);
	conn = s.chan.inherited >= 0 ? s.chan.inherited
				     : connect_chan(&s.chan, deadline, "receiver");
	hand_over(&s, &m, conn, deadline);
	close(conn);
	/* the receiver has the unix: listeners now; their files stay */
	disown_all();
	free_sender(&s, &m);
	return ST_OK;
}
