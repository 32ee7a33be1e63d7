/* SPDX-License-Identifier: MIT */
/* fdsend: hand this process's open descriptors to a receiver over AF_UNIX. */
#include <getopt.h>
#include "common.h"

static const char usage_text[] =
	"Usage: fdsend [-a] [-b] [--no-ack] [-t SECONDS] [--fdname NAME[:NAME...]]\n"
	"              [-f N] SOCKET [FD...]\n"
	"\n"
	"Send descriptors FD... (default: 0) to the fdrecv listening on SOCKET, in one\n"
	"handoff, and wait until it holds them all.\n"
	"\n"
	"  -a, --abstract         SOCKET is an abstract socket name\n"
	"  -b, --blocking         accepted for compatibility; waiting is the default\n"
	"  -f, --fd N             send descriptor N (repeatable)\n"
	"      --fdname NAME[:NAME...]\n"
	"                         names of the descriptors, in order\n"
	"      --no-ack           send at once, wait for no answer (plain receivers)\n"
	"  -t, --timeout SECONDS  bound every wait (default: wait for the receiver\n"
	"                         forever, for each answer 10 seconds)\n"
	"  -h, --help             show this help and exit\n"
	"  -V, --version          show the version and exit\n"
	"\n"
	"SOCKET: PATH (with a '/'), @ABSTRACT, fd:N (an inherited connected socket),\n"
	"or NAME (in $XDG_RUNTIME_DIR/fdsend). See fdsend(1).\n";

struct sender {
	struct chan chan;
	int *fds;
	size_t nfds;
	char **names;
	size_t nnames;
	int noack;
	msec_t timeout;
};

static void add_names(struct sender *s, const char *arg)
{
	char *copy = strdup(arg), *p = copy, *tok;

	if (!copy)
		err(ST_SYSTEM, "strdup");
	/* strsep keeps empty fields: "a::c" names the second one nothing */
	while ((tok = strsep(&p, ":"))) {
		if (!name_ok(tok, strlen(tok)))
			usage_error("invalid descriptor name: '%s' (1..%d printable characters, no ':')",
				    tok, NAME_MAX_LEN);
		s->names = realloc(s->names, (s->nnames + 1) * sizeof(*s->names));
		if (!s->names)
			err(ST_SYSTEM, "realloc");
		s->names[s->nnames++] = tok;
	}
}

static void add_fd(struct sender *s, const char *arg)
{
	int fd = (int)parse_number(arg, 0, INT_MAX, "descriptor number");

	s->fds = realloc(s->fds, (s->nfds + 1) * sizeof(*s->fds));
	if (!s->fds)
		err(ST_SYSTEM, "realloc");
	s->fds[s->nfds++] = fd;
}

static void parse_args(struct sender *s, int argc, char **argv)
{
	enum { OPT_FDNAME = 256, OPT_NOACK };
	static const struct option opts[] = {
		{ "abstract", no_argument, NULL, 'a' },
		{ "blocking", no_argument, NULL, 'b' },
		{ "fd", required_argument, NULL, 'f' },
		{ "fdname", required_argument, NULL, OPT_FDNAME },
		{ "no-ack", no_argument, NULL, OPT_NOACK },
		{ "timeout", required_argument, NULL, 't' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ 0 }
	};
	int abstract = 0, c;

	memset(s, 0, sizeof(*s));
	s->timeout = NO_DEADLINE;
	while ((c = getopt_long(argc, argv, "+abf:t:hV", opts, NULL)) != -1) {
		switch (c) {
		case 'a': abstract = 1; break;
		case 'b': break;
		case 'f': add_fd(s, optarg); break;
		case OPT_FDNAME: add_names(s, optarg); break;
		case OPT_NOACK: s->noack = 1; break;
		case 't': s->timeout = parse_timeout(optarg); break;
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
		add_fd(s, argv[i]);
	if (!s->nfds)
		add_fd(s, "0");
	if (s->nnames > s->nfds)
		usage_error("%zu names for %zu descriptors", s->nnames, s->nfds);
	for (size_t i = 0; i < s->nfds; i++)
		if (fcntl(s->fds[i], F_GETFD) < 0)
			errx(ST_USAGE, "fd %d: not open", s->fds[i]);
	resolve_chan(&s->chan, argv[optind], abstract);
}

/* Paces connection attempts: fine steps at first, so a receiver starting
 * alongside is met at once; then inotify on the directory (its teardown
 * costs milliseconds, so only long waits pay it); 10 ms polling where
 * nothing can be watched (abstract names, a directory not there yet). */
struct waiter {
	msec_t start;
	long step_us;
	int inotify;    /* -1 not yet, -2 unusable */
};

static void nap(long us)
{
	struct timespec ts = { us / 1000000, us % 1000000 * 1000 };

	nanosleep(&ts, NULL);
}

static void wait_a_little(struct waiter *w, const struct chan *c,
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
		strcpy(dir, c->sa.sun_path);
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

/* Connects to the receiver, waiting for it to appear until the deadline. */
static int connect_receiver(const struct chan *c, msec_t deadline)
{
	struct waiter w = { now_ms(), 20, -1 };
	int fd = unix_socket(), last = 0;

	for (;;) {
		if (connect(fd, (const struct sockaddr *)&c->sa, c->salen) == 0)
			break;
		if (errno == EINTR)
			continue;
		if (errno != ENOENT && errno != ECONNREFUSED && errno != EAGAIN)
			err(ST_SYSTEM, "%s: cannot connect", c->label);
		last = errno;
		if (now_ms() >= deadline) {
			if (last == ECONNREFUSED)
				errx(ST_TIMEOUT, "%s: no receiver listening (connection refused)",
				     c->label);
			errx(ST_TIMEOUT, "%s: timed out waiting for a receiver",
			     c->label);
		}
		wait_a_little(&w, c, deadline);
	}
	if (w.inotify >= 0)
		close(w.inotify);
	return fd;
}

/* The OFFER frame: count, flags, then the names, each NUL-terminated. */
static unsigned char *build_offer(const struct sender *s, size_t *len)
{
	size_t nlen = 0, off;
	unsigned char *b;

	for (size_t i = 0; i < s->nfds; i++)
		nlen += (i < s->nnames ? strlen(s->names[i]) : 0) + 1;
	*len = HDR_LEN + 12 + nlen;
	/* room for the first FDS frame, sent along in --no-ack mode */
	b = malloc(*len + HDR_LEN + 4);
	if (!b)
		err(ST_SYSTEM, "malloc");
	put_header(b, T_OFFER, (uint32_t)(12 + nlen));
	put32(b + HDR_LEN, (uint32_t)s->nfds);
	put32(b + HDR_LEN + 4, s->noack ? F_NOACK : 0);
	put32(b + HDR_LEN + 8, (uint32_t)nlen);
	off = HDR_LEN + 12;
	for (size_t i = 0; i < s->nfds; i++) {
		const char *n = i < s->nnames ? s->names[i] : "";
		size_t l = strlen(n) + 1;

		memcpy(b + off, n, l);
		off += l;
	}
	return b;
}

static void fds_frame(unsigned char *b, size_t n)
{
	put_header(b, T_FDS, 4);
	put32(b + HDR_LEN, (uint32_t)n);
}

/* Reads the receiver's answer; returns the frame type or exits. */
static int read_answer(const struct sender *s, struct inbox *ib,
		       const unsigned char **p, uint32_t *len, msec_t deadline)
{
	const char *label = s->chan.label;
	int type = 0, r = inbox_frame(ib, &type, p, len, deadline);

	if (r == 0)
		errx(ST_HANDOFF, "%s: receiver closed the connection without answering",
		     label);
	if (r < 0 && !strcmp(ib->why, "timed out"))
		errx(ST_TIMEOUT, "%s: no answer from receiver (timed out)", label);
	if (r < 0)
		errx(ST_HANDOFF, "%s: bad answer from receiver: %s", label, ib->why);
	if (ib->nfds)
		errx(ST_HANDOFF, "%s: bad answer from receiver: descriptors attached to it",
		     label);
	if (type == T_REFUSED)
		errx(ST_HANDOFF, "%s: refused by receiver: %.*s", label,
		     (int)(*len > 1024 ? 1024 : *len), (const char *)*p);
	return type;
}

/* On a failed send the receiver may have said why before it hung up. */
static void send_failed(const struct sender *s, struct inbox *ib,
			msec_t deadline)
{
	const unsigned char *p;
	uint32_t len;
	int e = errno;

	if (e == ETIMEDOUT)
		errx(ST_TIMEOUT, "%s: receiver stopped reading (timed out)",
		     s->chan.label);
	if (e == EPIPE || e == ECONNRESET) {
		read_answer(s, ib, &p, &len, earlier(deadline, now_ms() + 100));
		errx(ST_HANDOFF, "%s: receiver closed the connection", s->chan.label);
	}
	if (e == ETOOMANYREFS)
		errx(ST_SYSTEM, "%s: too many descriptors in flight at once (ETOOMANYREFS: the limit is RLIMIT_NOFILE)",
		     s->chan.label);
	errno = e;
	err(ST_SYSTEM, "%s: send", s->chan.label);
}

static msec_t answer_deadline(msec_t deadline)
{
	return earlier(deadline, now_ms() + PEER_TIMEOUT_MS);
}

/* One handoff on a connected socket; exits with a message on failure. */
static void hand_over(const struct sender *s, int conn, msec_t deadline)
{
	unsigned char *offer, fr[HDR_LEN + 4];
	size_t olen, first = s->nfds < FDS_PER_MSG ? s->nfds : FDS_PER_MSG;
	size_t done = 0;
	struct inbox ib;
	const unsigned char *p;
	uint32_t len;

	inbox_init(&ib, conn);
	ib.maxfds = 0;   /* an answer carries no descriptors */
	offer = build_offer(s, &olen);
	if (s->noack && olen + HDR_LEN + 4 <= CHUNK) {
		/* one message, so a plain receiver's single recvmsg gets them */
		fds_frame(offer + olen, first);
		if (send_all(conn, offer, olen + HDR_LEN + 4, s->fds, first,
			     deadline) < 0)
			send_failed(s, &ib, deadline);
		done = first;
	} else if (send_all(conn, offer, olen, NULL, 0, deadline) < 0) {
		send_failed(s, &ib, deadline);
	}
	free(offer);
	if (!s->noack &&
	    read_answer(s, &ib, &p, &len, answer_deadline(deadline)) != T_GO)
		errx(ST_HANDOFF, "%s: bad answer from receiver: expected go-ahead",
		     s->chan.label);
	while (done < s->nfds) {
		size_t n = s->nfds - done;

		if (n > FDS_PER_MSG)
			n = FDS_PER_MSG;
		fds_frame(fr, n);
		if (send_all(conn, fr, sizeof(fr), s->fds + done, n, deadline) < 0)
			send_failed(s, &ib, deadline);
		done += n;
	}
	if (!s->noack) {
		if (read_answer(s, &ib, &p, &len, answer_deadline(deadline)) != T_HELD ||
		    len < 4 || get32(p) != s->nfds)
			errx(ST_HANDOFF, "%s: bad answer from receiver: expected held",
			     s->chan.label);
	}
	inbox_free(&ib);
}

int main(int argc, char **argv)
{
	struct sender s;
	msec_t deadline;
	int conn;

	parse_args(&s, argc, argv);
	deadline = deadline_after(s.timeout);
	conn = s.chan.inherited >= 0 ? s.chan.inherited
				     : connect_receiver(&s.chan, deadline);
	hand_over(&s, conn, deadline);
	close(conn);
	free(s.fds);
	return ST_OK;
}
