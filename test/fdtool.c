// SPDX-License-Identifier: MIT
/* fdtool: the bats suite's helper -- makes descriptors, checks them, and plays plain or broken peers. */
#include <dirent.h>
#include <err.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <poll.h>
#include <sched.h>
#include <time.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/xattr.h>

#define FAIL 99 /* helper trouble, distinct from every status the tools use */

static const char usage[] =
	"usage: fdtool mk KIND FD [ARG] CMD...   (chainable; KIND: pair-stream pair-seqpacket\n"
	"                 pair-dgram pipe (ARG = 2nd fd), tcp tcplisten tcp6listen udp unixsock\n"
	"                 eventfd epoll, unixlisten unixconnect opath (ARG = address or file),\n"
	"                 nonblock (flags FD itself); inet ports in $FDTOOL_PORT_<FD>)\n"
	"       fdtool memfds [-n] N CMD...      N memfds of size 1..N at 3..N+2, exec CMD FDS...\n"
	"       fdtool checkfds N [FIRST]       verify those memfds and LISTEN_* variables\n"
	"       fdtool lsfd | write FD TEXT | stale ADDR\n"
	"       fdtool plainsend ADDR FD... | plainrecv ADDR | fakerecv MODE ADDR\n"
	"                 (MODE: vanish mute refuse:TEXT take-vanish slow-held)\n"
	"       fdtool rawsend ADDR HEX [FD...]\n"
	"       fdtool rawclose ADDR HEX [FD...] | credsend ADDR HEX [FD...] | stall ADDR\n"
	"       fdtool sink ADDR | answerfd[-connect] ADDR WFD RFD | connectonce PATH FD CMD...\n"
	"       fdtool xattr FILE NAME\n"
	"       fdtool serve1 TYPE PATH | send1 TYPE PATH TEXT   (TYPE: stream seqpacket dgram)\n"
	"       fdtool brokenstderr CMD... | flood ADDR N HEX | fill FD\n";

static int num(const char *s)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < 0 || v > INT_MAX)
		errx(FAIL, "bad number: %s", s);
	return (int)v;
}

/* Move fds src[i] to dst[i]; going through high numbers first makes overlaps harmless. */
static void place(int *src, const int *dst, int n)
{
	int hi = 0;
	for (int i = 0; i < n; i++)
		if (dst[i] >= hi)
			hi = dst[i] + 1;
	for (int i = 0; i < n; i++) {
		int tmp = fcntl(src[i], F_DUPFD_CLOEXEC, hi);
		if (tmp < 0)
			err(FAIL, "fcntl F_DUPFD");
		close(src[i]);
		src[i] = tmp;
	}
	for (int i = 0; i < n; i++) {
		if (dup2(src[i], dst[i]) < 0)
			err(FAIL, "dup2 %d", dst[i]);
		close(src[i]);
	}
}

static socklen_t mkaddr(struct sockaddr_un *sa, const char *s)
{
	size_t n = strlen(s);
	memset(sa, 0, sizeof *sa);
	sa->sun_family = AF_UNIX;
	if (n >= sizeof sa->sun_path)
		errx(FAIL, "%s: address too long", s);
	if (s[0] == '@') { /* abstract: leading NUL, exact length */
		memcpy(sa->sun_path + 1, s + 1, n - 1);
		return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
	}
	memcpy(sa->sun_path, s, n);
	return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
}

/* Like fdrecv: a path appears only once it is listening (bind a temporary name, then rename). */
static int listen_at(const char *addr)
{
	struct sockaddr_un sa;
	char tmp[sizeof sa.sun_path + 8];
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		err(FAIL, "socket");
	if (addr[0] == '@') {
		socklen_t len = mkaddr(&sa, addr);
		if (bind(fd, (struct sockaddr *)&sa, len) < 0 || listen(fd, 8) < 0)
			err(FAIL, "%s", addr);
		return fd;
	}
	snprintf(tmp, sizeof tmp, "%s.tmp", addr);
	socklen_t len = mkaddr(&sa, tmp);
	if (bind(fd, (struct sockaddr *)&sa, len) < 0 || listen(fd, 8) < 0)
		err(FAIL, "%s", tmp);
	if (rename(tmp, addr) < 0)
		err(FAIL, "rename %s", addr);
	return fd;
}

static int accept_one(int lfd, const char *addr)
{
	int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	if (fd < 0)
		err(FAIL, "accept");
	close(lfd);
	if (addr[0] != '@')
		unlink(addr); /* leave no socket file behind */
	return fd;
}

static int connect_to(const char *addr)
{
	static const int types[] = { SOCK_STREAM, SOCK_SEQPACKET };
	struct sockaddr_un sa;
	socklen_t len = mkaddr(&sa, addr);
	for (size_t i = 0; i < 2; i++) {
		int fd = socket(AF_UNIX, types[i] | SOCK_CLOEXEC, 0);
		if (fd < 0)
			err(FAIL, "socket");
		if (connect(fd, (struct sockaddr *)&sa, len) == 0)
			return fd;
		if (errno != EPROTOTYPE)
			err(FAIL, "connect %s", addr);
		close(fd);
	}
	errx(FAIL, "connect %s: no usable socket type", addr);
}

static void read_full(int fd, void *buf, size_t n, const char *what)
{
	for (size_t got = 0; got < n;) {
		ssize_t r = read(fd, (char *)buf + got, n - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			err(FAIL, "read %s", what);
		if (r == 0) {
			printf("EOF in %s\n", what);
			exit(1);
		}
		got += (size_t)r;
	}
}

static void drain(int fd) /* until the peer closes; the caller's timeout bounds it */
{
	char buf[4096];
	while (read(fd, buf, sizeof buf) > 0 || errno == EINTR)
		errno = 0;
}

static uint32_t le32(const unsigned char *p)
{
	return p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void send_frame(int fd, int type, const void *payload, uint32_t len)
{
	unsigned char h[12] = { 'F', 'D', 'H', 'O', 2, (unsigned char)type, 0, 0,
				(unsigned char)len, (unsigned char)(len >> 8),
				(unsigned char)(len >> 16), (unsigned char)(len >> 24) };
	if (send(fd, h, sizeof h, MSG_NOSIGNAL) != sizeof h ||
	    (len && send(fd, payload, len, MSG_NOSIGNAL) != (ssize_t)len))
		err(FAIL, "send frame");
}

static int sock_fd(int domain, int type)
{
	int fd = socket(domain, type | SOCK_CLOEXEC, 0);
	if (fd < 0)
		err(FAIL, "socket");
	return fd;
}

static void bind_inet(int fd, int family, int dolisten, int dst)
{
	struct sockaddr_storage ss;
	socklen_t len;
	char port[16], var[32];
	memset(&ss, 0, sizeof ss);
	if (family == AF_INET) {
		struct sockaddr_in *in = (struct sockaddr_in *)&ss;
		in->sin_family = AF_INET;
		in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		len = sizeof *in;
	} else {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
		in6->sin6_family = AF_INET6;
		in6->sin6_addr = in6addr_loopback;
		len = sizeof *in6;
	}
	if (bind(fd, (struct sockaddr *)&ss, len) < 0) {
		if (family == AF_INET6)
			exit(77); /* no IPv6 here: the test skips */
		err(FAIL, "bind");
	}
	if (dolisten && listen(fd, 8) < 0)
		err(FAIL, "listen");
	if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
		err(FAIL, "getsockname");
	snprintf(port, sizeof port, "%u", ntohs(family == AF_INET ?
		 ((struct sockaddr_in *)&ss)->sin_port : ((struct sockaddr_in6 *)&ss)->sin6_port));
	snprintf(var, sizeof var, "FDTOOL_PORT_%d", dst); /* the port, for the expected output */
	setenv(var, port, 1);
}

/* mk KIND FD [ARG] CMD...: put one new descriptor (or two) at FD, then exec CMD. */
static int cmd_mk(int argc, char **argv)
{
	if (argc < 4)
		errx(FAIL, "%s", usage);
	const char *kind = argv[1];
	int dst[2] = { num(argv[2]), -1 }, src[2], n = 1, used = 3;
	int two = !strncmp(kind, "pair-", 5) || !strcmp(kind, "pipe");
	const char *arg = argv[3];
	if (two || !strcmp(kind, "unixlisten") || !strcmp(kind, "unixconnect") ||
	    !strcmp(kind, "opath"))
		used = 4;
	if (argc <= used)
		errx(FAIL, "mk %s: no command", kind);
	if (two) {
		int type = !strcmp(kind, "pair-stream") ? SOCK_STREAM :
			   !strcmp(kind, "pair-seqpacket") ? SOCK_SEQPACKET : SOCK_DGRAM;
		dst[1] = num(arg);
		n = 2;
		if (!strcmp(kind, "pipe") ? pipe2(src, O_CLOEXEC) < 0 :
		    socketpair(AF_UNIX, type | SOCK_CLOEXEC, 0, src) < 0)
			err(FAIL, "%s", kind);
	} else if (!strcmp(kind, "tcp")) {
		src[0] = sock_fd(AF_INET, SOCK_STREAM);
	} else if (!strcmp(kind, "tcplisten") || !strcmp(kind, "tcp6listen")) {
		int fam = kind[3] == '6' ? AF_INET6 : AF_INET;
		src[0] = sock_fd(fam, SOCK_STREAM);
		bind_inet(src[0], fam, 1, dst[0]);
	} else if (!strcmp(kind, "udp")) {
		src[0] = sock_fd(AF_INET, SOCK_DGRAM);
		bind_inet(src[0], AF_INET, 0, dst[0]);
	} else if (!strcmp(kind, "unixsock")) {
		src[0] = sock_fd(AF_UNIX, SOCK_STREAM);
	} else if (!strcmp(kind, "unixlisten")) {
		struct sockaddr_un sa;
		socklen_t len = mkaddr(&sa, arg);
		src[0] = sock_fd(AF_UNIX, SOCK_STREAM);
		if (bind(src[0], (struct sockaddr *)&sa, len) < 0 || listen(src[0], 8) < 0)
			err(FAIL, "%s", arg);
	} else if (!strcmp(kind, "unixconnect")) { /* the listener need not accept */
		struct sockaddr_un sa;
		socklen_t len = mkaddr(&sa, arg);
		src[0] = sock_fd(AF_UNIX, SOCK_STREAM);
		if (connect(src[0], (struct sockaddr *)&sa, len) < 0)
			err(FAIL, "connect %s", arg);
	} else if (!strcmp(kind, "eventfd")) {
		if ((src[0] = eventfd(0, EFD_CLOEXEC)) < 0)
			err(FAIL, "eventfd");
	} else if (!strcmp(kind, "epoll")) {
		if ((src[0] = epoll_create1(EPOLL_CLOEXEC)) < 0)
			err(FAIL, "epoll");
	} else if (!strcmp(kind, "opath")) {
		if ((src[0] = open(arg, O_PATH | O_CLOEXEC)) < 0)
			err(FAIL, "%s", arg);
	} else if (!strcmp(kind, "nonblock")) { /* flag an existing fd, keep it where it is */
		int fl = fcntl(dst[0], F_GETFL);
		if (fl < 0 || fcntl(dst[0], F_SETFL, fl | O_NONBLOCK) < 0)
			err(FAIL, "nonblock %d", dst[0]);
		n = 0;
	} else {
		errx(FAIL, "mk: unknown kind %s", kind);
	}
	place(src, dst, n);
	execvp(argv[used], argv + used);
	err(argv[used][0] && errno == ENOENT ? 127 : 126, "%s", argv[used]);
}

/* memfds [-n] N CMD...: N distinguishable fds at 3..N+2 (memfd i has size i+1). */
static int cmd_memfds(int argc, char **argv)
{
	int named = argc > 1 && !strcmp(argv[1], "-n");
	argv += named;
	argc -= named;
	if (argc < 3)
		errx(FAIL, "%s", usage);
	int n = num(argv[1]);
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		err(FAIL, "getrlimit");
	if (rl.rlim_cur < (rlim_t)n + 64) {
		if (rl.rlim_max < (rlim_t)n + 64)
			errx(77, "RLIMIT_NOFILE hard limit %llu too low for %d fds",
			     (unsigned long long)rl.rlim_max, n);
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
			err(FAIL, "setrlimit");
	}
	for (int i = 0; i < n; i++) {
		char name[32];
		snprintf(name, sizeof name, "fdtool-%d", i);
		int fd = memfd_create(name, MFD_CLOEXEC);
		if (fd < 0 || ftruncate(fd, i + 1) < 0)
			err(FAIL, "memfd %d", i);
		if (fd != 3 + i) {
			if (dup2(fd, 3 + i) < 0)
				err(FAIL, "dup2");
			close(fd);
		} else if (fcntl(fd, F_SETFD, 0) < 0) {
			err(FAIL, "fcntl");
		}
	}
	int cmdc = argc - 2, k = 0;
	char **av = calloc((size_t)cmdc + (size_t)n + 3, sizeof *av);
	char *names = malloc((size_t)n * 12 + 1), *p = names;
	if (!av || !names)
		err(FAIL, "malloc");
	av[k++] = argv[2];
	if (named) { /* options must precede SOCKET: put --fdname right after the program */
		for (int i = 0; i < n; i++)
			p += sprintf(p, "%sfd%d", i ? ":" : "", i);
		av[k++] = "--fdname";
		av[k++] = names;
	}
	for (int i = 3; i < argc; i++)
		av[k++] = argv[i];
	for (int i = 0; i < n; i++)
		if (asprintf(&av[k++], "%d", 3 + i) < 0)
			err(FAIL, "asprintf");
	execvp(av[0], av);
	err(errno == ENOENT ? 127 : 126, "%s", av[0]);
}

/* checkfds N [FIRST]: fds FIRST.. are the memfds of cmd_memfds, in order; show LISTEN_*. */
static int cmd_checkfds(int argc, char **argv)
{
	if (argc < 2)
		errx(FAIL, "%s", usage);
	int n = num(argv[1]), first = argc > 2 ? num(argv[2]) : 3;
	for (int i = 0; i < n; i++) {
		struct stat st;
		char link[64], want[64];
		int fd = first + i;
		snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
		ssize_t r = readlink(link, want, sizeof want - 1);
		want[r < 0 ? 0 : r] = 0;
		if (fstat(fd, &st) < 0) {
			printf("fd %d: not open\n", fd);
			return 1;
		}
		if (st.st_size != i + 1 || strncmp(want, "/memfd:fdtool-", 14)) {
			printf("fd %d: expected memfd #%d, found %s size %lld\n", fd, i, want,
			       (long long)st.st_size);
			return 1;
		}
	}
	printf("fds %d..%d: %d memfds in order\n", first, first + n - 1, n);

	const char *fds = getenv("LISTEN_FDS"), *pid = getenv("LISTEN_PID");
	const char *names = getenv("LISTEN_FDNAMES");
	char self[24];
	snprintf(self, sizeof self, "%d", (int)getpid());
	printf("LISTEN_FDS=%s LISTEN_PID=%s\n", fds ? fds : "(unset)",
	       !pid ? "(unset)" : strcmp(pid, self) ? pid : "(self)");
	if (!names) {
		printf("LISTEN_FDNAMES=(unset)\n");
		return 0;
	}
	size_t len = strlen(names);
	char *seq = malloc((size_t)n * 12 + 1), *unk = malloc((size_t)n * 8 + 1);
	char *p = seq, *q = unk;
	if (!seq || !unk)
		err(FAIL, "malloc");
	*p = *q = 0;
	for (int i = 0; i < n; i++) {
		p += sprintf(p, "%sfd%d", i ? ":" : "", i);
		q += sprintf(q, "%sunknown", i ? ":" : "");
	}
	if (!strcmp(names, seq))
		printf("LISTEN_FDNAMES=fd0:...:fd%d\n", n - 1);
	else if (!strcmp(names, unk))
		printf("LISTEN_FDNAMES=unknown x %d\n", n);
	else
		printf("LISTEN_FDNAMES=%.200s%s\n", names, len > 200 ? "..." : "");
	return 0;
}

static int cmp_int(const void *a, const void *b)
{
	return *(const int *)a - *(const int *)b;
}

/* lsfd: this process's open descriptors, ascending, on one line. */
static int cmd_lsfd(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int fds[4096], n = 0;
	if (!d)
		err(FAIL, "/proc/self/fd");
	while ((e = readdir(d)) && n < 4096)
		if (e->d_name[0] != '.' && atoi(e->d_name) != dirfd(d))
			fds[n++] = atoi(e->d_name);
	closedir(d);
	qsort(fds, (size_t)n, sizeof *fds, cmp_int);
	for (int i = 0; i < n; i++)
		printf("%s%d", i ? " " : "", fds[i]);
	printf("\n");
	return 0;
}

static size_t parse_hex(const char *s, unsigned char *out, size_t size)
{
	size_t n = 0;
	for (; *s && n < size; s++) {
		unsigned v;
		if (*s == ' ')
			continue;
		if (sscanf(s, "%2x", &v) != 1 || !s[1])
			errx(FAIL, "bad hex at %s", s);
		out[n++] = (unsigned char)v;
		s++;
	}
	if (*s)
		errx(FAIL, "hex too long");
	return n;
}

/* Sends these bytes in one sendmsg, FDs attached (and our credentials first when creds). */
static void send_with(int fd, const unsigned char *buf, size_t n, char **fdargs, int nfd, int creds)
{
	union { char buf[CMSG_SPACE(sizeof(struct ucred)) + CMSG_SPACE(253 * sizeof(int))];
		struct cmsghdr align; } u;
	struct iovec iov = { (void *)buf, n };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
	size_t len = 0;
	memset(&u, 0, sizeof u);
	msg.msg_control = u.buf;
	if (creds) {
		struct ucred cr = { getpid(), getuid(), getgid() };
		msg.msg_controllen = CMSG_SPACE(sizeof cr);
		struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_CREDENTIALS;
		c->cmsg_len = CMSG_LEN(sizeof cr);
		memcpy(CMSG_DATA(c), &cr, sizeof cr);
		len = CMSG_SPACE(sizeof cr);
	}
	if (nfd) {
		struct cmsghdr *c = (struct cmsghdr *)(u.buf + len);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN((size_t)nfd * sizeof(int));
		for (int i = 0; i < nfd; i++) {
			int v = num(fdargs[i]);
			memcpy(CMSG_DATA(c) + i * sizeof(int), &v, sizeof v);
		}
		len += CMSG_SPACE((size_t)nfd * sizeof(int));
	}
	msg.msg_controllen = len;
	if (!len)
		msg.msg_control = NULL;
	if (sendmsg(fd, &msg, MSG_NOSIGNAL) != (ssize_t)n)
		err(FAIL, "sendmsg");
}

/* plainsend ADDR FD...: a sender that knows nothing of the protocol: 1 byte + SCM_RIGHTS. */
static int cmd_plainsend(int argc, char **argv)
{
	if (argc < 3 || argc - 2 > 253)
		errx(FAIL, "%s", usage);
	int fd = connect_to(argv[1]);
	send_with(fd, (const unsigned char *)"x", 1, argv + 2, argc - 2, 0);
	drain(fd); /* stay connected: the receiver must not wait for more bytes */
	return 0;
}

/* plainrecv ADDR: a receiver that knows nothing of the protocol: one recvmsg. */
static int cmd_plainrecv(int argc, char **argv)
{
	if (argc != 2)
		errx(FAIL, "%s", usage);
	int fd = accept_one(listen_at(argv[1]), argv[1]);
	static unsigned char buf[65536];
	union { char buf[CMSG_SPACE(253 * sizeof(int))]; struct cmsghdr align; } u;
	struct iovec iov = { buf, sizeof buf };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf,
			      .msg_controllen = sizeof u.buf };
	ssize_t r;
	while ((r = recvmsg(fd, &msg, MSG_CMSG_CLOEXEC)) < 0 && errno == EINTR)
		;
	if (r < 0)
		err(FAIL, "recvmsg");
	if (r >= 6)
		printf("first frame: magic=%.4s version=%d type=%d\n", buf, buf[4], buf[5]);
	else
		printf("first frame: %zd bytes\n", r);
	if (msg.msg_flags & MSG_CTRUNC)
		printf("control data truncated\n");
	int count = 0;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		int k = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
		for (int i = 0; i < k; i++, count++) {
			int got;
			char link[64], target[PATH_MAX];
			memcpy(&got, CMSG_DATA(c) + i * sizeof(int), sizeof got);
			snprintf(link, sizeof link, "/proc/self/fd/%d", got);
			ssize_t t = readlink(link, target, sizeof target - 1);
			target[t < 0 ? 0 : t] = 0;
			printf("#%d %s\n", count, target);
		}
	}
	printf("descriptors: %d\n", count);
	return 0;
}

/* What a fake receiver has read: bytes not yet taken, descriptors closed on arrival. */
struct stream {
	int fd;
	unsigned char b[65536 + 16];
	size_t have;
	uint32_t nfds;
};

/* Reads until at least n bytes are there; 0 at EOF first. */
static int stream_need(struct stream *st, size_t n)
{
	union { char buf[CMSG_SPACE(253 * sizeof(int))]; struct cmsghdr align; } u;

	while (st->have < n) {
		struct iovec iov = { st->b + st->have, sizeof st->b - st->have };
		struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf,
				      .msg_controllen = sizeof u.buf };
		ssize_t r = recvmsg(st->fd, &msg, MSG_CMSG_CLOEXEC);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			err(FAIL, "recvmsg");
		if (r == 0)
			return 0;
		for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
			int k = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
			for (int i = 0; i < k; i++, st->nfds++) {
				int got;
				memcpy(&got, CMSG_DATA(c) + i * sizeof(int), sizeof got);
				close(got);
			}
		}
		st->have += (size_t)r;
	}
	return 1;
}

static void stream_drop(struct stream *st, size_t n)
{
	memmove(st->b, st->b + n, st->have - n);
	st->have -= n;
}

/* The FDS frames of count descriptors; how many descriptors came in all, or -1. */
static int read_fds_frames(struct stream *st, uint32_t count)
{
	uint32_t framed = 0;

	while (framed < count) {
		if (!stream_need(st, 16)) {
			printf("EOF in fds frames\n");
			return -1;
		}
		if (memcmp(st->b, "FDHO", 4) || st->b[5] != 3) {
			printf("not an fds frame: type %d\n", st->b[5]);
			return -1;
		}
		framed += le32(st->b + 12);
		stream_drop(st, 16);
	}
	return (int)st->nfds;
}

/* slow-held: take the FDS frames and their descriptors, then trickle HELD one byte
 * every 0.5 s */
static int slow_held(struct stream *st, uint32_t count)
{
	unsigned char held[16] = { 'F', 'D', 'H', 'O', 2, 4, 0, 0, 4, 0, 0, 0 };
	int fd = st->fd, nfds = read_fds_frames(st, count);

	if (nfds < 0)
		return 1;
	printf("fds frames: %d descriptors\n", nfds);
	fflush(stdout);
	held[12] = (unsigned char)count;
	held[13] = (unsigned char)(count >> 8);
	held[14] = (unsigned char)(count >> 16);
	held[15] = (unsigned char)(count >> 24);
	for (int i = 0; i < 16; i++) {
		struct timespec half = { 0, 500000000 };
		if (i)
			nanosleep(&half, NULL);
		if (send(fd, held + i, 1, MSG_NOSIGNAL) != 1) {
			printf("held: %d of 16 bytes sent, then: %s\n", i, strerror(errno));
			return 0;
		}
	}
	printf("held: all 16 bytes sent\n");
	return 0;
}

/* fakerecv MODE ADDR: greet, read fdsend's OFFER, print it, then vanish | mute |
 * refuse:TEXT | take-vanish | slow-held. */
static int cmd_fakerecv(int argc, char **argv)
{
	if (argc != 3)
		errx(FAIL, "%s", usage);
	const char *mode = argv[1];
	static struct stream st;
	st.fd = accept_one(listen_at(argv[2]), argv[2]);
	/* the greeting; a --no-ack sender may be gone already */
	static const unsigned char go[12] = { 'F', 'D', 'H', 'O', 2, 2 };
	if (send(st.fd, go, sizeof go, MSG_NOSIGNAL) < 0 && errno != EPIPE)
		err(FAIL, "greeting");
	if (!stream_need(&st, 12)) {
		printf("EOF in header\n");
		return 1;
	}
	uint32_t len = le32(st.b + 8);
	if (memcmp(st.b, "FDHO", 4) || st.b[4] < 1 || st.b[5] != 1 || len < 12 ||
	    len > 65536) {
		printf("not an offer: %.4s v%d type %d len %u\n", st.b, st.b[4], st.b[5], len);
		return 1;
	}
	if (!stream_need(&st, 12 + len)) {
		printf("EOF in payload\n");
		return 1;
	}
	unsigned char *pl = st.b + 12;
	uint32_t count = le32(pl), flags = le32(pl + 4), nlen = le32(pl + 8);
	printf("offer v%d count=%u flags=%u names=", st.b[4], count, flags);
	for (uint32_t i = 12; i < 12 + nlen && i < len; i++)
		if (pl[i])
			putchar(pl[i]);
		else
			fputs(i + 1 < 12 + nlen ? "|" : "", stdout);
	printf("\n");
	fflush(stdout);
	stream_drop(&st, 12 + len);
	if (!strcmp(mode, "vanish"))
		return 0;
	if (!strcmp(mode, "mute")) {
		drain(st.fd);
		return 0;
	}
	if (!strncmp(mode, "refuse:", 7)) {
		send_frame(st.fd, 5, mode + 7, (uint32_t)strlen(mode + 7));
		drain(st.fd);
		return 0;
	}
	if (!strcmp(mode, "take-vanish")) {
		int n = read_fds_frames(&st, count);
		if (n >= 0)
			printf("fds frames: %d descriptors\n", n);
		return 0;
	}
	if (!strcmp(mode, "slow-held"))
		return slow_held(&st, count);
	errx(FAIL, "fakerecv: unknown mode %s", mode);
}

static void print_answer(int fd);

/* rawsend ADDR HEX [FD...]: send these bytes (FDs attached) and print the first answer frame. */
static int cmd_rawsend(int argc, char **argv)
{
	if (argc < 3 || argc - 3 > 253)
		errx(FAIL, "%s", usage);
	int fd = connect_to(argv[1]);
	static unsigned char out[65536];
	size_t n = parse_hex(argv[2], out, sizeof out);
	send_with(fd, out, n, argv + 3, argc - 3, 0);
	print_answer(fd);
	return 0;
}

/* stale ADDR: leave a socket file nobody listens on. */
static int cmd_stale(int argc, char **argv)
{
	if (argc != 2)
		errx(FAIL, "%s", usage);
	struct sockaddr_un sa;
	socklen_t len = mkaddr(&sa, argv[1]);
	int fd = sock_fd(AF_UNIX, SOCK_STREAM);
	if (bind(fd, (struct sockaddr *)&sa, len) < 0)
		err(FAIL, "%s", argv[1]);
	return 0;
}

/* ---- hostile and odd peers for hardening.bats ---- */

/* Reads up to n bytes; how many arrived before the end of the stream. */
static size_t read_some(int fd, void *buf, size_t n)
{
	size_t got = 0;
	while (got < n) {
		ssize_t r = read(fd, (char *)buf + got, n - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && errno == ECONNRESET)
			break;
		if (r < 0)
			err(FAIL, "read");
		if (r == 0)
			break;
		got += (size_t)r;
	}
	return got;
}

/* Prints the peer's first frame after its greeting (a GO first, from a
 * receiver: "REFUSED: why", "answer type N"), or how it left without one. */
static void print_answer(int fd)
{
	unsigned char h[12];
	size_t got = read_some(fd, h, sizeof h);
	if (got == sizeof h && h[5] == 2 && le32(h + 8) == 0)
		got = read_some(fd, h, sizeof h);
	if (got == 0) {
		printf("closed without an answer\n");
		return;
	}
	if (got < sizeof h) {
		printf("EOF in answer\n");
		return;
	}
	uint32_t len = le32(h + 8);
	char *pl = calloc(1, (size_t)len + 1);
	if (!pl)
		err(FAIL, "calloc");
	if (read_some(fd, pl, len) < len)
		printf("EOF in answer payload\n");
	else if (h[5] == 5)
		printf("REFUSED: %s\n", pl);
	else
		printf("answer type %d\n", h[5]);
	free(pl);
}

/* rawclose ADDR HEX [FD...]: send these bytes (FDs attached), shut down our side, print the answer. */
static int cmd_rawclose(int argc, char **argv)
{
	if (argc < 3 || argc - 3 > 253)
		errx(FAIL, "%s", usage);
	static unsigned char out[65536];
	int fd = connect_to(argv[1]);
	send_with(fd, out, parse_hex(argv[2], out, sizeof out), argv + 3, argc - 3, 0);
	if (shutdown(fd, SHUT_WR) < 0)
		err(FAIL, "shutdown");
	print_answer(fd);
	return 0;
}

/* credsend ADDR HEX [FD...]: like rawsend, with SO_PASSCRED set and SCM_CREDENTIALS beside SCM_RIGHTS. */
static int cmd_credsend(int argc, char **argv)
{
	if (argc < 3 || argc - 3 > 253)
		errx(FAIL, "%s", usage);
	static unsigned char out[65536];
	int one = 1, fd = connect_to(argv[1]);
	if (setsockopt(fd, SOL_SOCKET, SO_PASSCRED, &one, sizeof one) < 0)
		err(FAIL, "SO_PASSCRED");
	send_with(fd, out, parse_hex(argv[2], out, sizeof out), argv + 3, argc - 3, 1);
	print_answer(fd);
	return 0;
}

/* stall ADDR: connect, say "connected", send nothing; then print what the peer said on leaving. */
static int cmd_stall(int argc, char **argv)
{
	if (argc != 2)
		errx(FAIL, "%s", usage);
	int fd = connect_to(argv[1]);
	printf("connected\n");
	fflush(stdout);
	print_answer(fd);
	return 0;
}

/* sink ADDR: a receiver that accepts one connection and never reads; exits when the peer hangs up. */
static int cmd_sink(int argc, char **argv)
{
	if (argc != 2)
		errx(FAIL, "%s", usage);
	int fd = accept_one(listen_at(argv[1]), argv[1]);
	struct pollfd p = { .fd = fd, .events = POLLRDHUP };
	printf("accepted\n");
	fflush(stdout);
	while (poll(&p, 1, -1) < 0)
		if (errno != EINTR)
			err(FAIL, "poll");
	printf("peer hung up\n");
	return 0;
}

/* GO with WFD attached, our copy of WFD closed; then whether the pipe's read end RFD sees
 * EOF (every write end closed) within 5 s. */
static void answer_with_fd(int fd, char **argv)
{
	int wfd = num(argv[0]), rfd = num(argv[1]);
	unsigned char h[12], go[12] = { 'F', 'D', 'H', 'O', 1, 2, 0, 0, 0, 0, 0, 0 };
	read_full(fd, h, sizeof h, "header");
	uint32_t len = le32(h + 8);
	unsigned char *pl = malloc((size_t)len + 1);
	if (!pl)
		err(FAIL, "malloc");
	read_full(fd, pl, len, "payload");
	printf("offer count=%u\n", len >= 4 ? le32(pl) : 0);
	fflush(stdout);
	send_with(fd, go, sizeof go, argv, 1, 0);
	close(wfd);
	struct pollfd p = { .fd = rfd, .events = POLLIN };
	int r;
	char b;
	while ((r = poll(&p, 1, 5000)) < 0 && errno == EINTR)
		;
	if (r > 0 && read(rfd, &b, 1) == 0)
		printf("pipe read end saw EOF\n");
	else
		printf("pipe still open after 5 s\n");
	free(pl);
}

/* answerfd ADDR WFD RFD: a receiver that answers fdsend's OFFER with GO carrying WFD. */
static int cmd_answerfd(int argc, char **argv)
{
	if (argc != 4)
		errx(FAIL, "%s", usage);
	answer_with_fd(accept_one(listen_at(argv[1]), argv[1]), argv + 2);
	return 0;
}

/* answerfd-connect ADDR WFD RFD: the same, connecting to a holder (fdsend --serve). */
static int cmd_answerfd_connect(int argc, char **argv)
{
	if (argc != 4)
		errx(FAIL, "%s", usage);
	answer_with_fd(connect_to(argv[1]), argv + 2);
	return 0;
}

/* connectonce PATH FD CMD...: wait (spinning, up to 10 s) for PATH to appear, then connect
 * exactly once -- no retry -- and exec CMD with the connection at FD. */
static int cmd_connectonce(int argc, char **argv)
{
	if (argc < 4)
		errx(FAIL, "%s", usage);
	struct stat st;
	struct timespec t0, t1;
	int dst = num(argv[2]);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (lstat(argv[1], &st) < 0) {
		clock_gettime(CLOCK_MONOTONIC, &t1);
		if (t1.tv_sec - t0.tv_sec > 10)
			errx(FAIL, "%s did not appear", argv[1]);
		sched_yield();
	}
	struct sockaddr_un sa;
	socklen_t len = mkaddr(&sa, argv[1]);
	int fd = sock_fd(AF_UNIX, SOCK_STREAM);
	if (connect(fd, (struct sockaddr *)&sa, len) < 0) {
		printf("connect %s: %s\n", argv[1], strerror(errno));
		return 1;
	}
	place(&fd, &dst, 1);
	execvp(argv[3], argv + 3);
	err(argv[3][0] && errno == ENOENT ? 127 : 126, "%s", argv[3]);
}

/* ---- plain services, broken stderr and floods for hostile.bats ---- */

static int sock_type(const char *s)
{
	if (!strcmp(s, "stream"))
		return SOCK_STREAM;
	if (!strcmp(s, "seqpacket"))
		return SOCK_SEQPACKET;
	if (!strcmp(s, "dgram"))
		return SOCK_DGRAM;
	errx(FAIL, "unknown socket type %s (stream, seqpacket or dgram)", s);
}

/* serve1 TYPE PATH: a plain service bound at PATH (listening, but for dgram): says "ready",
 * prints the first message that has any text (a connection that says nothing, such as a
 * tool checking whether the path is in use, is skipped) and exits. The file stays. */
static int cmd_serve1(int argc, char **argv)
{
	if (argc != 3)
		errx(FAIL, "%s", usage);
	int type = sock_type(argv[1]), fd = sock_fd(AF_UNIX, type);
	struct sockaddr_un sa;
	socklen_t len = mkaddr(&sa, argv[2]);
	char buf[4096];
	size_t n = 0;
	if (bind(fd, (struct sockaddr *)&sa, len) < 0 ||
	    (type != SOCK_DGRAM && listen(fd, 8) < 0))
		err(FAIL, "%s", argv[2]);
	printf("ready\n");
	fflush(stdout);
	while (n == 0) {
		int c = fd;
		ssize_t r;
		if (type != SOCK_DGRAM && (c = accept4(fd, NULL, NULL, SOCK_CLOEXEC)) < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			err(FAIL, "accept");
		}
		if (type == SOCK_STREAM) { /* the whole stream, until the sender closes */
			while ((r = read(c, buf + n, sizeof buf - 1 - n)) > 0 ||
			       (r < 0 && errno == EINTR))
				n += r > 0 ? (size_t)r : 0;
		} else {
			while ((r = recv(c, buf, sizeof buf - 1, 0)) < 0 && errno == EINTR)
				;
			n = r > 0 ? (size_t)r : 0;
		}
		if (c != fd)
			close(c);
	}
	buf[n] = 0;
	printf("%s\n", buf);
	return 0;
}

/* send1 TYPE PATH TEXT: connect a socket of TYPE to PATH and send TEXT. */
static int cmd_send1(int argc, char **argv)
{
	if (argc != 4)
		errx(FAIL, "%s", usage);
	int fd = sock_fd(AF_UNIX, sock_type(argv[1]));
	struct sockaddr_un sa;
	socklen_t len = mkaddr(&sa, argv[2]);
	size_t n = strlen(argv[3]);
	if (connect(fd, (struct sockaddr *)&sa, len) < 0)
		err(FAIL, "connect %s", argv[2]);
	if (send(fd, argv[3], n, MSG_NOSIGNAL) != (ssize_t)n)
		err(FAIL, "send");
	return 0;
}

/* brokenstderr CMD...: exec CMD with stderr on a pipe whose read end is closed, and
 * SIGPIPE at its default (a write there kills, unless CMD sees to it). */
static int cmd_brokenstderr(int argc, char **argv)
{
	int p[2];
	if (argc < 2)
		errx(FAIL, "%s", usage);
	if (pipe(p) < 0)
		err(FAIL, "pipe");
	close(p[0]);
	if (p[1] != 2) {
		if (dup2(p[1], 2) < 0)
			err(FAIL, "dup2");
		close(p[1]);
	}
	signal(SIGPIPE, SIG_DFL);
	execvp(argv[1], argv + 1);
	return argv[1][0] && errno == ENOENT ? 127 : 126; /* nowhere to say it */
}

/* flood ADDR N HEX: N times connect (blocking), send these bytes, close at once; one
 * connection failing does not stop it. Prints how many went. */
static int cmd_flood(int argc, char **argv)
{
	if (argc != 4)
		errx(FAIL, "%s", usage);
	static unsigned char out[65536];
	struct sockaddr_un sa;
	socklen_t len = mkaddr(&sa, argv[1]);
	int n = num(argv[2]), sent = 0;
	size_t hl = parse_hex(argv[3], out, sizeof out);
	for (int i = 0; i < n; i++) {
		int fd = sock_fd(AF_UNIX, SOCK_STREAM);
		if (connect(fd, (struct sockaddr *)&sa, len) == 0 &&
		    send(fd, out, hl, MSG_NOSIGNAL) == (ssize_t)hl)
			sent++;
		close(fd);
	}
	printf("flood: %d of %d sent\n", sent, n);
	return 0;
}

/* fill FD: write to the pipe or FIFO at FD until it is full (FD's own open file is
 * non-blocking meanwhile); whoever writes there next would block. */
static int cmd_fill(int argc, char **argv)
{
	if (argc != 2)
		errx(FAIL, "%s", usage);
	int fd = num(argv[1]), fl = fcntl(fd, F_GETFL);
	static char buf[4096];
	memset(buf, 'x', sizeof buf);
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		err(FAIL, "fd %d", fd);
	for (size_t chunk = sizeof buf; chunk;) {
		ssize_t r = write(fd, buf, chunk);
		if (r < 0 && errno == EAGAIN)
			chunk = chunk > 1 ? 1 : 0; /* then byte by byte into what is left */
		else if (r < 0)
			err(FAIL, "write fd %d", fd);
	}
	if (fcntl(fd, F_SETFL, fl) < 0)
		err(FAIL, "fd %d", fd);
	return 0;
}

/* xattr FILE NAME: print the value of extended attribute NAME of FILE (exit 1 if it has none). */
static int cmd_xattr(int argc, char **argv)
{
	char buf[256];
	if (argc != 3)
		errx(FAIL, "%s", usage);
	ssize_t n = getxattr(argv[1], argv[2], buf, sizeof buf - 1);
	if (n < 0)
		return 1;
	buf[n] = 0;
	printf("%s\n", buf);
	return 0;
}

int main(int argc, char **argv)
{
	const char *c = argc > 1 ? argv[1] : "";
	argc--, argv++;
	if (!strcmp(c, "mk"))
		return cmd_mk(argc, argv);
	if (!strcmp(c, "memfds"))
		return cmd_memfds(argc, argv);
	if (!strcmp(c, "checkfds"))
		return cmd_checkfds(argc, argv);
	if (!strcmp(c, "lsfd"))
		return cmd_lsfd();
	if (!strcmp(c, "write") && argc == 3) {
		if (dprintf(num(argv[1]), "%s\n", argv[2]) < 0)
			err(FAIL, "write fd %s", argv[1]);
		return 0;
	}
	if (!strcmp(c, "plainsend"))
		return cmd_plainsend(argc, argv);
	if (!strcmp(c, "plainrecv"))
		return cmd_plainrecv(argc, argv);
	if (!strcmp(c, "fakerecv"))
		return cmd_fakerecv(argc, argv);
	if (!strcmp(c, "rawsend"))
		return cmd_rawsend(argc, argv);
	if (!strcmp(c, "stale"))
		return cmd_stale(argc, argv);
	if (!strcmp(c, "rawclose"))
		return cmd_rawclose(argc, argv);
	if (!strcmp(c, "credsend"))
		return cmd_credsend(argc, argv);
	if (!strcmp(c, "stall"))
		return cmd_stall(argc, argv);
	if (!strcmp(c, "sink"))
		return cmd_sink(argc, argv);
	if (!strcmp(c, "answerfd"))
		return cmd_answerfd(argc, argv);
	if (!strcmp(c, "answerfd-connect"))
		return cmd_answerfd_connect(argc, argv);
	if (!strcmp(c, "xattr"))
		return cmd_xattr(argc, argv);
	if (!strcmp(c, "connectonce"))
		return cmd_connectonce(argc, argv);
	if (!strcmp(c, "serve1"))
		return cmd_serve1(argc, argv);
	if (!strcmp(c, "send1"))
		return cmd_send1(argc, argv);
	if (!strcmp(c, "brokenstderr"))
		return cmd_brokenstderr(argc, argv);
	if (!strcmp(c, "flood"))
		return cmd_flood(argc, argv);
	if (!strcmp(c, "fill"))
		return cmd_fill(argc, argv);
	fputs(usage, stderr);
	return FAIL;
}
