/* SPDX-License-Identifier: MIT */
/* fdrecv: wait for descriptors on an AF_UNIX socket, then exec a command with
 * them in place (the systemd socket-activation way), or describe them. */
#include <dirent.h>
#include <getopt.h>
#include "common.h"

static const char usage_text[] =
	"Usage: fdrecv [-a] [-c] [-n N] [-f N[,N...]] [-i] [-o] [-e] [-t SECONDS]\n"
	"              [--allow-uid UID[,UID...]] [--mode MODE] [--json]\n"
	"              SOCKET [-- | --run] [COMMAND [ARG...]]\n"
	"\n"
	"Wait on SOCKET for one handoff of descriptors, place them at 3, 4, 5, ...\n"
	"with LISTEN_FDS, LISTEN_PID and LISTEN_FDNAMES set, and run COMMAND.\n"
	"Without COMMAND, describe what arrived.\n"
	"\n"
	"  -a, --abstract         SOCKET is an abstract socket name\n"
	"  -c, --connect          connect to a holder (fdsend --serve) on SOCKET\n"
	"                         instead of listening there\n"
	"  -n, --count N          accept only a handoff of exactly N descriptors\n"
	"  -f, --fd N[,N...]      place the descriptors at these numbers instead\n"
	"  -i, --stdin            place the descriptor at 0 (same as -f 0)\n"
	"  -o, --stdout           place the descriptor at 1 (same as -f 1)\n"
	"  -e, --stderr           place the descriptor at 2 (same as -f 2)\n"
	"  -t, --timeout SECONDS  give up when no sender came in time (default: wait)\n"
	"      --allow-uid UID[,UID...]\n"
	"                         also accept peers of these users (default: only\n"
	"                         the same user and root)\n"
	"      --mode MODE        socket file mode (default 0600)\n"
	"      --json             describe the descriptors as JSON\n"
	"  -h, --help             show this help and exit\n"
	"  -V, --version          show the version and exit\n"
	"\n"
	"SOCKET: PATH (with a '/'), @ABSTRACT, fd:N (an inherited connected socket),\n"
	"or NAME (in $XDG_RUNTIME_DIR/fdsend). See fdrecv(1).\n";

struct receiver {
	struct chan chan;
	int *targets;          /* where the descriptors go; NULL: 3, 4, 5, ... */
	size_t ntargets;
	size_t count;          /* 0: any */
	int json;
	int connect;           /* --connect: to a holder, instead of listening */
	struct allow allow;
	mode_t mode;
	char **cmd;
	char *path;            /* where cmd[0] was found */
	msec_t timeout;
};

struct handoff {
	int *fds;
	size_t n;
	int plain;             /* from a sender that knows no protocol */
	char *names;           /* n NUL-terminated names, "" when unnamed */
};

/* ---- command line ---- */

/* -f N[,N...]: the words of argv may be cut in place */
static void add_targets(struct receiver *r, char *arg)
{
	for (char *tok = arg, *comma; tok; tok = comma ? comma + 1 : NULL) {
		int fd;

		if ((comma = strchr(tok, ',')))
			*comma = 0;
		fd = (int)parse_number(tok, 0, (unsigned long)MAX_FDS - 1,
				       "descriptor number");
		for (size_t i = 0; i < r->ntargets; i++)
			if (r->targets[i] == fd)
				usage_error("descriptor %d is a target twice", fd);
		r->targets = realloc(r->targets, (r->ntargets + 1) * sizeof(int));
		if (!r->targets)
			err(ST_SYSTEM, "realloc");
		r->targets[r->ntargets++] = fd;
	}
}

/* Where COMMAND is, found once: what was checked is what runs, so a typo
 * is told before any descriptor is taken, and the search cannot differ
 * from the exec's. Without PATH, the system's default (confstr(3)). */
static char *find_command(const char *cmd)
{
	char buf[PATH_MAX], dflt[256];
	const char *path = getenv("PATH");
	struct stat st;
	int seen = 0;

	if (strchr(cmd, '/')) {
		if (stat(cmd, &st) < 0 || access(cmd, X_OK) < 0)
			err(errno == ENOENT ? ST_NOT_FOUND : ST_CANNOT_RUN, "%s", cmd);
		if (!S_ISREG(st.st_mode))
			errx(ST_CANNOT_RUN, "%s: not a regular file", cmd);
		return strdup(cmd);
	}
	if (!path && confstr(_CS_PATH, dflt, sizeof(dflt)) - 1 < sizeof(dflt) - 1)
		path = dflt;
	while (path && *path) {
		size_t l = strcspn(path, ":");

		/* an empty entry means the current directory */
		snprintf(buf, sizeof(buf), "%.*s/%s", l ? (int)l : 1,
			 l ? path : ".", cmd);
		if (stat(buf, &st) == 0 && S_ISREG(st.st_mode)) {
			if (access(buf, X_OK) == 0)
				return strdup(buf);
			seen = 1;
		}
		path += l + (path[l] == ':');
	}
	if (seen)
		errx(ST_CANNOT_RUN, "%s: permission denied", cmd);
	errx(ST_NOT_FOUND, "%s: command not found", cmd);
}

static void parse_args(struct receiver *r, int argc, char **argv)
{
	enum { OPT_JSON = 256, OPT_ALLOW, OPT_MODE };
	static const struct option opts[] = {
		{ "abstract", no_argument, NULL, 'a' },
		{ "connect", no_argument, NULL, 'c' },
		{ "count", required_argument, NULL, 'n' },
		{ "fd", required_argument, NULL, 'f' },
		{ "stdin", no_argument, NULL, 'i' },
		{ "stdout", no_argument, NULL, 'o' },
		{ "stderr", no_argument, NULL, 'e' },
		{ "timeout", required_argument, NULL, 't' },
		{ "json", no_argument, NULL, OPT_JSON },
		{ "allow-uid", required_argument, NULL, OPT_ALLOW },
		{ "mode", required_argument, NULL, OPT_MODE },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ 0 }
	};
	int abstract = 0, c, run = 0;

	memset(r, 0, sizeof(*r));
	r->timeout = NO_DEADLINE;
	r->mode = 0600;
	while ((c = getopt_long(argc, argv, "+acn:f:ioet:hV", opts, NULL)) != -1) {
		switch (c) {
		case 'a': abstract = 1; break;
		case 'c': r->connect = 1; break;
		case 'n':
			r->count = parse_number(optarg, 1, MAX_FDS, "count");
			break;
		case 'f': add_targets(r, optarg); break;
		case 'i': add_targets(r, (char[]){ "0" }); break;
		case 'o': add_targets(r, (char[]){ "1" }); break;
		case 'e': add_targets(r, (char[]){ "2" }); break;
		case 't': r->timeout = parse_timeout(optarg); break;
		case OPT_JSON: r->json = 1; break;
		case OPT_ALLOW: parse_allow(&r->allow, optarg); break;
		case OPT_MODE: r->mode = parse_mode(optarg); break;
		case 'h': fputs(usage_text, stdout); exit(ST_OK);
		case 'V': fputs("fdrecv " VERSION "\n", stdout); exit(ST_OK);
		default:
			fprintf(stderr, "Try 'fdrecv --help' for more information.\n");
			exit(ST_USAGE);
		}
	}
	if (optind >= argc)
		usage_error("missing SOCKET");
	if (optind + 1 < argc && (!strcmp(argv[optind + 1], "--") ||
				  !strcmp(argv[optind + 1], "--run")))
		run = 1;
	if (optind + 1 + run < argc)
		r->cmd = argv + optind + 1 + run;
	else if (run)
		usage_error("%s needs a COMMAND", argv[optind + 1]);
	if (r->ntargets && r->count && r->count != r->ntargets)
		usage_error("--count %zu contradicts %zu target descriptors",
			    r->count, r->ntargets);
	if (r->ntargets)
		r->count = r->ntargets;
	if (r->json && r->cmd)
		usage_error("--json describes descriptors; it takes no COMMAND");
	/* a mistyped command must not swallow anybody's descriptors */
	if (r->cmd && !(r->path = find_command(r->cmd[0])))
		err(ST_SYSTEM, "malloc");
	resolve_chan(&r->chan, argv[optind], abstract);
}

/* ---- receiving ---- */

static size_t open_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	size_t n = 0;

	if (!d)
		return 64;   /* no /proc: a guess on the safe side */
	while (readdir(d))
		n++;
	closedir(d);
	return n > 3 ? n - 3 : 0;   /* ".", ".." and the directory's own fd */
}

static int max_target(const struct receiver *r, size_t n)
{
	int m = (int)n + 2;

	if (r->targets) {
		m = 0;
		for (size_t i = 0; i < r->ntargets; i++)
			if (r->targets[i] > m)
				m = r->targets[i];
	}
	return m;
}

/* Makes room for n more descriptors, raising the soft limit if needed. */
static const char *room_for(const struct receiver *r, size_t n, char *why,
			    size_t size)
{
	struct rlimit rl;
	rlim_t top = (rlim_t)max_target(r, n) + 2, need;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return NULL;
	/* far from the limit, counting what is open is not worth its cost */
	if (rl.rlim_cur >= top + n + 256)
		return NULL;
	need = (rlim_t)open_fds() + n + 2;
	if (top > need)
		need = top;
	if (rl.rlim_cur >= need)
		return NULL;
	if (need <= rl.rlim_max) {
		rl.rlim_cur = need;
		if (setrlimit(RLIMIT_NOFILE, &rl) == 0)
			return NULL;
	}
	snprintf(why, size, "cannot hold %zu descriptors (RLIMIT_NOFILE is %llu)",
		 n, (unsigned long long)rl.rlim_max);
	return why;
}

/* The length of LISTEN_FDNAMES=...: one string of the environment, which
 * the kernel takes up to 128 KiB (MAX_ARG_STRLEN); 0 when all are unnamed. */
static size_t names_env_len(const char *names, size_t n)
{
	size_t len = sizeof("LISTEN_FDNAMES=");
	int named = 0;

	for (size_t i = 0; i < n; i++) {
		size_t l = strlen(names);

		named |= l > 0;
		len += (l ? l : strlen("unknown")) + 1;
		names += l + 1;
	}
	return named ? len : 0;
}

/* Checks an offer against what this receiver accepts; NULL when fine. */
static const char *check_offer(const struct receiver *r, const char *names,
			       size_t n, char *why, size_t size)
{
	if (r->count && n != r->count) {
		snprintf(why, size, "expected %zu descriptor%s, offered %zu",
			 r->count, r->count == 1 ? "" : "s", n);
		return why;
	}
	if (r->cmd && !r->targets && names_env_len(names, n) > 128 * 1024) {
		snprintf(why, size, "names too long for LISTEN_FDNAMES (128 KiB at most)");
		return why;
	}
	return room_for(r, n, why, size);
}

static int refuse(struct inbox *ib, const char *why)
{
	if (why != ib->why)
		snprintf(ib->why, sizeof(ib->why), "%s", why);
	send_refusal(ib->fd, why);
	return -1;
}

/* A sender that knows no protocol: its first message's descriptors. */
static int take_plain(const struct receiver *r, struct inbox *ib,
		      struct handoff *h)
{
	char why[128];

	h->names = calloc(ib->nfds, 1);   /* all unnamed */
	if (!h->names)
		return inbox_fail(ib, "out of memory");
	if (check_offer(r, h->names, ib->nfds, why, sizeof(why)))
		return inbox_fail(ib, "%s", why);
	h->n = ib->nfds;
	h->plain = 1;
	h->fds = ib->fds;
	ib->fds = NULL;
	ib->nfds = 0;
	return 0;
}

/* Receives one whole handoff on conn into h; -1 with ib->why on failure
 * (empty when the peer left without a word, as probes do). */
static int recv_handoff(const struct receiver *r, struct inbox *ib,
			struct handoff *h, msec_t deadline)
{
	const unsigned char *p;
	uint32_t len, got = 0;
	int type, fr;
	struct offer o;
	const char *bad;
	char why[128];

	for (;;) {
		fr = inbox_fill(ib, deadline);
		if (fr < 0)
			return refuse(ib, ib->why);
		if (fr == 0)   /* silent only if it said nothing: a probe */
			return ib->len ? refuse(ib, "connection closed in the middle of a frame")
				       : -1;
		if (ib->firstfds && (ib->len < HDR_LEN || memcmp(ib->buf, MAGIC, 4)))
			return take_plain(r, ib, h);
		if (ib->len >= HDR_LEN)
			break;
	}
	fr = inbox_frame(ib, &type, &p, &len, deadline);
	if (fr <= 0)
		return fr < 0 ? refuse(ib, ib->why) : -1;
	if (type == T_REFUSED) {
		char text[101];

		return inbox_fail(ib, "refused by sender: %s",
				  peer_text(text, sizeof(text), p, len));
	}
	if (type != T_OFFER)
		return refuse(ib, "expected an offer");
	if ((bad = parse_offer(p, len, &o)))
		return refuse(ib, bad);
	h->n = o.count;
	h->names = malloc(len);
	if (h->names) {
		/* names are stored back to back, each NUL-terminated */
		size_t off = 0;

		for (uint32_t i = 0; i < o.count; i++) {
			size_t l = strlen(o.names[i]) + 1;

			memcpy(h->names + off, o.names[i], l);
			off += l;
		}
	}
	free(o.names);
	if (!h->names)
		return refuse(ib, "out of memory");
	if ((bad = check_offer(r, h->names, o.count, why, sizeof(why))))
		return refuse(ib, bad);
	if (!(o.flags & F_NOACK)) {
		if (ib->nfds)
			return refuse(ib, "descriptors sent before the go-ahead");
		if (send_frame(ib->fd, T_GO, NULL, 0, deadline) < 0)
			return inbox_fail(ib, "cannot answer: %s", strerror(errno));
	}
	if (inbox_expect(ib, o.count) < 0)
		return refuse(ib, ib->why);
	while (got < o.count) {
		fr = inbox_frame(ib, &type, &p, &len, deadline);
		if (fr == 0)
			return inbox_fail(ib, "sender closed the connection after %zu of %u descriptors",
					  ib->nfds, o.count);
		if (fr < 0)
			return refuse(ib, ib->why);
		if (type != T_FDS || len < 4 || get32(p) < 1 ||
		    get32(p) > FDS_PER_MSG || get32(p) > o.count - got)
			return refuse(ib, "bad descriptor frame");
		got += get32(p);
	}
	if (ib->nfds != o.count)
		return refuse(ib, "descriptor count does not match the frames");
	h->fds = ib->fds;
	ib->fds = NULL;
	ib->nfds = 0;
	return 0;
}

/* Accepts senders until one hands over; a bad one is told and skipped. */
static int accept_handoff(const struct receiver *r, int lfd, struct handoff *h,
			  msec_t deadline)
{
	struct warn_limit wl = { 0, 0, 0 };

	for (;;) {
		struct inbox ib;
		struct ucred cr;
		char why[100];
		int conn, w = wait_fd(lfd, POLLIN, earlier(deadline, warnings_due(&wl)));

		flush_warnings(&wl, r->chan.label, "senders", 0);
		if (w == 0 && now_ms() < deadline)
			continue;
		if (w == 0) {
			close(lfd);
			errx(ST_TIMEOUT, "%s: timed out waiting for a sender",
			     r->chan.label);
		}
		if (w < 0 || (conn = accept4(lfd, NULL, NULL,
					     SOCK_CLOEXEC | SOCK_NONBLOCK)) < 0) {
			if (errno == EINTR || errno == EAGAIN ||
			    errno == ECONNABORTED)
				continue;
			err(ST_SYSTEM, "%s: accept", r->chan.label);
		}
		inbox_init(&ib, conn);
		if (!peer_allowed(conn, &r->allow, &cr)) {
			refuse(&ib, not_allowed(&cr, why, sizeof(why)));
			snprintf(ib.why, sizeof(ib.why), "not allowed (see --allow-uid)");
		}
		else if (recv_handoff(r, &ib, h, earlier(deadline, now_ms() + PEER_TIMEOUT_MS)) == 0) {
			inbox_free(&ib);
			flush_warnings(&wl, r->chan.label, "senders", 1);
			return conn;
		}
		/* a peer that left without a word was only probing */
		if (ib.why[0])
			warn_peer(&wl, r->chan.label, "senders", "%s: sender uid %u pid %d: %s",
				  r->chan.label, (unsigned)cr.uid, (int)cr.pid, ib.why);
		inbox_free(&ib);
		free(h->names);
		h->names = NULL;
		close(conn);
	}
}

/* ---- placing ---- */

/* Moves fds[i] to targets[i] for all i without clobbering one another: a
 * descriptor is placed once its target is free, and a cycle is broken by
 * moving one member aside. *own (the connection) is moved off the targets. */
static void place_fds(int *fds, const int *targets, size_t n, int *own)
{
	int hi = *own, top = 0;
	int *at, *wants, *stack;
	size_t sp = 0, placed = 0;

	for (size_t i = 0; i < n; i++) {
		if (fds[i] > hi) hi = fds[i];
		if (targets[i] > hi) hi = targets[i];
		if (targets[i] > top) top = targets[i];
	}
	at = calloc((size_t)hi + 2, sizeof(int));      /* fd -> 1 + index sitting there */
	wants = calloc((size_t)hi + 2, sizeof(int));   /* fd -> 1 + index aiming there */
	stack = malloc((n + 1) * sizeof(int));
	if (!at || !wants || !stack)
		err(ST_SYSTEM, "placing descriptors");
	for (size_t i = 0; i < n; i++) {
		at[fds[i]] = (int)i + 1;
		wants[targets[i]] = (int)i + 1;
	}
	if (wants[*own]) {
		int moved = fcntl(*own, F_DUPFD_CLOEXEC, top + 1);

		if (moved < 0)
			err(ST_SYSTEM, "moving the connection aside");
		close(*own);
		*own = moved;
	}
	for (size_t i = 0; i < n; i++)
		if (!at[targets[i]] || at[targets[i]] == (int)i + 1)
			stack[sp++] = (int)i;
	while (placed < n) {
		int i, from, to;

		if (!sp) {
			/* only cycles are left: every target is taken, so the
			 * lowest free descriptor is no one's target */
			for (i = 0; fds[i] == targets[i] || fds[i] > hi ||
				    at[fds[i]] != i + 1; i++)
				;
			from = fds[i];
			if ((fds[i] = fcntl(from, F_DUPFD_CLOEXEC, 0)) < 0)
				err(ST_SYSTEM, "placing descriptors");
			close(from);
			at[from] = 0;
			if (fds[i] <= hi)
				at[fds[i]] = i + 1;
			if (wants[from])
				stack[sp++] = wants[from] - 1;
			continue;
		}
		i = stack[--sp];
		from = fds[i];
		to = targets[i];
		if (from == to) {
			/* dup2 clears FD_CLOEXEC; fd == target needs it cleared by hand */
			if (fcntl(to, F_SETFD, 0) < 0)
				err(ST_SYSTEM, "fd %d", to);
		} else {
			if (dup2(from, to) < 0)
				err(ST_SYSTEM, "fd %d", to);
			/* a target: the dup2 onto it will close it anyway */
			if (from > hi || !wants[from])
				close(from);
			if (from <= hi) {
				at[from] = 0;
				if (wants[from])
					stack[sp++] = wants[from] - 1;
			}
		}
		at[to] = i + 1;
		fds[i] = to;
		placed++;
	}
	free(at);
	free(wants);
	free(stack);
}

static void set_listen_env(const struct handoff *h)
{
	char num[32];
	size_t len = 0;
	char *names, *p;
	const char *s = h->names;

	for (size_t i = 0; i < h->n; i++) {
		size_t l = strlen(s);

		len += (l ? l : 7) + 1;
		s += l + 1;
	}
	names = p = malloc(len + 1);
	if (!names)
		err(ST_SYSTEM, "malloc");
	*p = 0;
	s = h->names;
	for (size_t i = 0; i < h->n; i++) {
		size_t l = strlen(s);

		if (i)
			*p++ = ':';
		memcpy(p, l ? s : "unknown", l ? l : 7);
		p += l ? l : 7;
		s += l + 1;
	}
	*p = 0;
	put_uint(num, h->n);
	setenv("LISTEN_FDS", num, 1);
	put_uint(num, (unsigned long)getpid());   /* exec keeps the pid */
	setenv("LISTEN_PID", num, 1);
	/* too long for the kernel only when all are unnamed (offers with names
	 * were checked): without it, sd_listen_fds_with_names(3) says "unknown" */
	if (len + sizeof("LISTEN_FDNAMES=") > 128 * 1024)
		unsetenv("LISTEN_FDNAMES");
	else
		setenv("LISTEN_FDNAMES", names, 1);
	free(names);
}

static void describe_all(const struct receiver *r, const struct handoff *h)
{
	const char *s = h->names;

	if (r->json)
		fputs("[\n", stdout);
	for (size_t i = 0; i < h->n; i++) {
		static struct fdinfo d;   /* tens of KiB: not for the stack */

		describe(h->fds[i], s, &d);
		print_fdinfo(stdout, r->targets ? r->targets[i] : (int)i + 3, &d,
			     r->json);
		if (r->json)
			fputs(i + 1 < h->n ? ",\n" : "\n", stdout);
		s += strlen(s) + 1;
	}
	if (r->json)
		fputs("]\n", stdout);
	if (fflush(stdout) == EOF || ferror(stdout))
		err(ST_SYSTEM, "stdout");
}

static void release(struct receiver *r, struct handoff *h, int *targets)
{
	if (targets != r->targets)
		free(targets);
	free(r->targets);
	free(r->allow.uids);
	free(r->path);
	free(h->fds);
	free(h->names);
}

/* COMMAND gets the descriptor limit fdrecv was started with (a refused
 * offer may have raised it since), raised only as far as its descriptors
 * need: room above the highest for what COMMAND opens next. */
#define NOFILE_ROOM 64
static void restore_nofile(const struct rlimit *start, int top)
{
	struct rlimit rl = *start;
	rlim_t need = (rlim_t)top + 1 + NOFILE_ROOM;

	if (rl.rlim_cur < need)
		rl.rlim_cur = need < rl.rlim_max ? need : rl.rlim_max;
	setrlimit(RLIMIT_NOFILE, &rl);
}

/* Runs COMMAND where it was found, as execvp(3) would: a file the kernel
 * cannot run is handed to the shell. Returns only on failure. */
static int run_command(const struct receiver *r)
{
	size_t n = 0;
	char **argv;

	execv(r->path, r->cmd);
	if (errno == ENOEXEC) {
		while (r->cmd[n])
			n++;
		argv = calloc(n + 2, sizeof(*argv));
		if (argv) {
			argv[0] = (char *)"sh";
			argv[1] = r->path;
			memcpy(argv + 2, r->cmd + 1, n * sizeof(*argv));
			execv("/bin/sh", argv);
			free(argv);
		}
	}
	warn("%s", r->cmd[0]);
	return errno == ENOENT ? ST_NOT_FOUND : ST_CANNOT_RUN;
}

/* fd:N, or --connect: one peer on one connection. */
static int recv_from_peer(struct receiver *r, struct handoff *h)
{
	msec_t deadline = deadline_after(r->timeout);
	struct inbox ib;
	struct ucred cr;
	char why[100];
	int conn = r->chan.inherited;

	if (r->connect && conn < 0) {
		conn = connect_chan(&r->chan, deadline, "holder");
		deadline = earlier(deadline, now_ms() + PEER_TIMEOUT_MS);
	}
	inbox_init(&ib, conn);
	if (!peer_allowed(conn, &r->allow, &cr)) {
		refuse(&ib, not_allowed(&cr, why, sizeof(why)));
		close(conn);
		errx(ST_HANDOFF, "%s: refused the sender: %s", r->chan.label, why);
	}
	if (recv_handoff(r, &ib, h, deadline) < 0) {
		inbox_free(&ib);
		close(conn);
		errx(!strcmp(ib.why, "timed out") ? ST_TIMEOUT : ST_HANDOFF,
		     "%s: %s", r->chan.label,
		     ib.why[0] ? ib.why : "sender closed the connection");
	}
	inbox_free(&ib);
	return conn;
}

/* Listening on SOCKET: the first sender that hands over. */
static int recv_by_listening(struct receiver *r, struct handoff *h)
{
	struct owned *own;
	int lfd, conn;

	catch_signals(1);
	lfd = listen_chan(&r->chan, SOMAXCONN, r->mode, FOR_HANDOFF, &own);
	conn = accept_handoff(r, lfd, h, deadline_after(r->timeout));
	close(lfd);
	remove_file(own);
	return conn;
}

int main(int argc, char **argv)
{
	struct receiver r;
	struct handoff h = { 0 };
	struct rlimit nofile;
	unsigned char held[4];
	int conn, status, *targets;

	start_up(remove_owned_files);
	if (getrlimit(RLIMIT_NOFILE, &nofile) < 0)
		err(ST_SYSTEM, "getrlimit");
	parse_args(&r, argc, argv);
	if (r.chan.inherited >= 0 || r.connect)
		conn = recv_from_peer(&r, &h);
	else
		conn = recv_by_listening(&r, &h);
	targets = r.targets;
	if (!targets) {
		targets = malloc(h.n * sizeof(int));
		if (!targets)
			err(ST_SYSTEM, "malloc");
		for (size_t i = 0; i < h.n; i++)
			targets[i] = (int)i + 3;
	}
	if (r.cmd)
		place_fds(h.fds, targets, h.n, &conn);
	put32(held, (uint32_t)h.n);
	if (!h.plain)   /* a plain sender reads nothing */
		send_frame(conn, T_HELD, held, 4, now_ms() + PEER_TIMEOUT_MS);
	close(conn);
	/* fd:0 was the connection: COMMAND still starts with 0, 1, 2 open */
	if (conn < 3 && open("/dev/null", O_RDWR) != conn)
		err(ST_SYSTEM, "/dev/null");
	if (!r.cmd) {
		describe_all(&r, &h);
		close_all(h.fds, h.n);
		release(&r, &h, targets);
		return ST_OK;
	}
	if (r.targets) {
		unsetenv("LISTEN_FDS");
		unsetenv("LISTEN_PID");
		unsetenv("LISTEN_FDNAMES");
	} else {
		set_listen_env(&h);
	}
	restore_nofile(&nofile, max_target(&r, h.n));
	restore_signals();
	status = run_command(&r);
	release(&r, &h, targets);
	return status;
}
