/* SPDX-License-Identifier: MIT */
/* nop: the tiny program both receivers exec at the end of a benchmark round. */
int main(void)
{
	return 0;
}
