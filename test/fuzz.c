/* SPDX-License-Identifier: MIT */
/* fuzz.c: feeds bytes, as a peer would send them, through the receiver's
 * framing (inbox_frame) and offer parser (parse_offer). Built with clang's
 * libFuzzer by 'make fuzz'; built with -DREPLAY it replays files instead
 * (test/corpus/, where inputs that once crashed it are kept). */
#include "../common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const unsigned char *p = NULL;
	struct inbox ib;
	uint32_t len = 0;
	int sv[2], type = 0;

	/* the socket buffer must hold it all: the reader never blocks */
	if (size > 100000)
		return 0;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		abort();
	if (size && write(sv[0], data, size) != (ssize_t)size)
		abort();
	close(sv[0]);
	inbox_init(&ib, sv[1]);
	while (inbox_frame(&ib, &type, &p, &len, DONT_WAIT) == 1) {
		struct offer o;

		if (type == T_OFFER && !parse_offer(p, len, &o)) {
			for (uint32_t i = 0; i < o.count; i++)
				if (!name_ok(o.names[i], strlen(o.names[i])))
					abort();
			free(o.names);
		}
	}
	inbox_free(&ib);
	close(sv[1]);
	return 0;
}

#ifdef REPLAY
int main(int argc, char **argv)
{
	static uint8_t buf[100000];

	for (int i = 1; i < argc; i++) {
		FILE *f = fopen(argv[i], "rb");
		size_t n;

		if (!f)
			err(1, "%s", argv[i]);
		n = fread(buf, 1, sizeof(buf), f);
		fclose(f);
		LLVMFuzzerTestOneInput(buf, n);
	}
	printf("%d inputs replayed\n", argc - 1);
	return 0;
}
#endif
