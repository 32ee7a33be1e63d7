/* SPDX-License-Identifier: MIT */
/* peer: a sender and a receiver written from fdrecv(1)'s PROTOCOL section alone, and
 * util-linux-style plain peers, to prove that fdsend and fdrecv interoperate. */
#include <ctype.h>
#include <err.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/un.h>

#define FAIL 99           /* helper trouble, like fdtool's */
#define MAX_N 253         /* descriptors in one FDS frame */
#define MAX_COUNT 1048576 /* descriptors in one OFFER */
#define MAX_HOLD 4096     /* what this helper holds; it refuses a larger offer */
#define RECORD 65536      /* largest SOCK_SEQPACKET sendmsg; largest frame a sender takes */
#define MAX_PAYLOAD (16u << 20)
#define MAX_REASON 1024

enum { OFFER = 1, GO, FDS, HELD, REFUSED };
#define NOWAIT 1u

static const char usage[] =
	"usage: peer recv [--v1 | --version V] [--seqpacket] [--held-count N]\n"
	"                 [--held-len L] [--extra N] [--refuse TEXT | --refuse-early TEXT]\n"
	"                 [--no-close] PATH\n"
	"       peer send [--v1 | --version V] [--listen] [--seqpacket] [--names A:B:...]\n"
	"                 [--frames N/K,...] [--refuse TEXT] PATH|fd:N FD...\n"
	"       peer plainrecv PATH TARGET CMD...   (util-linux's fdrecv: 1 byte, 1 descriptor)\n"
	"       peer plainsend PATH FD              (util-linux's fdsend)\n"
	"recv: listen on PATH, greet (not --v1), take one handoff, print it, answer HELD\n"
	"  (--held-count/--held-len: a wrong one; --extra: N more payload bytes in GO and\n"
	"  HELD) or REFUSED (--refuse-early: before the OFFER); --no-close: then wait for\n"
	"  the sender to close. Exit 0 when it answered HELD, 3 when either side refused.\n"
	"send: connect (--listen: be the listener, --seqpacket its type) and hand FD...;\n"
	"  --frames: FDS frames of n=N carrying K of the FDs; --refuse: send REFUSED\n"
	"  after the OFFER (--v1: after the go-ahead). Exit 0 on HELD, 3 on REFUSED or a\n"
	"  failed handoff, 6 when the receiver closed without greeting.\n"
	"--version V: the version byte of the frames sent (--v1: 1, and version 1's ways).\n"
	"TEXT: \\xNN stands for the byte NN. Exit 99: trouble in this helper.\n";

static int version = 2; /* the version byte of every frame this peer sends */
static int greeted;     /* the sender has read the receiver's GO */

/* ---- bytes, numbers, text ---- */

struct bytes {
	unsigned char *p;
	size_t len, cap;
};

static void reserve(struct bytes *b, size_t more)
{
	if (b->len + more <= b->cap)
		return;
	b->cap = (b->len + more) * 2;
	b->p = realloc(b->p, b->cap);
	if (!b->p)
		err(FAIL, "realloc");
}

static void add(struct bytes *b, const void *data, size_t n)
{
	reserve(b, n + 1);
	if (n)
		memcpy(b->p + b->len, data, n);
	b->len += n;
}

static void add32(struct bytes *b, uint32_t v)
{
	unsigned char le[4] = { v & 255, v >> 8 & 255, v >> 16 & 255, v >> 24 };
	add(b, le, 4);
}

static uint32_t le32(const unsigned char *p)
{
	return p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* A frame: magic, version, type, reserved 0, length, payload. */
static void add_frame(struct bytes *b, int type, const void *payload, size_t len)
{
	unsigned char h[8] = { 'F', 'D', 'H', 'O', (unsigned char)version, (unsigned char)type, 0, 0 };
	add(b, h, sizeof h);
	add32(b, (uint32_t)len);
	add(b, payload, len);
}

static long number(const char *s, long max)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < 0 || v > max)
		errx(FAIL, "bad number: %s", s);
	return v;
}

/* TEXT with each \xNN replaced by the byte NN. */
static struct bytes unescape(const char *s)
{
	struct bytes b = { 0 };
	while (*s) {
		if (s[0] == '\\' && s[1] == 'x' && isxdigit((unsigned char)s[2]) &&
		    isxdigit((unsigned char)s[3])) {
			char hex[3] = { s[2], s[3], 0 };
			unsigned char c = (unsigned char)strtoul(hex, NULL, 16);
			add(&b, &c, 1);
			s += 4;
		} else {
			add(&b, s++, 1);
		}
	}
	return b;
}

/* PREFIX, then a reason with control bytes as \xNN, on one line. */
static void print_reason(const char *prefix, const unsigned char *p, size_t n)
{
	printf("%s", prefix);
	if (n > MAX_REASON) {
		printf("(a reason of %zu bytes, over the %d-byte limit)\n", n, MAX_REASON);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		if (p[i] < 0x20 || p[i] == 0x7f)
			printf("\\x%02x", p[i]);
		else
			putchar(p[i]);
	}
	putchar('\n');
}

/* ---- sockets ---- */

static socklen_t mkaddr(struct sockaddr_un *sa, const char *path)
{
	size_t n = strlen(path);
	memset(sa, 0, sizeof *sa);
	sa->sun_family = AF_UNIX;
	if (n >= sizeof sa->sun_path)
		errx(FAIL, "%s: path too long", path);
	memcpy(sa->sun_path, path, n);
	return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
}

/* Listen on PATH; the path appears only once listening (bind a temporary name, rename). */
static int listen_at(const char *path, int type, int backlog)
{
	struct sockaddr_un sa;
	char tmp[sizeof sa.sun_path + 8];
	int fd = socket(AF_UNIX, type | SOCK_CLOEXEC, 0);
	if (fd < 0)
		err(FAIL, "socket");
	snprintf(tmp, sizeof tmp, "%s.tmp", path);
	socklen_t len = mkaddr(&sa, tmp);
	if (bind(fd, (struct sockaddr *)&sa, len) < 0 || listen(fd, backlog) < 0)
		err(FAIL, "%s", tmp);
	if (rename(tmp, path) < 0)
		err(FAIL, "rename %s", path);
	return fd;
}

/* Accept one peer, then stop listening and remove PATH. */
static int accept_one(int lfd, const char *path)
{
	int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	if (fd < 0)
		err(FAIL, "accept");
	close(lfd);
	unlink(path);
	return fd;
}

/* Connect with SOCK_STREAM, and with SOCK_SEQPACKET when the listener is of that type. */
static int connect_to(const char *path)
{
	struct sockaddr_un sa;
	socklen_t len = mkaddr(&sa, path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		err(FAIL, "socket");
	if (connect(fd, (struct sockaddr *)&sa, len) == 0)
		return fd;
	if (errno != EPROTOTYPE)
		err(FAIL, "connect %s", path);
	close(fd);
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, len) < 0)
		err(FAIL, "connect %s (SOCK_SEQPACKET)", path);
	return fd;
}

static int is_seqpacket(int fd)
{
	int type;
	socklen_t len = sizeof type;
	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0)
		err(FAIL, "getsockopt SO_TYPE");
	return type == SOCK_SEQPACKET;
}

/* Send B in sendmsg calls of at most RECORD bytes, FDS riding on the first;
 * -1 when the peer is gone (EPIPE, ECONNRESET). */
static int send_msg(int fd, const struct bytes *b, const int *fds, int nfds)
{
	union { struct cmsghdr h; char buf[CMSG_SPACE(sizeof(int) * MAX_N)]; } u;
	for (size_t off = 0; off < b->len;) {
		size_t n = b->len - off < RECORD ? b->len - off : RECORD;
		struct iovec iov = { b->p + off, n };
		struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1 };
		if (off == 0 && nfds > 0) {
			memset(&u, 0, sizeof u);
			m.msg_control = u.buf;
			m.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)nfds);
			struct cmsghdr *c = CMSG_FIRSTHDR(&m);
			c->cmsg_level = SOL_SOCKET;
			c->cmsg_type = SCM_RIGHTS;
			c->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)nfds);
			memcpy(CMSG_DATA(c), fds, sizeof(int) * (size_t)nfds);
		}
		ssize_t r = sendmsg(fd, &m, MSG_NOSIGNAL);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && (errno == EPIPE || errno == ECONNRESET))
			return -1;
		if (r < 0)
			err(FAIL, "sendmsg");
		off += (size_t)r;
	}
	return 0;
}

static int send_frame(int fd, int type, const void *payload, size_t len)
{
	struct bytes b = { 0 };
	add_frame(&b, type, payload, len);
	int r = send_msg(fd, &b, NULL, 0);
	free(b.p);
	return r;
}

/* ---- reading frames, descriptors alongside ---- */

struct conn {
	int fd, seq, eof;
	struct bytes in;     /* read and not yet taken */
	int fds[MAX_HOLD];   /* every descriptor received, in order */
	size_t nfds;
	const char *trouble; /* what was wrong with the control data */
};

static void take_fds(struct conn *c, struct msghdr *m)
{
	for (struct cmsghdr *h = CMSG_FIRSTHDR(m); h; h = CMSG_NXTHDR(m, h)) {
		if (h->cmsg_level != SOL_SOCKET || h->cmsg_type != SCM_RIGHTS) {
			c->trouble = "a control message other than SCM_RIGHTS";
			continue;
		}
		size_t n = (h->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < n; i++) {
			int fd;
			memcpy(&fd, CMSG_DATA(h) + i * sizeof fd, sizeof fd);
			if (c->nfds < MAX_HOLD) {
				c->fds[c->nfds++] = fd;
			} else {
				close(fd);
				c->trouble = "more descriptors than it can hold";
			}
		}
	}
	if (m->msg_flags & MSG_CTRUNC)
		c->trouble = "truncated control data (MSG_CTRUNC)";
	if (m->msg_flags & MSG_TRUNC)
		c->trouble = "a record over 65536 bytes";
}

/* Read on: on a stream at most WANT bytes, so that nothing of the next frame,
 * descriptors included, comes early; on SOCK_SEQPACKET one whole record. */
static void read_more(struct conn *c, size_t want)
{
	union { struct cmsghdr h; char buf[CMSG_SPACE(sizeof(int) * MAX_N)]; } u;
	size_t n = c->seq ? RECORD : want;
	reserve(&c->in, n);
	struct iovec iov = { c->in.p + c->in.len, n };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1,
			    .msg_control = u.buf, .msg_controllen = sizeof u.buf };
	ssize_t r;
	do
		r = recvmsg(c->fd, &m, MSG_CMSG_CLOEXEC);
	while (r < 0 && errno == EINTR);
	if (r < 0 && errno != ECONNRESET)
		err(FAIL, "recvmsg");
	if (r <= 0) {
		c->eof = 1;
		return;
	}
	c->in.len += (size_t)r;
	take_fds(c, &m);
}

static int need(struct conn *c, size_t n)
{
	while (c->in.len < n && !c->eof)
		read_more(c, n - c->in.len);
	return c->in.len >= n;
}

struct frame {
	int type, version; /* type 0: the peer closed between frames */
	uint32_t len;
	unsigned char *p;
};

/* The next frame, its payload copied into F; NULL, or why the bytes are no frame. */
static const char *read_frame(struct conn *c, struct frame *f, uint32_t max)
{
	static char why[80];
	free(f->p);
	memset(f, 0, sizeof *f);
	if (!need(c, 12))
		return c->in.len ? "the connection ended inside a frame header" : NULL;
	const unsigned char *h = c->in.p;
	f->version = h[4];
	f->type = h[5];
	f->len = le32(h + 8);
	if (memcmp(h, "FDHO", 4))
		return "bad magic";
	if (f->version == 0)
		return "version 0";
	if (f->type < OFFER || f->type > REFUSED) {
		snprintf(why, sizeof why, "unknown frame type %d", f->type);
		return why;
	}
	if (f->len > max) {
		snprintf(why, sizeof why, "a frame of %u bytes, over %u", f->len, max);
		return why;
	}
	if (!need(c, 12 + (size_t)f->len))
		return "the connection ended inside a frame";
	f->p = malloc((size_t)f->len + 1);
	if (!f->p)
		err(FAIL, "malloc");
	memcpy(f->p, c->in.p + 12, f->len);
	c->in.len -= 12 + (size_t)f->len;
	memmove(c->in.p, c->in.p + 12 + f->len, c->in.len);
	return NULL;
}

static void close_fds(struct conn *c)
{
	for (size_t i = 0; i < c->nfds; i++)
		close(c->fds[i]);
	c->nfds = 0;
}

/* ---- the receiver ---- */

struct ropts {
	int seq, no_close;
	long held_count, held_len, extra; /* -1: the right count and length */
	const char *refuse, *refuse_early;
};

/* Close what came, answer REFUSED with the reason and hang up at once. */
static _Noreturn void refuse(struct conn *c, const char *text)
{
	struct bytes r = unescape(text);
	close_fds(c);
	send_frame(c->fd, REFUSED, r.p, r.len);
	close(c->fd);
	print_reason("refused: ", r.p, r.len);
	exit(3);
}

static _Noreturn void sender_refused(struct conn *c, const struct frame *f)
{
	close_fds(c);
	close(c->fd);
	print_reason("refused by sender: ", f->p, f->len);
	exit(3);
}

/* NULL, or why the names of an OFFER are bad: COUNT NUL-terminated printable
 * ASCII names of at most 255 bytes, no colon. */
static const char *check_names(const unsigned char *p, uint32_t len, uint32_t count)
{
	uint32_t seen = 0, start = 0;
	for (uint32_t i = 0; i < len; i++) {
		if (p[i] == 0) {
			if (i - start > 255)
				return "bad names: one is over 255 bytes";
			seen++;
			start = i + 1;
		} else if (p[i] < 0x20 || p[i] > 0x7e || p[i] == ':') {
			return "bad names: a byte that is not printable ASCII, or a colon";
		}
	}
	if (start != len)
		return "bad names: the last one has no NUL";
	if (seen != count)
		return "bad names: not one per descriptor";
	return NULL;
}

static void print_offer(const struct frame *f, uint32_t count, uint32_t flags)
{
	uint32_t names_len = le32(f->p + 8);
	printf("offer v%d count=%u flags=%u names=", f->version, count, flags);
	for (uint32_t i = 0; i + 1 < names_len; i++)
		putchar(f->p[12 + i] ? f->p[12 + i] : '|');
	putchar('\n');
}

/* Read and check the OFFER; NULL, or the reason to refuse it. */
static const char *recv_offer(struct conn *c, uint32_t *count, uint32_t *flags)
{
	static char why[80];
	struct frame f = { 0 };
	const char *bad = read_frame(c, &f, MAX_PAYLOAD);
	if (bad)
		return bad;
	if (f.type == 0)
		return "the sender closed before its OFFER";
	if (f.type == REFUSED)
		sender_refused(c, &f);
	if (f.type != OFFER) {
		snprintf(why, sizeof why, "a frame of type %d, expected OFFER", f.type);
		return why;
	}
	if (f.len < 12 || le32(f.p + 8) > f.len - 12)
		return "bad length: OFFER";
	*count = le32(f.p);
	*flags = le32(f.p + 4);
	if (*flags & ~NOWAIT)
		return "flag bits other than bit 0";
	if (*count < 1 || *count > MAX_COUNT)
		return "a count not from 1 to 1048576";
	if (*count > MAX_HOLD)
		return "more descriptors than this peer holds";
	if ((bad = check_names(f.p + 12, le32(f.p + 8), *count)))
		return bad;
	print_offer(&f, *count, *flags);
	free(f.p);
	return c->trouble;
}

/* Read FDS frames until their n add up to COUNT, checking each frame's
 * descriptors once it is whole; NULL, or the reason to refuse. */
static const char *recv_fds(struct conn *c, uint32_t count)
{
	static char why[120];
	struct frame f = { 0 };
	uint32_t sum = 0;
	for (int k = 1; sum < count; k++) {
		const char *bad = read_frame(c, &f, MAX_PAYLOAD);
		if (bad)
			return bad;
		if (f.type == 0)
			return "the sender closed before its last FDS frame";
		if (f.type == REFUSED)
			sender_refused(c, &f);
		if (f.type != FDS)
			snprintf(why, sizeof why, "a frame of type %d, expected FDS", f.type);
		else if (f.len < 4)
			snprintf(why, sizeof why, "bad length: FDS frame %d of %u bytes", k, f.len);
		else if (le32(f.p) < 1 || le32(f.p) > MAX_N || le32(f.p) > count - sum)
			snprintf(why, sizeof why, "FDS frame %d: n=%u (%u of %u announced left)",
				 k, le32(f.p), count - sum, count);
		else if (c->trouble)
			return c->trouble;
		else if (c->nfds != sum + le32(f.p))
			snprintf(why, sizeof why, "FDS frame %d: n=%u, but %zu descriptors came with it",
				 k, le32(f.p), c->nfds - sum);
		else {
			sum += le32(f.p);
			continue;
		}
		return why;
	}
	free(f.p);
	return NULL;
}

static void print_fds(const struct conn *c)
{
	for (size_t i = 0; i < c->nfds; i++) {
		char link[32], target[PATH_MAX];
		snprintf(link, sizeof link, "/proc/self/fd/%d", c->fds[i]);
		ssize_t n = readlink(link, target, sizeof target - 1);
		target[n < 0 ? 0 : n] = 0;
		printf("#%zu %s\n", i, target);
	}
}

/* HELD with COUNT (or the wrong one asked for), EXTRA zero bytes after it,
 * all cut to HELD_LEN bytes when asked. */
static void answer_held(struct conn *c, const struct ropts *o, uint32_t count)
{
	struct bytes b = { 0 };
	uint32_t held = o->held_count >= 0 ? (uint32_t)o->held_count : count;
	add32(&b, held);
	for (long i = 0; i < o->extra; i++)
		add(&b, "", 1);
	if (o->held_len >= 0 && (size_t)o->held_len < b.len)
		b.len = (size_t)o->held_len;
	send_frame(c->fd, HELD, b.p, b.len);
	printf("held %u\n", held);
	free(b.p);
}

static int recv_opts(int argc, char **argv, struct ropts *o)
{
	int i = 2;
	*o = (struct ropts){ .held_count = -1, .held_len = -1, .extra = 0 };
	for (; i < argc - 1 && !strncmp(argv[i], "--", 2); i++) {
		const char *a = argv[i], *v = argv[i + 1];
		if (!strcmp(a, "--v1"))
			version = 1;
		else if (!strcmp(a, "--version") && ++i)
			version = (int)number(v, 255);
		else if (!strcmp(a, "--seqpacket"))
			o->seq = 1;
		else if (!strcmp(a, "--no-close"))
			o->no_close = 1;
		else if (!strcmp(a, "--held-count") && ++i)
			o->held_count = number(v, UINT32_MAX);
		else if (!strcmp(a, "--held-len") && ++i)
			o->held_len = number(v, 4);
		else if (!strcmp(a, "--extra") && ++i)
			o->extra = number(v, 70000);
		else if (!strcmp(a, "--refuse") && ++i)
			o->refuse = v;
		else if (!strcmp(a, "--refuse-early") && ++i)
			o->refuse_early = v;
		else
			errx(FAIL, "recv: unknown option %s\n%s", a, usage);
	}
	if (i != argc - 1)
		errx(FAIL, "%s", usage);
	return i;
}

static int cmd_recv(int argc, char **argv)
{
	struct ropts o;
	const char *path = argv[recv_opts(argc, argv, &o)];
	static struct conn c;
	uint32_t count = 0, flags = 0;
	static const unsigned char zeros[70000];
	setvbuf(stdout, NULL, _IOLBF, 0);
	c.seq = o.seq;
	c.fd = accept_one(listen_at(path, o.seq ? SOCK_SEQPACKET : SOCK_STREAM, 8), path);
	if (version >= 2)
		send_frame(c.fd, GO, zeros, (size_t)o.extra); /* the greeting, at once */
	if (o.refuse_early)
		refuse(&c, o.refuse_early);
	const char *bad = recv_offer(&c, &count, &flags);
	if (bad)
		refuse(&c, bad);
	if (version == 1 && !(flags & NOWAIT))
		send_frame(c.fd, GO, zeros, (size_t)o.extra); /* a version 1 go-ahead */
	if ((bad = recv_fds(&c, count)))
		refuse(&c, bad);
	print_fds(&c);
	if (o.refuse)
		refuse(&c, o.refuse);
	answer_held(&c, &o, count);
	while (o.no_close && !c.eof) /* until the sender hangs up */
		read_more(&c, 4096);
	return 0;
}

/* ---- the sender ---- */

struct sopts {
	int listen, seq, nframes;
	const char *names, *refuse;
	uint32_t n[4096]; /* FDS frame k: n[k] announced, carry[k] of the FDs ride with it */
	int carry[4096];
};

/* Print a line and exit with STATUS: how the handoff ended, for the sender. */
static _Noreturn void end(int status, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	exit(status);
}

/* Read the receiver's frames: print each answer and exit with the handoff's
 * status; return only at the first GO when UNTIL_GO. */
static void await(struct conn *c, uint32_t count, int until_go, int all_sent)
{
	struct frame f = { 0 };
	for (;;) {
		const char *bad = read_frame(c, &f, RECORD);
		if (bad)
			end(3, "bad answer: %s", bad);
		if (f.type == 0)
			end(greeted ? 3 : 6, "closed %s greeting", greeted ? "after" : "without");
		if (f.type == REFUSED) {
			print_reason("refused: ", f.p, f.len);
			exit(3);
		}
		if (f.type == HELD && f.len < 4)
			end(3, "bad answer: HELD of %u bytes", f.len);
		if (f.type == HELD && le32(f.p) != count)
			end(3, "bad answer: HELD of %u, expected %u", le32(f.p), count);
		if (f.type == HELD && !all_sent)
			end(3, "bad answer: HELD before all FDS frames went");
		if (f.type == HELD)
			end(0, "held %u", count);
		if (f.type != GO)
			end(3, "bad answer: a frame of type %d", f.type);
		if (greeted)
			end(3, "bad answer: a second GO");
		greeted = 1;
		printf("greeted\n");
		if (until_go)
			return;
	}
}

/* The OFFER payload: COUNT, flags, then the names (A:B:..., default unnamed). */
static struct bytes offer_payload(uint32_t count, const char *names)
{
	struct bytes o = { 0 }, nb = { 0 };
	uint32_t seen = 0;
	if (names) /* colons become NULs, and the last name gets one */
		add(&nb, names, strlen(names) + 1);
	for (size_t i = 0; i < nb.len; i++) {
		nb.p[i] = nb.p[i] == ':' ? 0 : nb.p[i];
		seen += nb.p[i] == 0;
	}
	for (; seen < count; seen++) /* the rest unnamed */
		add(&nb, "", 1);
	if (seen > count)
		errx(FAIL, "send: %u names for %u descriptors", seen, count);
	add32(&o, count);
	add32(&o, version >= 2 ? NOWAIT : 0);
	add32(&o, (uint32_t)nb.len);
	add(&o, nb.p, nb.len);
	free(nb.p);
	return o;
}

/* An FDS frame announcing N descriptors. */
static void add_fds_frame(struct bytes *b, uint32_t n)
{
	struct bytes p = { 0 };
	add32(&p, n);
	add_frame(b, FDS, p.p, p.len);
	free(p.p);
}

/* --frames N/K,...: frame k announces N and carries K; by default frames of
 * up to 253, each carrying what it announces. */
static void plan_frames(struct sopts *o, const char *spec, int nfds)
{
	int used = 0;
	for (o->nframes = 0; spec && *spec && o->nframes < 4096; o->nframes++) {
		unsigned n;
		int k, len;
		if (sscanf(spec, "%u/%d%n", &n, &k, &len) != 2 || k < 0 || k > MAX_N)
			errx(FAIL, "send: bad --frames at %s", spec);
		o->n[o->nframes] = n;
		o->carry[o->nframes] = k;
		used += k;
		spec += len + (spec[len] == ',');
	}
	for (; !spec && used < nfds && o->nframes < 4096; o->nframes++) {
		int k = nfds - used < MAX_N ? nfds - used : MAX_N;
		o->n[o->nframes] = (uint32_t)k;
		o->carry[o->nframes] = k;
		used += k;
	}
	if (used != nfds)
		errx(FAIL, "send: the frames carry %d descriptors, not %d", used, nfds);
}

static int send_opts(int argc, char **argv, struct sopts *o)
{
	int i = 2;
	const char *frames = NULL;
	for (; i < argc && !strncmp(argv[i], "--", 2); i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : "";
		if (!strcmp(a, "--v1"))
			version = 1;
		else if (!strcmp(a, "--version") && ++i)
			version = (int)number(v, 255);
		else if (!strcmp(a, "--listen"))
			o->listen = 1;
		else if (!strcmp(a, "--seqpacket"))
			o->seq = 1;
		else if (!strcmp(a, "--names") && ++i)
			o->names = v;
		else if (!strcmp(a, "--frames") && ++i)
			frames = v;
		else if (!strcmp(a, "--refuse") && ++i)
			o->refuse = v;
		else
			errx(FAIL, "send: unknown option %s\n%s", a, usage);
	}
	if (i > argc - 2)
		errx(FAIL, "%s", usage);
	plan_frames(o, frames, argc - i - 1);
	return i;
}

static int open_peer(const char *addr, const struct sopts *o)
{
	if (!strncmp(addr, "fd:", 3))
		return (int)number(addr + 3, INT_MAX);
	if (o->listen)
		return accept_one(listen_at(addr, o->seq ? SOCK_SEQPACKET : SOCK_STREAM, 8), addr);
	return connect_to(addr);
}

/* Refuse after the OFFER (a version 1 sender: after the go-ahead), and hang up. */
static _Noreturn void send_refusal(struct conn *c, struct bytes *offer, const char *text)
{
	struct bytes r = unescape(text);
	if (send_msg(c->fd, offer, NULL, 0) == 0 && version == 1)
		await(c, 0, 1, 0);
	send_frame(c->fd, REFUSED, r.p, r.len);
	close(c->fd);
	print_reason("refused the receiver: ", r.p, r.len);
	exit(3);
}

static int cmd_send(int argc, char **argv)
{
	static struct sopts o;
	static struct conn c;
	int i = send_opts(argc, argv, &o), nfds = argc - i - 1, fds[MAX_HOLD], used = 0, k = 0;
	uint32_t count = 0;
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (nfds > MAX_HOLD)
		errx(FAIL, "send: at most %d descriptors", MAX_HOLD);
	for (int j = 0; j < nfds; j++)
		fds[j] = (int)number(argv[i + 1 + j], INT_MAX);
	for (int j = 0; j < o.nframes; j++)
		count += o.n[j];
	c.fd = open_peer(argv[i], &o);
	c.seq = is_seqpacket(c.fd);
	struct bytes payload = offer_payload(count, o.names), msg = { 0 };
	add_frame(&msg, OFFER, payload.p, payload.len);
	if (o.refuse)
		send_refusal(&c, &msg, o.refuse);
	int gone = 0;
	if (version >= 2 && msg.len + 16 <= RECORD && o.nframes > 0) { /* OFFER + first FDS frame */
		add_fds_frame(&msg, o.n[0]);
		gone = send_msg(c.fd, &msg, fds, o.carry[0]);
		used = o.carry[k++];
	} else {
		gone = send_msg(c.fd, &msg, NULL, 0);
		if (!gone && version == 1)
			await(&c, count, 1, 0); /* the go-ahead */
	}
	for (; !gone && k < o.nframes; used += o.carry[k++]) {
		msg.len = 0;
		add_fds_frame(&msg, o.n[k]);
		gone = send_msg(c.fd, &msg, fds + used, o.carry[k]);
	}
	await(&c, count, 0, !gone);
	return FAIL; /* not reached: await exits */
}

/* ---- util-linux's plain peers ---- */

/* plainrecv PATH TARGET CMD...: one recvmsg of 1 byte with room for exactly one
 * descriptor, no acknowledgement; that descriptor goes to TARGET in CMD. */
static int cmd_plainrecv(int argc, char **argv)
{
	if (argc < 5)
		errx(FAIL, "%s", usage);
	int target = (int)number(argv[3], INT_MAX), fd = -1;
	int lfd = listen_at(argv[2], SOCK_STREAM, 1);
	int cfd = accept(lfd, NULL, NULL);
	if (cfd < 0)
		err(FAIL, "accept");
	char byte;
	union { struct cmsghdr h; char buf[CMSG_SPACE(sizeof(int))]; } u;
	struct iovec iov = { &byte, 1 };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1,
			    .msg_control = u.buf, .msg_controllen = sizeof u.buf };
	if (recvmsg(cfd, &m, 0) < 0)
		err(FAIL, "recvmsg");
	struct cmsghdr *h = CMSG_FIRSTHDR(&m);
	if (h && h->cmsg_level == SOL_SOCKET && h->cmsg_type == SCM_RIGHTS &&
	    h->cmsg_len >= CMSG_LEN(sizeof(int)))
		memcpy(&fd, CMSG_DATA(h), sizeof fd);
	close(cfd);
	close(lfd);
	unlink(argv[2]);
	if (fd < 0)
		errx(1, "no descriptor received");
	if (fd != target && (dup2(fd, target) < 0 || close(fd) < 0))
		err(FAIL, "dup2");
	execvp(argv[4], argv + 4);
	err(errno == ENOENT ? 127 : 126, "%s", argv[4]);
}

/* plainsend PATH FD: one sendmsg of the byte 0x20 with FD, then close. */
static int cmd_plainsend(int argc, char **argv)
{
	if (argc != 4)
		errx(FAIL, "%s", usage);
	struct sockaddr_un sa;
	socklen_t len = mkaddr(&sa, argv[2]);
	int fd = (int)number(argv[3], INT_MAX);
	int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		err(FAIL, "socket");
	if (connect(s, (struct sockaddr *)&sa, len) < 0)
		err(1, "connect %s", argv[2]);
	struct bytes b = { 0 };
	add(&b, " ", 1);
	if (send_msg(s, &b, &fd, 1) < 0)
		err(1, "sendmsg");
	close(s);
	return 0;
}

int main(int argc, char **argv)
{
	const char *c = argc > 1 ? argv[1] : "";
	if (!strcmp(c, "recv"))
		return cmd_recv(argc, argv);
	if (!strcmp(c, "send"))
		return cmd_send(argc, argv);
	if (!strcmp(c, "plainrecv"))
		return cmd_plainrecv(argc, argv);
	if (!strcmp(c, "plainsend"))
		return cmd_plainsend(argc, argv);
	fprintf(stderr, "%s", usage);
	return FAIL;
}
