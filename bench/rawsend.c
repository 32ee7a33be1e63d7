/* SPDX-License-Identifier: MIT */
/* rawsend: the floor for fdsend: connect (retrying at once while nobody
 * listens yet), send descriptors 3 .. N+2 in messages of up to 253, exit.
 * Usage: rawsend PATH N */
#include <err.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	long n;
	int s;

	if (argc != 3 || (n = atol(argv[2])) < 1)
		errx(2, "usage: rawsend PATH N");
	strncpy(sa.sun_path, argv[1], sizeof(sa.sun_path) - 1);
	if ((s = socket(AF_UNIX, SOCK_STREAM, 0)) < 0)
		err(1, "socket");
	while (connect(s, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		if (errno != ENOENT && errno != ECONNREFUSED && errno != EINTR)
			err(1, "%s", argv[1]);
	for (long done = 0; done < n;) {
		union {
			struct cmsghdr h;
			char b[CMSG_SPACE(253 * sizeof(int))];
		} u;
		long k = n - done > 253 ? 253 : n - done;
		char byte = 0;
		struct iovec iov = { &byte, 1 };
		struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.b,
				    .msg_controllen = CMSG_SPACE(k * sizeof(int)) };
		struct cmsghdr *c = CMSG_FIRSTHDR(&m);

		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(k * sizeof(int));
		for (long i = 0; i < k; i++) {
			int fd = 3 + (int)(done + i);

			memcpy(CMSG_DATA(c) + i * sizeof(int), &fd, sizeof(int));
		}
		if (sendmsg(s, &m, MSG_NOSIGNAL) < 0) {
			if (errno == EINTR)
				continue;
			err(1, "sendmsg");
		}
		done += k;
	}
	return 0;
}
