#!/bin/sh
# SPDX-License-Identifier: MIT
# bench/run.sh: times fdsend/fdrecv against raw C floors and prints one table;
# run by `make bench` (which builds bench/*.c first) from the repository root.
#
# Every timed figure is a median over many rounds, tool and floor rounds
# interleaved in the same run (bench/driver.c), so machine noise hits both.
# The targets are informative: the exit status is 0 unless something broke.
set -eu
cd "$(dirname "$0")/.."

tmp=$(mktemp -d "${TMPDIR:-/tmp}/fdbench.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT TERM HUP

# a copy of the tools as they are now: a rebuild meanwhile (SANITIZE=1 ...)
# must not change what is measured halfway
mkdir "$tmp/bin"
cp fdsend fdrecv test/server "$tmp/bin/"
export FDBENCH_TOOLS="$tmp/bin"

begin=$(date +%s)
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
echo "fdsend/fdrecv benchmark, $(date '+%Y-%m-%d %H:%M:%S %Z')"
echo "machine: $(nproc) CPUs, Linux $(uname -r), ${cpu:-unknown CPU}"
if git diff --quiet HEAD -- fdsend.c fdrecv.c common.h 2>/dev/null; then
	echo "tools: commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
else
	echo "tools: commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown) + uncommitted changes"
fi
if readelf -d "$tmp/bin/fdsend" "$tmp/bin/fdrecv" 2>/dev/null | grep -q -e libasan -e libubsan; then
	echo "warning: the tools are built with SANITIZE=1: the figures mean little"
	export ASAN_OPTIONS=detect_leaks=0   # LeakSanitizer cannot run traced
fi
echo "floor: raw C programs in bench/ (rawrecv, rawsend, rawserve), same spawn and exec (bench/nop)"
echo "tool, floor: medians; ratio: tool/floor; ci95: 95% bootstrap interval of the ratio"
echo "restart rows: tool = requests in windows that begin with a restart (fdrecv -c --replace"
echo "  --ready notify, test/server -n), floor = the same client in windows without one, in turn"
echo
row() {   # case rounds tool floor ratio ci95 target verdict
	printf '%-26s %6s %11s %11s %7s %9s  %-10s %s\n' "$@"
}
row case rounds tool floor ratio ci95 target verdict

drive() {
	bench/driver "$tmp" "$@"
}

# ROUNDS, then a time bound per case (fewer rounds when the machine crawls;
# all cases together stay well under 3 minutes)

# 1. one descriptor end to end, both orders
drive handoff recv-first 1 400 25
drive handoff send-first 1 400 25

# 2. many descriptors in one handoff
drive handoff recv-first 1000 100 12
drive handoff send-first 1000 100 12
drive handoff recv-first 10000 40 15
drive handoff send-first 10000 40 15

# 3. holder throughput
if "$tmp/bin/fdsend" --help 2>/dev/null | grep -q -- --serve; then
	drive holder 40 250
else
	echo "holder: skipped (fdsend has no --serve yet)"
fi

# 4. client-visible latency over 20 restarts behind a holder, against none:
# windows of 50 ms (a restart takes 10 to 30 ms), with and without a restart
# in turn; a few seconds
if "$tmp/bin/fdrecv" --help 2>/dev/null | grep -q -- --replace; then
	drive restart 20 50
else
	echo "restart: skipped (fdrecv has no --replace yet)"
fi

# 5. stripped sizes (floor column: the raw counterpart), then peak RSS
mkdir "$tmp/strip"
for pair in fdsend:rawsend fdrecv:rawrecv; do
	tool=${pair%%:*}
	raw=${pair#*:}
	cp "$tmp/bin/$tool" "bench/$raw" "$tmp/strip/"
	strip "$tmp/strip/$tool" "$tmp/strip/$raw"
	t=$(stat -c %s "$tmp/strip/$tool")
	f=$(stat -c %s "$tmp/strip/$raw")
	if [ "$t" -le 49152 ]; then verdict=PASS; else verdict=MISS; fi
	row "size $tool, stripped" - \
	    "$(awk -v b="$t" 'BEGIN { printf "%.1f KiB", b / 1024 }')" \
	    "$(awk -v b="$f" 'BEGIN { printf "%.1f KiB", b / 1024 }')" \
	    "$(awk -v t="$t" -v f="$f" 'BEGIN { printf "%.2fx", t / f }')" - \
	    "<= 48 KiB" "$verdict"
done
drive rss 1
drive rss 10000

# 6. the same sources linked statically, with glibc and with musl (built by
# make bench where the compiler is there): size, and one descriptor
for build in static-glibc static-musl; do
	if ! [ -x "bench/$build/fdsend" ] || ! [ -x "bench/$build/fdrecv" ]; then
		echo "$build: not built (no compiler or static libc for it)"
		continue
	fi
	mkdir "$tmp/$build"
	cp "bench/$build/fdsend" "bench/$build/fdrecv" "$tmp/$build/"
	strip "$tmp/$build/fdsend" "$tmp/$build/fdrecv"
	for tool in fdsend fdrecv; do
		t=$(stat -c %s "$tmp/$build/$tool")
		row "size $tool, $build" - \
		    "$(awk -v b="$t" 'BEGIN { printf "%.1f KiB", b / 1024 }')" - - - - -
	done
	FDBENCH_TOOLS="$tmp/$build" FDBENCH_BUILD=$build drive handoff recv-first 1 400 15
	FDBENCH_TOOLS="$tmp/$build" FDBENCH_BUILD=$build drive handoff send-first 1 400 15
done

echo
echo "elapsed: $(($(date +%s) - begin)) s"
