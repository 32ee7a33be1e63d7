/* SPDX-License-Identifier: MIT */
/* fdrecv: wait for descriptors on an AF_UNIX socket, then exec a command with
 * them in place (the systemd socket-activation way), or describe them. */
#include <dirent.h>
#include <getopt.h>
#include <sys/inotify.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include "common.h"

static const char usage_text[] =
	"Usage: fdrecv [-c] [-t SECONDS] [--allow-uid UID[,UID...]]\n"
	"              [--socket-mode MODE] [--json] [--export STYLE]\n"
	"              [--set-nonblock | --clear-nonblock]\n"
	"              [--ready HOW [--replace PIDFILE] [--ready-timeout SECONDS]\n"
	"              [--stop-signal SIG] [--stop-timeout SECONDS]]\n"
	"              [-a] [-n N] [-f N[,N...]] [-i] [-o] [-e] SOCKET\n"
	"              [[-a] [-n N] [-f N[,N...]] [-i] [-o] [-e] SOCKET ...]\n"
	"              [-- | --run | -r] [COMMAND [ARG...]]\n"
	"\n"
	"Wait on SOCKET for one handoff of descriptors, place them at 3, 4, 5, ...\n"
	"with LISTEN_FDS, LISTEN_PID and LISTEN_FDNAMES set, and run COMMAND.\n"
	"Without COMMAND, describe what arrived. Each further SOCKET, after the\n"
	"options of its own, brings one more handoff (util-linux's groups).\n"
	"\n"
	"  -a, --abstract         the SOCKET after it is an abstract socket name\n"
	"  -c, --connect          connect to a holder (fdsend --serve) on SOCKET\n"
	"                         instead of listening there\n"
	"  -n, --count N          accept only a handoff of exactly N descriptors\n"
	"  -f, --fd N[,N...]      place the descriptors at these numbers instead\n"
	"  -i, --stdin            place the descriptor at 0 (same as -f 0)\n"
	"  -o, --stdout           place the descriptor at 1 (same as -f 1)\n"
	"  -e, --stderr           place the descriptor at 2 (same as -f 2)\n"
	"  -r, --run              COMMAND follows (as --)\n"
	"  -t, --timeout SECONDS  give up when no sender came in time (default: wait)\n"
	"      --allow-uid UID[,UID...]\n"
	"                         also accept peers of these users (default: only\n"
	"                         the same user and root)\n"
	"      --socket-mode MODE socket file mode (default 0600)\n"
	"      --json             describe the descriptors as JSON\n"	"      --export STYLE     how COMMAND learns of them: systemd (LISTEN_FDS),\n"
	"                         nginx (NGINX), einhorn (EINHORN_FD_*) or none\n"
	"      --set-nonblock, --clear-nonblock\n"
	"                         set or clear O_NONBLOCK on what arrived\n"	"      --ready HOW        run COMMAND as a child, return once it is ready:\n"
	"                         notify, pidfile:PATH or exec; else roll back\n"
	"      --replace PIDFILE  then stop the old instance PIDFILE names, and\n"
	"                         write the new one's pid there\n"
	"      --ready-timeout SECONDS  time to become ready (default 60)\n"
	"      --stop-signal SIG  signal that stops an instance (default TERM)\n"
	"      --stop-timeout SECONDS  then SIGKILL after this long (default: do\n"
	"                         not wait for the old instance)\n"
	"  -h, --help             show this help and exit\n"
	"  -V, --version          show the version and exit\n"
	"\n"
	"SOCKET: PATH (with a '/'), @ABSTRACT, fd:N (an inherited connected socket),\n"
	"or NAME (in $XDG_RUNTIME_DIR/fdsend). See fdrecv(1).\n";

/* Signal names for --stop-signal and for messages, by number (the
 * numbers of Linux on every architecture this builds for). */
static const char signames[][7] = {
	[SIGHUP] = "HUP", [SIGINT] = "INT", [SIGQUIT] = "QUIT",
	[SIGILL] = "ILL", [SIGTRAP] = "TRAP", [SIGABRT] = "ABRT",
	[SIGBUS] = "BUS", [SIGFPE] = "FPE", [SIGKILL] = "KILL",
	[SIGUSR1] = "USR1", [SIGSEGV] = "SEGV", [SIGUSR2] = "USR2",
	[SIGPIPE] = "PIPE", [SIGALRM] = "ALRM", [SIGTERM] = "TERM",
	[SIGCHLD] = "CHLD", [SIGCONT] = "CONT", [SIGSTOP] = "STOP",
	[SIGTSTP] = "TSTP", [SIGTTIN] = "TTIN", [SIGTTOU] = "TTOU",
	[SIGURG] = "URG", [SIGXCPU] = "XCPU", [SIGXFSZ] = "XFSZ",
	[SIGVTALRM] = "VTALRM", [SIGPROF] = "PROF", [SIGWINCH] = "WINCH",
	[SIGIO] = "IO", [SIGPWR] = "PWR", [SIGSYS] = "SYS",
};
#define NSIGNAMES (int)(sizeof(signames) / sizeof(signames[0]))

static const char *signame(int sig, char *buf, size_t size)
{
	if (sig > 0 && sig < NSIGNAMES && signames[sig][0])
		snprintf(buf, size, "SIG%s", signames[sig]);
	else
		snprintf(buf, size, "signal %d", sig);
	return buf;
}

/* One SOCKET and the handoff expected there; with several, util-linux's
 * groups: "-f 4 S4 -f 5 S5". */
struct group {
	struct chan chan;
	const char *word;      /* SOCKET as given */
	int abstract;          /* -a */
	size_t count;          /* -n, or its targets; 0: any */
	size_t ntargets;       /* its share of receiver.targets */
	int lfd;               /* listening, or -1 */
	struct owned *own;     /* its socket file */
};

struct receiver {
	struct group *groups;
	size_t ngroups;
	int *targets;          /* where the descriptors go, group after group;
				* NULL: 3, 4, 5, ... */
	size_t ntargets;
	int json;
	int connect;           /* --connect: to a holder, instead of listening */
	struct allow allow;
	mode_t mode;
	char **cmd;
	char *path;            /* where cmd[0] was found */
	msec_t timeout;
	/* --ready, --replace: COMMAND runs as a watched child */
	int ready;             /* READY_*; READY_NONE: exec in place */
	const char *ready_file;        /* --ready pidfile:PATH */
	const char *replace;   /* PIDFILE of the old instance */
	msec_t ready_timeout;
	int stop_sig;
	msec_t stop_timeout;   /* NO_DEADLINE: do not wait for the old one */
	int export;            /* EXPORT_*: how COMMAND learns of them */
	int nonblock;          /* 1 set, 0 clear, -1 leave O_NONBLOCK alone */
};

/* --export: the convention by which COMMAND learns of its descriptors */
enum { EXPORT_DEFAULT, EXPORT_SYSTEMD, EXPORT_NGINX, EXPORT_EINHORN,
       EXPORT_NONE };

enum { READY_NONE, READY_EXEC, READY_NOTIFY, READY_PIDFILE };
#define READY_TIMEOUT_MS 60000    /* --ready-timeout's default */
#define ROLLBACK_STOP_MS 10000    /* a failed instance's time to stop */

struct handoff {
	int *fds;
	size_t n;
	int plain;             /* from a sender that knows no protocol */
	int waits;             /* the sender reads HELD */
	char *names;           /* n NUL-terminated names, "" when unnamed */
};

/* ---- command line ---- */

/* -f N[,N...] for group g: the words of argv may be cut in place */
static void add_targets(struct receiver *r, struct group *g, char *arg)
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
		g->ntargets++;
	}
}

/* Whether options of group g (-a, -n, -f, -i, -o, -e) were given. */
static int has_options(const struct group *g)
{
	return g->abstract || g->count || g->ntargets;
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

/* --ready HOW */
static void parse_ready(struct receiver *r, const char *how)
{
	if (!strcmp(how, "exec"))
		r->ready = READY_EXEC;
	else if (!strcmp(how, "notify"))
		r->ready = READY_NOTIFY;
	else if (!strncmp(how, "pidfile:", 8) && how[8])
		r->ready = READY_PIDFILE;
	else
		usage_error("invalid --ready: '%s' (expected notify, pidfile:PATH or exec)",
			    how);
	r->ready_file = how + 8;
}

/* --stop-signal: TERM, SIGTERM or 15. */
static int parse_signal(const char *s)
{
	const char *name = strncmp(s, "SIG", 3) ? s : s + 3;
	unsigned long n;

	for (int i = 1; i < NSIGNAMES; i++)
		if (signames[i][0] && !strcmp(name, signames[i]))
			return i;
	if (parse_digits(s, (unsigned long)SIGRTMAX, &n) && n > 0)
		return (int)n;
	usage_error("invalid signal: '%s' (expected a name such as TERM, or a number)",
		    s);
}

/* --export STYLE */
static int parse_export(const char *s)
{
	static const char *const styles[] = { "systemd", "nginx", "einhorn", "none" };

	for (int i = 0; i < 4; i++)
		if (!strcmp(s, styles[i]))
			return EXPORT_SYSTEMD + i;
	usage_error("invalid --export: '%s' (expected systemd, nginx, einhorn or none)",
		    s);
}

/* What goes with --export, --set-nonblock and --clear-nonblock. */
static void check_export(struct receiver *r)
{
	if (r->export && !r->cmd)
		usage_error("--export needs a COMMAND");
	if (r->export == EXPORT_SYSTEMD && r->targets)
		usage_error("--export systemd places the descriptors at 3, 4, ...; it takes no -f, -i, -o or -e");
	if (!r->export)
		r->export = r->targets ? EXPORT_NONE : EXPORT_SYSTEMD;
	/* nginx assumes inherited listeners are non-blocking */
	if (r->export == EXPORT_NGINX && r->nonblock == 0)
		usage_error("--export nginx sets O_NONBLOCK; it takes no --clear-nonblock");
	if (r->export == EXPORT_NGINX)
		r->nonblock = 1;
}

/* What goes with --ready and --replace, and their defaults. */
static void check_supervision(struct receiver *r)
{
	if (r->replace && !r->ready)
		usage_error("--replace needs --ready HOW (notify, pidfile:PATH or exec)");
	if (!r->ready && (r->ready_timeout >= 0 || r->stop_timeout >= 0 ||
			  r->stop_sig))
		usage_error("--ready-timeout, --stop-signal and --stop-timeout go with --ready");
	if (r->ready && !r->cmd)
		usage_error("--ready and --replace need a COMMAND");
	if (r->ready_timeout == 0)
		usage_error("--ready-timeout must be above 0");
	if (r->ready_timeout < 0)
		r->ready_timeout = READY_TIMEOUT_MS;
	if (r->stop_timeout < 0)
		r->stop_timeout = NO_DEADLINE;
	if (!r->stop_sig)
		r->stop_sig = SIGTERM;
}

enum { OPT_JSON = 256, OPT_ALLOW, OPT_SOCKET_MODE, OPT_READY, OPT_REPLACE,
       OPT_READY_TIMEOUT, OPT_STOP_SIGNAL, OPT_STOP_TIMEOUT, OPT_EXPORT,
       OPT_SET_NONBLOCK, OPT_CLEAR_NONBLOCK };

static const struct option long_opts[] = {
	{ "abstract", no_argument, NULL, 'a' },
	{ "connect", no_argument, NULL, 'c' },
	{ "count", required_argument, NULL, 'n' },
	{ "fd", required_argument, NULL, 'f' },
	{ "stdin", no_argument, NULL, 'i' },
	{ "stdout", no_argument, NULL, 'o' },
	{ "stderr", no_argument, NULL, 'e' },
	{ "timeout", required_argument, NULL, 't' },
	{ "run", no_argument, NULL, 'r' },
	{ "json", no_argument, NULL, OPT_JSON },
	{ "allow-uid", required_argument, NULL, OPT_ALLOW },
	{ "socket-mode", required_argument, NULL, OPT_SOCKET_MODE },
	{ "ready", required_argument, NULL, OPT_READY },
	{ "replace", required_argument, NULL, OPT_REPLACE },
	{ "ready-timeout", required_argument, NULL, OPT_READY_TIMEOUT },
	{ "stop-signal", required_argument, NULL, OPT_STOP_SIGNAL },
	{ "stop-timeout", required_argument, NULL, OPT_STOP_TIMEOUT },
	{ "export", required_argument, NULL, OPT_EXPORT },
	{ "set-nonblock", no_argument, NULL, OPT_SET_NONBLOCK },
	{ "clear-nonblock", no_argument, NULL, OPT_CLEAR_NONBLOCK },
	{ "help", no_argument, NULL, 'h' },
	{ "version", no_argument, NULL, 'V' },
	{ 0 }
};

/* Reads options until a word that is not one, "--" or --run; 1 when it
 * was --run (COMMAND follows). -a, -n, -f, -i, -o and -e go to group g. */
static int take_options(struct receiver *r, struct group *g, int argc,
			char **argv)
{
	int c;

	while ((c = getopt_long(argc, argv, "+acn:f:ioet:rhV", long_opts, NULL)) != -1) {
		switch (c) {
		case 'a': g->abstract = 1; break;
		case 'c': r->connect = 1; break;
		case 'n':
			g->count = parse_number(optarg, 1, MAX_FDS, "count");
			break;
		case 'f': add_targets(r, g, optarg); break;
		case 'i': add_targets(r, g, (char[]){ "0" }); break;
		case 'o': add_targets(r, g, (char[]){ "1" }); break;
		case 'e': add_targets(r, g, (char[]){ "2" }); break;
		case 't': r->timeout = parse_timeout(optarg); break;
		case 'r': return 1;
		case OPT_JSON: r->json = 1; break;
		case OPT_ALLOW: parse_allow(&r->allow, optarg); break;
		case OPT_SOCKET_MODE: r->mode = parse_mode(optarg); break;
		case OPT_READY: parse_ready(r, optarg); break;
		case OPT_REPLACE: r->replace = optarg; break;
		case OPT_READY_TIMEOUT:
			r->ready_timeout = parse_timeout(optarg);
			break;
		case OPT_STOP_SIGNAL: r->stop_sig = parse_signal(optarg); break;
		case OPT_STOP_TIMEOUT:
			r->stop_timeout = parse_timeout(optarg);
			break;
		case OPT_EXPORT: r->export = parse_export(optarg); break;
		case OPT_SET_NONBLOCK: r->nonblock = 1; break;
		case OPT_CLEAR_NONBLOCK: r->nonblock = 0; break;
		case 'h': fputs(usage_text, stdout); exit(ST_OK);
		case 'V': fputs("fdrecv " VERSION "\n", stdout); exit(ST_OK);
		default:
			fprintf(stderr, "Try 'fdrecv --help' for more information.\n");
			exit(ST_USAGE);
		}
	}
	return 0;
}

/* A SOCKET and the group options before it join the groups. */
static void add_group(struct receiver *r, struct group *g, const char *word)
{
	if (!(r->ngroups & (r->ngroups - 1))) {   /* 0, 1, 2, 4, ...: grow */
		r->groups = realloc(r->groups, (r->ngroups ? 2 * r->ngroups : 1) *
					       sizeof(*r->groups));
		if (!r->groups)
			err(ST_SYSTEM, "realloc");
	}
	g->word = word;
	r->groups[r->ngroups++] = *g;
	memset(g, 0, sizeof(*g));
}

/* Each group's count, and its SOCKET resolved. */
static void check_groups(struct receiver *r)
{
	for (size_t i = 0; i < r->ngroups; i++) {
		struct group *g = &r->groups[i];

		if (g->ntargets && g->count && g->count != g->ntargets)
			usage_error("--count %zu contradicts %zu target descriptors",
				    g->count, g->ntargets);
		if (g->ntargets)
			g->count = g->ntargets;
		if (r->ngroups > 1 && !g->ntargets)
			usage_error("%s: with several SOCKETs, each needs -f, -i, -o or -e before it",
				    g->word);
		g->lfd = -1;
		resolve_chan(&g->chan, g->word, g->abstract);
		for (size_t k = 0; k < i; k++)
			if (g->chan.salen == r->groups[k].chan.salen &&
			    !memcmp(&g->chan.sa, &r->groups[k].chan.sa, g->chan.salen) &&
			    g->chan.inherited == r->groups[k].chan.inherited)
				usage_error("%s: a SOCKET of two groups", g->chan.label);
	}
}

/* Options come before SOCKET, or after it up to "--", --run or the first
 * word that is not an option, where COMMAND starts; but when SOCKET came
 * after options of its own (-a, -n, -f, -i, -o, -e), a word after more of
 * them is one more SOCKET, theirs: util-linux's "-f 4 S4 -f 5 S5". */
static void parse_args(struct receiver *r, int argc, char **argv)
{
	struct group g = { 0 };
	int run;

	memset(r, 0, sizeof(*r));
	r->timeout = NO_DEADLINE;
	r->mode = 0600;
	r->ready_timeout = -1;
	r->stop_timeout = -1;
	r->nonblock = -1;
	run = take_options(r, &g, argc, argv);
	if (run || optind >= argc)
		usage_error("missing SOCKET");
	do {
		add_group(r, &g, argv[optind++]);
		run = take_options(r, &g, argc, argv) ||
		      !strcmp(argv[optind - 1], "--");
	} while (!run && optind < argc && has_options(&g) &&
		 has_options(&r->groups[0]));
	if (has_options(&g) && has_options(&r->groups[0]))
		usage_error("the options after %s need a SOCKET of their own",
			    r->groups[r->ngroups - 1].word);
	if (has_options(&g)) {   /* "fdrecv S -f 4 -- cmd": they are S's */
		r->groups[0].abstract |= g.abstract;
		r->groups[0].ntargets += g.ntargets;
		if (g.count)
			r->groups[0].count = g.count;
	}
	if (optind < argc)
		r->cmd = argv + optind;
	else if (run)
		usage_error("%s needs a COMMAND", argv[optind - 1]);
	if (r->json && r->cmd)
		usage_error("--json describes descriptors; it takes no COMMAND");
	check_supervision(r);
	check_export(r);
	/* a mistyped command must not swallow anybody's descriptors */
	if (r->cmd && !(r->path = find_command(r->cmd[0])))
		err(ST_SYSTEM, "malloc");
	check_groups(r);
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

/* The names of n descriptors (stored back to back, each NUL-terminated,
 * "" when unnamed) as LISTEN_FDNAMES has them: joined by ':', UNNAMED for
 * each one without a name. Its length when out is NULL; *named says
 * whether any has a name. */
static size_t join_names(const char *names, size_t n, char *out, int *named)
{
	size_t len = 0;

	*named = 0;
	for (size_t i = 0; i < n; i++) {
		size_t l = strlen(names);
		const char *s = l ? names : UNNAMED;

		*named |= l > 0;
		if (out) {
			if (i)
				out[len] = ':';
			memcpy(out + len + !!i, s, strlen(s) + 1);
		}
		len += !!i + strlen(s);
		names += l + 1;
	}
	return len;
}

/* Checks an offer against what this receiver accepts (want: the count
 * of the group, 0 for any); NULL when fine. */
static const char *check_offer(const struct receiver *r, size_t want,
			       const char *names, size_t n, char *why, size_t size)
{
	int named;

	if (want && n != want) {
		snprintf(why, size, "expected %zu descriptor%s, offered %zu",
			 want, want == 1 ? "" : "s", n);
		return why;
	}
	if (r->cmd && r->export == EXPORT_SYSTEMD &&
	    sizeof("LISTEN_FDNAMES=") + join_names(names, n, NULL, &named) > MAX_ARG_STRLEN &&
	    named) {
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
static int take_plain(const struct receiver *r, size_t want, struct inbox *ib,
		      struct handoff *h)
{
	char why[128];

	h->names = calloc(ib->nfds, 1);   /* all unnamed */
	if (!h->names)
		return inbox_fail(ib, "out of memory");
	if (check_offer(r, want, h->names, ib->nfds, why, sizeof(why)))
		return inbox_fail(ib, "%s", why);
	h->n = ib->nfds;
	h->plain = 1;
	h->fds = ib->fds;
	ib->fds = NULL;
	ib->nfds = 0;
	return 0;
}

/* When the first read failed (a receiver short of descriptors gets its
 * control data truncated): the OFFER that came with it, if refused on
 * its own, says why better. */
static const char *offer_refused(const struct receiver *r, size_t want,
				 struct inbox *ib)
{
	const unsigned char *p;
	uint32_t len;
	int type;
	struct offer o;
	char why[sizeof(ib->why)];
	int timed_out = ib->timed_out;

	/* the rest of the OFFER follows without descriptors: read it briefly */
	memcpy(why, ib->why, sizeof(why));
	if (ib->len >= HDR_LEN && !check_header(ib->buf) && ib->buf[5] == T_OFFER &&
	    inbox_frame(ib, &type, &p, &len, now_ms() + 100) == 1 &&
	    !parse_offer(p, len, &o)) {
		free(o.names);
		if (check_offer(r, want, (const char *)p + 12, o.count, ib->why,
				sizeof(ib->why)))
			return ib->why;
	}
	memcpy(ib->why, why, sizeof(why));
	ib->timed_out = timed_out;
	return ib->why;
}

/* The first bytes tell a sender that knows the protocol from one that
 * does not: 1 when a plain sender's descriptors were taken into h, 0
 * when a frame header is there to read, -1 on failure (ib->why; empty
 * when the peer left without a word, as probes do). */
static int sniff(const struct receiver *r, size_t want, struct inbox *ib,
		 struct handoff *h, msec_t deadline)
{
	for (;;) {
		int fr;

		ib->limit = ib->exact ? HDR_LEN - ib->len : 0;
		if ((fr = inbox_fill(ib, deadline)) < 0)
			return refuse(ib, offer_refused(r, want, ib));
		if (fr == 0)   /* silent only if it said nothing: a probe */
			return ib->len ? refuse(ib, "connection closed in the middle of a frame")
				       : -1;
		if (ib->firstfds && (ib->len < HDR_LEN || memcmp(ib->buf, MAGIC, 4)))
			return take_plain(r, want, ib, h) < 0 ? -1 : 1;
		if (ib->len >= HDR_LEN)
			return 0;
	}
}

/* Reads and checks the OFFER, keeping its names in h (the greeting went
 * before it). 0, or -1 with ib->why. */
static int read_offer(const struct receiver *r, size_t want, struct inbox *ib,
		      struct handoff *h, msec_t deadline)
{
	const unsigned char *p;
	uint32_t len;
	int type, fr = inbox_frame(ib, &type, &p, &len, deadline);
	struct offer o;
	const char *bad;
	char why[128], text[4 * REASON_MAX + 1];

	if (fr <= 0)
		return fr < 0 ? refuse(ib, ib->why) : -1;
	if (type == T_REFUSED)
		return inbox_fail(ib, "refused by sender: %s",
				  reason_text(text, p, len));
	if (type != T_OFFER)
		return refuse(ib, "expected an offer");
	if ((bad = parse_offer(p, len, &o)))
		return refuse(ib, bad);
	free(o.names);
	/* the OFFER holds the names back to back, each NUL-terminated */
	h->n = o.count;
	h->waits = o.waits;
	if (!(h->names = malloc(get32(p + 8))))
		return refuse(ib, "out of memory");
	memcpy(h->names, p + 12, get32(p + 8));
	if ((bad = check_offer(r, want, h->names, o.count, why, sizeof(why))))
		return refuse(ib, bad);
	/* whatever the flags, the greeting was its go-ahead */
	return inbox_expect(ib, o.count) < 0 ? refuse(ib, ib->why) : 0;
}

/* The FDS frames and their descriptors, h->n in all, into h. Each frame
 * is checked as it arrives: its descriptors come with its first byte (the
 * first frame's may come with the OFFER's), so once it is read the count
 * so far must match. */
static int collect_fds(struct inbox *ib, struct handoff *h, msec_t deadline)
{
	const unsigned char *p;
	uint32_t len, got = 0, n, k = 0;
	int type, fr;
	char text[4 * REASON_MAX + 1];

	if (ib->exact)   /* a record is read whole */
		ib->exact = FDS_FRAME;
	while (got < h->n) {
		fr = inbox_frame(ib, &type, &p, &len, deadline);
		if (fr == 0)
			return inbox_fail(ib, "sender closed the connection after %zu of %zu descriptors",
					  ib->nfds, h->n);
		if (fr < 0)
			return refuse(ib, ib->why);
		if (type == T_REFUSED)
			return inbox_fail(ib, "refused by sender: %s",
					  reason_text(text, p, len));
		k++;
		if (type != T_FDS)
			return refuse(ib, type == T_OFFER ? "a second OFFER"
				      : "expected an FDS frame");
		if (len < 4)
			return refuse(ib, "bad FDS frame length (4 bytes at least)");
		if ((n = get32(p)) < 1 || n > FDS_PER_MSG || n > h->n - got) {
			snprintf(text, sizeof(text), "FDS frame %u: %u descriptors (1 to %u expected)",
				 k, n, (unsigned)(h->n - got < FDS_PER_MSG ? h->n - got : FDS_PER_MSG));
			return refuse(ib, text);
		}
		got += n;
		if (ib->nfds != got) {
			snprintf(text, sizeof(text), "FDS frame %u: n=%u, but %zu descriptors came with it",
				 k, n, ib->nfds - (got - n));
			return refuse(ib, text);
		}
	}
	h->fds = ib->fds;
	ib->fds = NULL;
	ib->nfds = 0;
	return 0;
}

/* Receives one whole handoff into h; -1 with ib->why on failure (empty
 * when the peer left without a word, as probes do). */
static int recv_handoff(const struct receiver *r, size_t want,
			struct inbox *ib, struct handoff *h, msec_t deadline)
{
	int plain;
	char why[128];

	/* on a stream, reads stop at the end of each frame, never in the next:
	 * that tells which frame descriptors came with */
	if (is_stream(ib->fd))
		ib->exact = HDR_LEN;
	/* the first batch rides on the OFFER, before its count is known:
	 * room for it now, or the kernel truncates it (best effort: the
	 * OFFER, once read, says whether the rest fits) */
	room_for(r, want ? want : FDS_PER_MSG, why, sizeof(why));
	if ((plain = sniff(r, want, ib, h, deadline)))
		return plain > 0 ? 0 : -1;
	if (read_offer(r, want, ib, h, deadline) < 0)
		return -1;
	return collect_fds(ib, h, deadline);
}

/* The handoff is complete: HELD (a plain sender reads nothing), and the
 * connection closed, /dev/null in its place if it was 0, 1 or 2, so that
 * COMMAND still starts with them open. A sender that awaited HELD but is
 * gone has given up (a timeout, exit 4): what it sent is closed, and -1. */
static int finish_handoff(int conn, struct handoff *h)
{
	unsigned char held[4];
	int gone;

	put32(held, (uint32_t)h->n);
	gone = !h->plain && send_frame(conn, T_HELD, held, 4,
				       now_ms() + PEER_TIMEOUT_MS) < 0 && h->waits;
	close(conn);
	if (conn < 3 && open("/dev/null", O_RDWR) != conn)
		err(ST_SYSTEM, "/dev/null");
	if (!gone)
		return 0;
	close_all(h->fds, h->n);
	free(h->fds);
	free(h->names);
	memset(h, 0, sizeof(*h));
	return -1;
}

/* A sender on group g's listener: admitted, greeted and received into h
 * (0), or told why not, warned of and dropped (-1). */
static int take_sender(const struct receiver *r, struct group *g,
		       struct handoff *h, msec_t deadline, struct warn_limit *wl)
{
	struct inbox ib;
	struct ucred cr;
	char why[100];
	int conn = accept4(g->lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);

	if (conn < 0) {
		if (errno != EINTR && errno != EAGAIN && errno != ECONNABORTED)
			err(ST_SYSTEM, "%s: accept", g->chan.label);
		return -1;
	}
	inbox_init(&ib, conn);
	if (!peer_allowed(conn, &r->allow, &cr)) {
		refuse(&ib, not_allowed(&cr, why, sizeof(why)));
		snprintf(ib.why, sizeof(ib.why), "not allowed (see --allow-uid)");
	} else if (send_greeting(conn),
		   recv_handoff(r, g->count, &ib, h, earlier(deadline, now_ms() + PEER_TIMEOUT_MS)) == 0) {
		inbox_free(&ib);
		if (finish_handoff(conn, h) == 0)
			return 0;
		warn_peer(wl, g->chan.label, "senders", "%s: sender uid %u pid %d: gone before HELD (it gave up); its descriptors were closed",
			  g->chan.label, (unsigned)cr.uid, (int)cr.pid);
		return -1;
	}
	/* a peer that left without a word was only probing */
	if (ib.why[0])
		warn_peer(wl, g->chan.label, "senders", "%s: sender uid %u pid %d: %s",
			  g->chan.label, (unsigned)cr.uid, (int)cr.pid, ib.why);
	inbox_free(&ib);
	free(h->names);
	memset(h, 0, sizeof(*h));   /* its count too: nothing came */
	close(conn);
	return -1;
}

/* Accepts senders on every listening group until each has handed over,
 * in whatever order they come; a bad one is told and skipped. At the
 * deadline, the files go while the listeners still listen. */
static void accept_handoffs(const struct receiver *r, struct handoff *hs,
			    msec_t deadline)
{
	struct warn_limit wl = { 0, 0, 0 };
	struct pollfd *pf = calloc(r->ngroups, sizeof(*pf));
	size_t left = 0;

	if (!pf)
		err(ST_SYSTEM, "malloc");
	for (size_t i = 0; i < r->ngroups; i++)
		left += r->groups[i].lfd >= 0;
	while (left) {
		int n;

		for (size_t i = 0; i < r->ngroups; i++)
			pf[i] = (struct pollfd){ .fd = r->groups[i].lfd, .events = POLLIN };
		n = poll(pf, r->ngroups, poll_ms(earlier(deadline, warnings_due(&wl))));
		if (n < 0 && errno != EINTR)
			err(ST_SYSTEM, "poll");
		flush_warnings(&wl, r->groups[0].chan.label, "senders", 0);
		if (n == 0 && now_ms() >= deadline)
			break;
		for (size_t i = 0; n > 0 && i < r->ngroups; i++) {
			struct group *g = &r->groups[i];

			if (!pf[i].revents || take_sender(r, g, &hs[i], deadline, &wl) < 0)
				continue;
			remove_file(g->own);   /* while it listens: a successor waits for that */
			close(g->lfd);
			g->lfd = -1;
			left--;
		}
	}
	flush_warnings(&wl, r->groups[0].chan.label, "senders", 1);
	free(pf);
	if (!left)
		return;
	for (size_t i = 0; i < r->ngroups; i++)
		remove_file(r->groups[i].own);
	for (size_t i = 0, told = 0; i < r->ngroups; i++) {
		close_all(hs[i].fds, hs[i].n);   /* of those that came */
		if (r->groups[i].lfd < 0)
			continue;
		if (!told++)
			warnx("%s: timed out waiting for a sender", r->groups[i].chan.label);
		close(r->groups[i].lfd);
	}
	exit(ST_TIMEOUT);
}

/* ---- placing ---- */

/* Moves fds[i] to targets[i] for all i without clobbering one another: a
 * descriptor is placed once its target is free, and a cycle is broken by
 * moving one member aside. */
static void place_fds(int *fds, const int *targets, size_t n)
{
	int hi = 0;
	int *at, *wants, *stack;
	size_t sp = 0, placed = 0;

	for (size_t i = 0; i < n; i++) {
		if (fds[i] > hi) hi = fds[i];
		if (targets[i] > hi) hi = targets[i];
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
	char num[24], *names;
	int named;
	size_t len = join_names(h->names, h->n, NULL, &named);

	if (!(names = malloc(len + 1)))
		err(ST_SYSTEM, "malloc");
	join_names(h->names, h->n, names, &named);
	put_decimal(num, h->n);
	setenv("LISTEN_FDS", num, 1);
	put_decimal(num, (unsigned long)getpid());   /* exec keeps the pid */
	setenv("LISTEN_PID", num, 1);
	/* too long for the kernel only when all are unnamed (offers with names
	 * were checked): without it, sd_listen_fds_with_names(3) says UNNAMED */
	if (sizeof("LISTEN_FDNAMES=") + len > MAX_ARG_STRLEN)
		unsetenv("LISTEN_FDNAMES");
	else
		setenv("LISTEN_FDNAMES", names, 1);
	free(names);
}

/* O_NONBLOCK as --set-nonblock or --clear-nonblock ask. It belongs to the
 * open file description: the sender, a holder and every other process
 * with a copy see the change too. */
static void set_nonblock(const struct receiver *r, const struct handoff *h)
{
	for (size_t i = 0; r->nonblock >= 0 && i < h->n; i++) {
		int fl = fcntl(h->fds[i], F_GETFL);

		if (fl < 0 || fcntl(h->fds[i], F_SETFL, r->nonblock ? fl | O_NONBLOCK
						  : fl & ~O_NONBLOCK) < 0)
			err(ST_SYSTEM, "fd %d: O_NONBLOCK", h->fds[i]);
	}
}

/* Tells COMMAND of its descriptors (at targets) the --export way. */
static void export_fds(const struct receiver *r, const struct handoff *h,
		       const int *targets)
{
	char name[32], num[16], *list;
	size_t len = 0;

	if (r->export == EXPORT_SYSTEMD) {
		set_listen_env(h);
		return;
	}
	unsetenv("LISTEN_FDS");
	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDNAMES");
	if (r->export == EXPORT_NGINX) {
		/* NGINX="3;4;": nginx's binary-upgrade convention */
		if (!(list = malloc(h->n * 12 + 1)))
			err(ST_SYSTEM, "malloc");
		list[0] = 0;
		for (size_t i = 0; i < h->n; i++)
			len += (size_t)sprintf(list + len, "%d;", targets[i]);
		setenv("NGINX", list, 1);
		free(list);
	} else if (r->export == EXPORT_EINHORN) {
		snprintf(num, sizeof(num), "%zu", h->n);
		setenv("EINHORN_FD_COUNT", num, 1);
		for (size_t i = 0; i < h->n; i++) {
			snprintf(name, sizeof(name), "EINHORN_FD_%zu", i);
			snprintf(num, sizeof(num), "%d", targets[i]);
			setenv(name, num, 1);
		}
	}
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

static void add_field(struct fdinfo *d, const char *key, const char *val,
		      size_t len)
{
	struct field *f = &d->f[d->n++];

	f->key = key;
	f->len = len < sizeof(f->val) ? len : sizeof(f->val);
	memcpy(f->val, val, f->len);
}

static void add_str(struct fdinfo *d, const char *key, const char *val)
{
	add_field(d, key, val, strlen(val));
}

static const char *lookup(int v, const int *keys, const char *const *names,
			  size_t n, char *buf, size_t size)
{
	for (size_t i = 0; i < n; i++)
		if (keys[i] == v)
			return names[i];
	snprintf(buf, size, "%d", v);
	return buf;
}

static void describe_socket(int fd, struct fdinfo *d)
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
	/* a TCP listener's backlog, as listen(2) last set it: the kernel
	 * tells it through TCP_INFO (tcpi_sacked while listening) */
	if (acc && (dom == AF_INET || dom == AF_INET6)) {
		struct tcp_info ti;
		socklen_t tl = sizeof(ti);

		memset(&ti, 0, sizeof(ti));
		if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &tl) == 0 &&
		    ti.tcpi_state == 10 /* TCP_LISTEN */) {
			snprintf(buf, sizeof(buf), "%u", ti.tcpi_sacked);
			add_str(d, "backlog", buf);
		}
	}
}

static void describe(int fd, const char *name, struct fdinfo *d)
{
	char link[PATH_MAX], proc[32];
	struct stat st;
	ssize_t ll;
	int fl = fcntl(fd, F_GETFL);
	const char *kind = "other";

	memset(d, 0, sizeof(*d));
	add_str(d, "name", *name ? name : UNNAMED);
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

/* JSON: valid UTF-8 as it is, each byte of anything else as the lone
 * surrogate U+DC00+byte (Python's "surrogateescape"), so the output is
 * always valid JSON and the bytes can still be recovered. Text: anything
 * but printable ASCII as \xNN. */
static void put_escaped(FILE *out, const char *str, size_t len, int json)
{
	const unsigned char *s = (const unsigned char *)str;

	for (size_t i = 0; i < len;) {
		unsigned char c = s[i];
		size_t n = json ? utf8_len(s + i, len - i) : 1;

		if (json && (c == '"' || c == '\\'))
			fprintf(out, "\\%c", c);
		else if (json && (c < 0x20 || c == 0x7f))
			fprintf(out, "\\u%04x", c);
		else if (json && !n)
			fprintf(out, "\\udc%02x", c);
		else if (!json && (c <= ' ' || c > 0x7e || c == '\\'))
			fprintf(out, "\\x%02x", c);
		else
			fwrite(s + i, 1, n, out);
		i += n ? n : 1;
	}
}

/* One line: "3 name=web kind=socket ..." or one JSON object. */
static void print_fdinfo(FILE *out, int target, const struct fdinfo *d,
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
	free(r->groups);
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
 * cannot run is handed to the shell. Returns only on failure, told on
 * err_fd (a copy of fdrecv's stderr). */
static int run_command(const struct receiver *r, int err_fd)
{
	size_t n = 0;
	char **argv;
	int e;

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
	e = errno;
	/* fd 2 may hold a received descriptor now: say it on fdrecv's own
	 * stderr, or (err_fd -1, a watched child) leave it to the parent */
	if (err_fd >= 0 && dup2(err_fd, 2) == 2)
		warn("%s", r->cmd[0]);
	errno = e;
	return e == ENOENT ? ST_NOT_FOUND : ST_CANNOT_RUN;
}

/* ---- a watched start: --ready and --replace ---- */


/* An instance of the service: its pid, and a pidfd that stays its own
 * even after the pid is recycled. */
struct instance {
	pid_t pid;
	int pidfd;
};

static int pidfd_of(pid_t pid)
{
	return (int)syscall(SYS_pidfd_open, pid, 0);   /* close-on-exec */
}

static int signal_instance(const struct instance *in, int sig)
{
	return (int)syscall(SYS_pidfd_send_signal, in->pidfd, sig, NULL, 0);
}

/* 1 once the instance has exited, waiting until the deadline at most. */
static int has_exited(const struct instance *in, msec_t deadline)
{
	return wait_fd(in->pidfd, POLLIN, deadline) != 0;
}

static void forget_instance(struct instance *in)
{
	close(in->pidfd);
	in->pidfd = -1;
	in->pid = 0;
}

/* Without a recorded start time, a process that started this long after
 * PIDFILE was written is not the one it names: file times are coarse (a
 * clock tick, read lazily), a start time is known to the tick, and the
 * wall clock may have been slewed since. */
#define RECYCLE_SLACK_NS 1000000000LL

/* A process ID written as text (a pid file): the pid, 0 when there is
 * none (only white space), -1 when it is anything else. */
static pid_t pid_in(const char *text)
{
	char digits[16];
	size_t len = strspn(text, "0123456789");
	unsigned long v;

	if (text[len + strspn(text + len, " \t\n")])
		return -1;
	if (!len)
		return 0;
	if (len >= sizeof(digits))
		return -1;
	memcpy(digits, text, len);
	digits[len] = 0;
	return parse_digits(digits, INT_MAX, &v) && v ? (pid_t)v : -1;
}

/* When pid started, in clock ticks since boot (field 22 of its stat,
 * the 20th word after the command); 0 when unknown. With the pid, it
 * names one process for as long as the system runs. */
static unsigned long long start_ticks(pid_t pid)
{
	char path[32], buf[1024], *p;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if (read_small(path, buf, sizeof(buf), NULL) <= 0 || !(p = strrchr(buf, ')')))
		return 0;
	for (int field = 2; field < 22 && p; field++)
		p = strchr(p + 1, ' ');
	return p ? strtoull(p + 1, NULL, 10) : 0;
}

/* The same start time on the wall clock, in nanoseconds, for comparing
 * with a file time: rounded down to the tick, and off by whatever the wall
 * clock was stepped since. */
static int64_t started_at(pid_t pid)
{
	struct timespec real, boot;

	clock_gettime(CLOCK_REALTIME, &real);
	clock_gettime(CLOCK_BOOTTIME, &boot);
	return (int64_t)real.tv_sec * 1000000000 + real.tv_nsec -
	       ((int64_t)boot.tv_sec * 1000000000 + boot.tv_nsec) +
	       (int64_t)(start_ticks(pid) *
			 (1000000000 / (unsigned long long)sysconf(_SC_CLK_TCK)));
}

/* The extended attribute in which fdrecv keeps, beside the pid it writes
 * to PIDFILE, that process's start time: the two name the instance
 * exactly, whatever the clocks did since. */
#define START_XATTR "user.fdrecv.start"

/* 1 when pid is the process PIDFILE meant: the start time recorded with
 * it, where there is one; else it started before the file was written. */
static int is_named_instance(const char *pidfile, const struct stat *st, pid_t pid)
{
	char rec[24];
	ssize_t n = getxattr(pidfile, START_XATTR, rec, sizeof(rec) - 1);

	if (n > 0) {
		rec[n] = 0;
		return strtoull(rec, NULL, 10) == start_ticks(pid);
	}
	return started_at(pid) <= (int64_t)st->st_mtim.tv_sec * 1000000000 +
				  st->st_mtim.tv_nsec + RECYCLE_SLACK_NS;
}

/* The old instance that PIDFILE names, pinned before the new one starts;
 * pid 0 for a first start (no file, no pid in it, or no such process). A
 * process that started after the file was last written is not the one it
 * names, whatever its pid: it is left alone. */
static void pin_old(const char *pidfile, struct instance *old)
{
	char buf[32];
	struct stat st;
	ssize_t n = read_small(pidfile, buf, sizeof(buf), &st);
	pid_t pid;

	old->pid = 0;
	old->pidfd = -1;
	if (n < 0 && errno == ENOENT)
		return;
	if (n < 0)
		err(ST_SYSTEM, "%s", pidfile);
	/* another user could name any process in it */
	if (st.st_uid != geteuid() && st.st_uid != 0)
		errx(ST_SYSTEM, "%s: owned by uid %u, not by uid %u or root: not trusted",
		     pidfile, (unsigned)st.st_uid, (unsigned)geteuid());
	/* nothing at all: a first start */
	if ((pid = pid_in(buf)) < 0)
		errx(ST_SYSTEM, "%s: not a process ID: '%.*s'", pidfile,
		     (int)strcspn(buf, "\n"), buf);
	if (!pid)
		return;
	if ((old->pidfd = pidfd_of(pid)) < 0) {
		if (errno == ESRCH)
			return;
		err(ST_SYSTEM, "%s: pid %d", pidfile, (int)pid);
	}
	old->pid = pid;
	if (has_exited(old, DONT_WAIT)) {
		forget_instance(old);
	} else if (!is_named_instance(pidfile, &st, old->pid)) {
		warnx("%s: pid %d started after the file was written: not the old instance, left alone",
		      pidfile, (int)old->pid);
		forget_instance(old);
	}
}

/* What is watched while a new instance starts. */
struct watch {
	struct instance child;
	int execfd;             /* EOF once exec'd; an errno if exec failed */
	int notify;             /* --ready notify: our datagram socket */
	int inotify;            /* --ready pidfile: the file's directory */
	sigset_t let_in;        /* the mask ppoll lets the stop signals in with */
};

/* --ready notify: a datagram socket of our own in the private per-user
 * directory, so that no other user can take its name over once fdrecv is
 * gone (an abstract name could be bound by anybody); NOTIFY_SOCKET tells
 * COMMAND where, and the file goes when fdrecv exits. */
static void open_notify(struct watch *w, char *env, size_t size)
{
	struct chan c;
	struct spot sp;
	struct owned *own;
	struct stat st;
	char name[48];
	int one = 1;

	memcpy(name, ".notify.", 8);
	put_decimal(name + 8, (unsigned long)getpid());
	resolve_chan(&c, name, 0);
	w->notify = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (w->notify < 0 ||
	    setsockopt(w->notify, SOL_SOCKET, SO_PASSCRED, &one, sizeof(one)) < 0)
		err(ST_SYSTEM, "notify socket");
	open_spot(&c, &sp);
	own = owned_entry(sp.dirfd, sp.name);
	close(sp.dirfd);
	/* a left-over of an earlier fdrecv with this pid, in our own directory */
	unlink(c.sa.sun_path);
	if (bind(w->notify, (struct sockaddr *)&c.sa, c.salen) < 0 ||
	    lstat(c.sa.sun_path, &st) < 0)
		err(ST_SYSTEM, "%s", c.label);
	claim(own, &st);
	/* resolve_chan refused anything longer than sun_path */
	memcpy(env, c.sa.sun_path, size);
	env[size - 1] = 0;
}

static int has_line(const char *text, const char *line)
{
	size_t n = strlen(line);

	for (const char *p = text; *p; p += strcspn(p, "\n"), p += *p == '\n')
		if (!strncmp(p, line, n) && (p[n] == '\n' || !p[n]))
			return 1;
	return 0;
}

/* 1 when a datagram from the instance itself says READY=1; any other
 * sender, a child of the instance included, is ignored, and descriptors
 * that came along are closed. */
static int notified_ready(const struct watch *w)
{
	for (;;) {
		char buf[4096];
		union {
			struct cmsghdr h;
			char b[CMSG_SPACE(sizeof(struct ucred)) +
			       CMSG_SPACE(FDS_PER_MSG * sizeof(int))];
		} ctl;
		struct iovec iov = { buf, sizeof(buf) - 1 };
		struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1,
				    .msg_control = ctl.b,
				    .msg_controllen = sizeof(ctl.b) };
		ssize_t n = recvmsg(w->notify, &m, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
		struct ucred cr = { 0, 0, 0 };

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return 0;
		for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
			if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_CREDENTIALS)
				memcpy(&cr, CMSG_DATA(c), sizeof(cr));
			if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS)
				for (size_t i = 0; i < (c->cmsg_len - CMSG_LEN(0)) / sizeof(int); i++) {
					int fd;

					memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(fd));
					close(fd);
				}
		}
		buf[n] = 0;
		if (cr.pid == w->child.pid && has_line(buf, "READY=1"))
			return 1;
	}
}

/* --ready pidfile:PATH: watch PATH's directory, where inotify can. */
static void watch_pidfile(struct watch *w, const char *path)
{
	char dir[PATH_MAX];
	const char *slash = strrchr(path, '/');

	snprintf(dir, sizeof(dir), "%.*s", slash ? (int)(slash - path) + (slash == path) : 1,
		 slash ? path : ".");
	w->inotify = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
	if (w->inotify >= 0 &&
	    inotify_add_watch(w->inotify, dir, IN_CLOSE_WRITE | IN_MOVED_TO |
			      IN_CREATE | IN_MODIFY) < 0) {
		close(w->inotify);
		w->inotify = -1;
	}
}

/* 1 when PATH holds pid (digits, white space after them at most). */
static int pidfile_says(const char *path, pid_t pid)
{
	char buf[32];

	return read_small(path, buf, sizeof(buf), NULL) > 0 && pid_in(buf) == pid;
}

/* Runs COMMAND in a child with the placed descriptors; the watch gets
 * what tells when it has started and when it is ready. */
static void start_instance(const struct receiver *r, struct watch *w,
			   const sigset_t *start_mask)
{
	char notify_env[sizeof(((struct sockaddr_un *)0)->sun_path)], num[24];
	struct sigaction dfl, chld[1];
	int pipefd[2];
	pid_t pid;

	/* a SIGCHLD ignored by whoever started fdrecv would reap the instance
	 * behind its back, and free its pid for another process */
	memset(&dfl, 0, sizeof(dfl));
	dfl.sa_handler = SIG_DFL;
	sigaction(SIGCHLD, &dfl, chld);
	w->notify = w->inotify = -1;
	if (r->ready == READY_NOTIFY)
		open_notify(w, notify_env, sizeof(notify_env));
	if (r->ready == READY_PIDFILE)
		watch_pidfile(w, r->ready_file);
	if (pipe2(pipefd, O_CLOEXEC) < 0)
		err(ST_SYSTEM, "pipe");
	if ((pid = fork()) < 0)
		err(ST_SYSTEM, "fork");
	if (pid == 0) {
		int e;

		close(pipefd[0]);
		if (r->export == EXPORT_SYSTEMD) {   /* LISTEN_PID: its own */
			snprintf(num, sizeof(num), "%d", (int)getpid());
			setenv("LISTEN_PID", num, 1);
		}
		if (r->ready == READY_NOTIFY)
			setenv("NOTIFY_SOCKET", notify_env, 1);
		/* dispositions first: a stop signal pending since the fork
		 * must not run fdrecv's handler here */
		restore_signals();
		sigaction(SIGCHLD, chld, NULL);
		sigprocmask(SIG_SETMASK, start_mask, NULL);
		e = run_command(r, -1);
		/* the parent learns of the failure from errno, not a message */
		if (write(pipefd[1], &errno, sizeof(errno)) < 0)
			_exit(e);
		_exit(e);
	}
	close(pipefd[1]);
	w->execfd = pipefd[0];
	w->child.pid = pid;
	if ((w->child.pidfd = pidfd_of(pid)) < 0)
		err(ST_SYSTEM, "pidfd_open (Linux 5.3 or later)");
}

/* How the instance ended, for a message. */
static void describe_exit(pid_t pid, char *why, size_t size)
{
	char sig[24];
	int st;

	pid_t r;

	while ((r = waitpid(pid, &st, 0)) < 0 && errno == EINTR)
		;
	if (r < 0)
		snprintf(why, size, "exited before it was ready");
	else if (WIFSIGNALED(st))
		snprintf(why, size, "was killed by %s before it was ready",
			 signame(WTERMSIG(st), sig, sizeof(sig)));
	else
		snprintf(why, size, "exited with status %d before it was ready",
			 WEXITSTATUS(st));
}

static const char *seconds(msec_t ms, char *buf, size_t size)
{
	snprintf(buf, size, "%g", (double)ms / 1000);
	return buf;
}

/* Waits until the instance is ready: 0, or else *status and why. */
static int await_ready(const struct receiver *r, struct watch *w,
		       char *why, size_t size, int *status)
{
	msec_t deadline = now_ms() + r->ready_timeout;
	char buf[sizeof(struct inotify_event) + NAME_MAX + 1], secs[24];

	*status = ST_ROLLED_BACK;
	for (;;) {
		struct pollfd p[3] = {
			{ .fd = w->execfd, .events = POLLIN },
			{ .fd = w->child.pidfd, .events = POLLIN },
			{ .fd = w->notify >= 0 ? w->notify : w->inotify, .events = POLLIN },
		};
		msec_t now = now_ms(), wake = deadline;
		struct timespec ts;
		int e;

		/* a pid file may appear where nothing could be watched */
		if (r->ready == READY_PIDFILE)
			wake = earlier(wake, now + (w->inotify < 0 ? 100 : 1000));
		wake = wake > now ? wake - now : 0;
		ts.tv_sec = wake / 1000;
		ts.tv_nsec = wake % 1000 * 1000000;
		if (ppoll(p, 3, &ts, &w->let_in) < 0 && errno != EINTR)
			err(ST_SYSTEM, "poll");
		if (stop_signal) {
			snprintf(why, size, "was still starting when fdrecv got %s",
				 signame(stop_signal, buf, sizeof(buf)));
			return -1;
		}
		if (p[0].revents) {
			ssize_t n = read(w->execfd, &e, sizeof(e));

			close(w->execfd);
			w->execfd = -1;
			if (n == sizeof(e)) {
				*status = e == ENOENT ? ST_NOT_FOUND : ST_CANNOT_RUN;
				snprintf(why, size, "could not be executed: %s", strerror(e));
				return -1;
			}
			if (r->ready == READY_EXEC)
				return 0;
		}
		if (p[1].revents) {
			describe_exit(w->child.pid, why, size);
			return -1;
		}
		if (w->notify >= 0 && p[2].revents && notified_ready(w))
			return 0;
		if (r->ready == READY_PIDFILE) {
			while (w->inotify >= 0 && read(w->inotify, buf, sizeof(buf)) > 0)
				;
			if (pidfile_says(r->ready_file, w->child.pid))
				return 0;
		}
		if (now_ms() >= deadline) {
			snprintf(why, size, "was not ready after %s s",
				 seconds(r->ready_timeout, secs, sizeof(secs)));
			return -1;
		}
	}
}

/* Stops an instance with the stop signal; when it has not exited by
 * the deadline, SIGKILL, and says so. */
static void stop_instance(const struct receiver *r, const struct instance *in,
			  const char *what, msec_t wait_ms)
{
	char sig[24], s[24];

	if (signal_instance(in, r->stop_sig) < 0 && errno != ESRCH)
		warn("%s pid %d", what, (int)in->pid);
	if (wait_ms == NO_DEADLINE || has_exited(in, now_ms() + wait_ms))
		return;
	signal_instance(in, SIGKILL);
	warnx("%s pid %d did not exit within %s s of %s: killed", what,
	      (int)in->pid, seconds(wait_ms, s, sizeof(s)),
	      signame(r->stop_sig, sig, sizeof(sig)));
	has_exited(in, now_ms() + PEER_TIMEOUT_MS);
}

/* PIDFILE's new content, written beside it, so that a reader never sees
 * a partial file: renamed into place once the old instance is told. */
static void write_pidfile(const char *pidfile, pid_t pid, char *tmp, size_t size)
{
	const char *slash = strrchr(pidfile, '/');
	char text[24], start[24];
	int fd, n, len;

	snprintf(tmp, size, "%.*s.%s.fdrecv.%d", slash ? (int)(slash - pidfile + 1) : 0,
		 pidfile, slash ? slash + 1 : pidfile, (int)getpid());
	n = snprintf(text, sizeof(text), "%d\n", (int)pid);
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
	/* where the file system keeps no user attributes, the file time must do */
	if (fd >= 0 && (len = snprintf(start, sizeof(start), "%llu", start_ticks(pid))) > 1)
		fsetxattr(fd, START_XATTR, start, (size_t)len, 0);
	if (fd < 0 || write(fd, text, (size_t)n) != n || close(fd) < 0) {
		if (fd >= 0)
			unlink(tmp);
		tmp[0] = 0;
	}
}

/* Under a service manager: the new instance is its main process now. */
static void tell_manager(const char *where, pid_t pid)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	size_t len = where ? strlen(where) : 0;
	char msg[64];
	int fd, n;

	if (!len || len >= sizeof(sa.sun_path) || (where[0] != '/' && where[0] != '@'))
		return;
	memcpy(sa.sun_path, where, len);
	if (where[0] == '@')
		sa.sun_path[0] = 0;
	n = snprintf(msg, sizeof(msg), "MAINPID=%d\nREADY=1\n", (int)pid);
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || sendto(fd, msg, (size_t)n, MSG_NOSIGNAL, (struct sockaddr *)&sa,
			     (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len +
					 (where[0] == '/'))) < 0)
		warn("NOTIFY_SOCKET=%s", where);
	if (fd >= 0)
		close(fd);
}

/* --ready, --replace: COMMAND starts as a child; once it is ready the old
 * instance is told to stop and PIDFILE names the new one; else the new one
 * is stopped, and nothing else changes (a roll-back). */
static int supervise(const struct receiver *r, struct instance *old,
		     int *fds, size_t n, int err_fd)
{
	char *manager = getenv("NOTIFY_SOCKET"), why[160], tmp[PATH_MAX] = "";
	sigset_t stops, start_mask;
	struct watch w;
	int status, ready;

	if (manager && !(manager = strdup(manager)))
		err(ST_SYSTEM, "strdup");
	/* the stop signals are noted, and let in only while waiting */
	sigemptyset(&stops);
	for (int i = 0; i < 3; i++)
		sigaddset(&stops, stop_sigs[i]);
	sigprocmask(SIG_BLOCK, &stops, &start_mask);
	w.let_in = start_mask;
	catch_signals(0);
	start_instance(r, &w, &start_mask);
	/* the instance has the descriptors now; 0, 1 and 2 are ours again */
	close_all(fds, n);
	if (err_fd >= 0 && (dup2(err_fd, 2) < 0 || close(err_fd) < 0))
		err(ST_SYSTEM, "stderr");
	for (int fd = 0; fd < 2; fd++)
		if (fcntl(fd, F_GETFD) < 0 && open("/dev/null", O_RDWR) != fd)
			err(ST_SYSTEM, "/dev/null");
	ready = await_ready(r, &w, why, sizeof(why), &status) == 0;
	if (ready && r->replace) {
		write_pidfile(r->replace, w.child.pid, tmp, sizeof(tmp));
		if (!tmp[0]) {
			snprintf(why, sizeof(why), "was ready, but %s cannot be written (%s)",
				 r->replace, strerror(errno));
			status = ST_SYSTEM;
			ready = 0;
		}
	}
	if (!ready) {
		if (!has_exited(&w.child, DONT_WAIT))
			stop_instance(r, &w.child, "new instance",
				      r->stop_timeout != NO_DEADLINE ? r->stop_timeout
								     : ROLLBACK_STOP_MS);
		waitpid(w.child.pid, NULL, WNOHANG);
		warnx("%s: pid %d %s; rolled back", r->cmd[0], (int)w.child.pid, why);
		free(manager);
		if (stop_signal) {   /* then die of it, as without --ready */
			remove_owned_files();
			signal(stop_signal, SIG_DFL);
			sigprocmask(SIG_SETMASK, &start_mask, NULL);
			raise(stop_signal);
		}
		return status;
	}
	if (old->pid)
		stop_instance(r, old, "old instance", r->stop_timeout);
	if (tmp[0] && rename(tmp, r->replace) < 0) {
		unlink(tmp);
		err(ST_SYSTEM, "%s", r->replace);
	}
	tell_manager(manager, w.child.pid);
	free(manager);
	return ST_OK;
}

/* fd:N, or --connect: one peer on one connection, for group g. */
static void recv_from_peer(const struct receiver *r, struct group *g,
			   struct handoff *h, msec_t deadline)
{
	struct inbox ib;
	struct ucred cr;
	char why[100];
	int conn = g->chan.inherited;

	if (conn < 0) {
		conn = connect_chan(&g->chan, deadline, "holder");
		deadline = earlier(deadline, now_ms() + PEER_TIMEOUT_MS);
	}
	inbox_init(&ib, conn);
	if (!peer_allowed(conn, &r->allow, &cr)) {
		refuse(&ib, not_allowed(&cr, why, sizeof(why)));
		close(conn);
		errx(ST_HANDOFF, "%s: refused the sender: %s", g->chan.label, why);
	}
	send_greeting(conn);
	if (recv_handoff(r, g->count, &ib, h, deadline) < 0) {
		inbox_free(&ib);
		close(conn);
		errx(ib.timed_out ? ST_TIMEOUT : ST_HANDOFF,
		     "%s: %s", g->chan.label,
		     ib.why[0] ? ib.why : "sender closed the connection");
	}
	inbox_free(&ib);
	if (finish_handoff(conn, h) < 0)
		errx(ST_HANDOFF, "%s: sender gone before HELD (it gave up); its descriptors were closed",
		     g->chan.label);
}

/* Every group's handoff into hs: the listeners open first, so senders may
 * come in any order; then each connecting group in turn; then the senders
 * on the listeners. */
static void recv_groups(const struct receiver *r, struct handoff *hs)
{
	msec_t deadline = deadline_after(r->timeout);

	for (size_t i = 0; i < r->ngroups; i++) {
		struct group *g = &r->groups[i];

		if (g->chan.inherited < 0 && !r->connect) {
			catch_signals(1);
			g->lfd = listen_chan(&g->chan, SOMAXCONN, r->mode,
					     FOR_HANDOFF, &g->own);
		}
	}
	for (size_t i = 0; i < r->ngroups; i++)
		if (r->groups[i].lfd < 0)
			recv_from_peer(r, &r->groups[i], &hs[i], deadline);
	accept_handoffs(r, hs, deadline);
}

/* The groups' handoffs as one, in group order. */
static void join_handoffs(struct handoff *h, struct handoff *hs, size_t n)
{
	size_t len = 0, k = 0, at = 0;

	for (size_t i = 0; i < n; i++) {
		const char *s = hs[i].names;

		h->n += hs[i].n;
		for (size_t j = 0; j < hs[i].n; j++, s += strlen(s) + 1)
			;
		len += (size_t)(s - hs[i].names);
	}
	h->fds = malloc((h->n + 1) * sizeof(int));
	h->names = malloc(len + 1);
	if (!h->fds || !h->names)
		err(ST_SYSTEM, "malloc");
	for (size_t i = 0; i < n; i++) {
		const char *s = hs[i].names;

		memcpy(h->fds + k, hs[i].fds, hs[i].n * sizeof(int));
		k += hs[i].n;
		for (size_t j = 0; j < hs[i].n; j++, s += strlen(s) + 1)
			;
		memcpy(h->names + at, hs[i].names, (size_t)(s - hs[i].names));
		at += (size_t)(s - hs[i].names);
		free(hs[i].fds);
		free(hs[i].names);
	}
}

/* One of fdrecv's own descriptors, moved above the targets (top and
 * below), where no received descriptor will be placed. */
static void move_above(int *fd, int top)
{
	int moved;

	if (*fd < 0 || *fd > top)
		return;
	if ((moved = fcntl(*fd, F_DUPFD_CLOEXEC, top + 1)) < 0)
		err(ST_SYSTEM, "moving a descriptor aside");
	close(*fd);
	*fd = moved;
}

int main(int argc, char **argv)
{
	struct receiver r;
	struct handoff h = { 0 }, *hs;
	struct instance old = { 0, -1 };
	struct rlimit nofile;
	int status, *targets, top, err_fd = -1;

	start_up(remove_owned_files);
	if (getrlimit(RLIMIT_NOFILE, &nofile) < 0)
		err(ST_SYSTEM, "getrlimit");
	parse_args(&r, argc, argv);
	if (r.replace)   /* before anything new starts */
		pin_old(r.replace, &old);
	if (!(hs = calloc(r.ngroups, sizeof(*hs))))
		err(ST_SYSTEM, "malloc");
	recv_groups(&r, hs);
	if (r.ngroups == 1)
		h = hs[0];
	else
		join_handoffs(&h, hs, r.ngroups);
	free(hs);
	targets = r.targets;
	if (!targets) {
		targets = malloc(h.n * sizeof(int));
		if (!targets)
			err(ST_SYSTEM, "malloc");
		for (size_t i = 0; i < h.n; i++)
			targets[i] = (int)i + 3;
	}
	top = max_target(&r, h.n);
	if (r.cmd) {
		move_above(&old.pidfd, top);
		/* fdrecv still speaks on its own stderr, whatever lands on 2 */
		if ((err_fd = fcntl(2, F_DUPFD_CLOEXEC, top + 1)) < 0)
			err(ST_SYSTEM, "stderr");
		place_fds(h.fds, targets, h.n);
	}
	set_nonblock(&r, &h);
	if (!r.cmd) {
		describe_all(&r, &h);
		close_all(h.fds, h.n);
		release(&r, &h, targets);
		return ST_OK;
	}
	export_fds(&r, &h, targets);
	restore_nofile(&nofile, top);
	if (r.ready) {
		status = supervise(&r, &old, h.fds, h.n, err_fd);
	} else {
		restore_signals();
		status = run_command(&r, err_fd);
	}
	release(&r, &h, targets);
	return status;
}
