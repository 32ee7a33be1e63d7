/* SPDX-License-Identifier: MIT */
/* rawserve: the floor for `fdsend --serve`: hands descriptor 3 to every
 * client with the same frames and round trips (OFFER, GO, FDS, HELD), but
 * no checking, no timeouts, no poll. Runs until killed.
 * Usage: rawserve PATH */
#include <err.h>
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static void take(int fd, size_t len)
{
	char buf[64];

	while (len) {
		ssize_t r = read(fd, buf, len);

		if (r <= 0)
			return;
		len -= (size_t)r;
	}
}

int main(int argc, char **argv)
{
	static const unsigned char offer[] = {
		'F', 'D', 'H', 'O', 1, 1, 0, 0, 13, 0, 0, 0,
		1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0 };   /* one unnamed fd */
	static unsigned char fds[] = {
		'F', 'D', 'H', 'O', 1, 3, 0, 0, 4, 0, 0, 0, 1, 0, 0, 0 };
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int lfd, one = 3;

	if (argc != 2)
		errx(2, "usage: rawserve PATH");
	strncpy(sa.sun_path, argv[1], sizeof(sa.sun_path) - 1);
	lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    listen(lfd, 128) < 0)
		err(1, "%s", argv[1]);
	for (;;) {
		union {
			struct cmsghdr h;
			char b[CMSG_SPACE(sizeof(int))];
		} u;
		struct iovec iov = { fds, sizeof(fds) };
		struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1,
				    .msg_control = u.b, .msg_controllen = sizeof(u.b) };
		struct cmsghdr *c = CMSG_FIRSTHDR(&m);
		int conn = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);

		if (conn < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			err(1, "accept");
		}
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &one, sizeof(int));
		if (send(conn, offer, sizeof(offer), MSG_NOSIGNAL) == sizeof(offer)) {
			take(conn, 12);                          /* GO */
			if (sendmsg(conn, &m, MSG_NOSIGNAL) == sizeof(fds))
				take(conn, 16);                  /* HELD */
		}
		close(conn);
	}
}
