/* SPDX-License-Identifier: MIT */
/* rawrecv: the floor for fdrecv: bind, listen, accept, receive N descriptors
 * (SCM_RIGHTS, up to 253 a message), place them at 3, 4, ..., exec.
 * Usage: rawrecv PATH N PROGRAM [ARG...] */
#include <err.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	long n, got = 0;
	int lfd, conn, *fds;

	if (argc < 4 || (n = atol(argv[2])) < 1)
		errx(2, "usage: rawrecv PATH N PROGRAM [ARG...]");
	if (!(fds = malloc((size_t)n * sizeof(int))))
		err(1, "malloc");
	strncpy(sa.sun_path, argv[1], sizeof(sa.sun_path) - 1);
	lfd = socket(AF_UNIX, SOCK_STREAM, 0);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    listen(lfd, 16) < 0)
		err(1, "%s", argv[1]);
	if ((conn = accept(lfd, NULL, NULL)) < 0)
		err(1, "accept");
	unlink(argv[1]);
	while (got < n) {
		union {
			struct cmsghdr h;
			char b[CMSG_SPACE(253 * sizeof(int))];
		} u;
		char data[256];
		struct iovec iov = { data, sizeof(data) };
		struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1,
				    .msg_control = u.b, .msg_controllen = sizeof(u.b) };
		struct cmsghdr *c;

		if (recvmsg(conn, &m, 0) <= 0)
			err(1, "recvmsg");
		for (c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
			size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);

			if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS ||
			    (long)k > n - got)
				errx(1, "unexpected control data");
			memcpy(fds + got, CMSG_DATA(c), k * sizeof(int));
			got += (long)k;
		}
	}
	/* they arrived ascending above the listener and the connection
	 * (fds[i] >= 5 + i), so placing them in order clobbers nothing */
	for (long i = 0; i < n; i++)
		if (fds[i] < 3 + i || dup2(fds[i], 3 + (int)i) < 0)
			errx(1, "cannot place fd %d at %ld", fds[i], 3 + i);
	close_range(3 + (unsigned)n, ~0U, 0);
	execv(argv[3], argv + 3);
	err(127, "%s", argv[3]);
}
