#!/usr/bin/env bash
# Ballot and etcd side by side, in one run (make bench-compare; docs/performance.md,
# "Side by side with etcd"). This machine's speed drifts by tens of per cent
# between days and even minutes, so figures of the two only compare when taken
# together: for ROUNDS rounds, every cell runs on a fresh Ballot cluster
# (bin/benchmatrix) and right after on a fresh etcd cluster of as many members
# (bin/etcdmatrix), with the same load engine and settings. The figures come from
# the JSON report of each run. At the end it prints a markdown table, per cell:
# both throughputs, their ratio in every round and its median, p99 latencies and
# the servers' CPU time per operation; and writes the same to
# $BENCH_OUT/compare-YYYYMMDD-HHMMSS.md.
#
# Environment:
#   ROUNDS          rounds (default 3, at most 20)
#   BENCH_CELLS     cells as replicas:clients:value:op, separated by spaces
#                   (default "3:64:100:put 3:64:100:get 3:1:100:put"; op is put,
#                   get (linearizable) or stale)
#   BENCH_REPLICAS, BENCH_CLIENTS, BENCH_VALUES, BENCH_OPS
#                   if any is set (and BENCH_CELLS is not), the cells are every
#                   combination of them, the unset ones being 3, 64, 100, "put get"
#   BENCH_DURATION  measured time per cell (default 5s)
#   BENCH_WARMUP    warm-up per cell (default 1s)
#   BENCH_OUT       where the table is written (default bench/results)
#   BENCH_ETCD_SHARED=0
#                   give each etcd worker its own clientv3.Client, as each Ballot
#                   worker has its own client. The default (1) has etcd's workers
#                   share one, as etcd's own tools and most of its users do: gRPC
#                   multiplexes the calls, and etcd is much faster so
#                   (etcdmatrix -shared-client)
#   BALLOTD, BENCHMATRIX, ETCDMATRIX
#                   the binaries (default bin/ballotd, bin/benchmatrix, bin/etcdmatrix)
#
# Bounded: at most 20 rounds of at most 24 cells, and every run is stopped by
# `timeout` if it takes a minute and a half longer than its cell should.
# Exit status: 0 when every run measured its cell, 1 when one failed, 2 on bad
# settings.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

ROUNDS=${ROUNDS:-3}
DURATION=${BENCH_DURATION:-5s}
WARMUP=${BENCH_WARMUP:-1s}
OUT=${BENCH_OUT:-bench/results}
BALLOTD=${BALLOTD:-bin/ballotd}
BENCHMATRIX=${BENCHMATRIX:-bin/benchmatrix}
ETCDMATRIX=${ETCDMATRIX:-bin/etcdmatrix}
# etcd as it is used: its workers share one client (see above).
export BENCH_ETCD_SHARED=${BENCH_ETCD_SHARED:-1}

die() {
	echo "bench-compare: $*" >&2
	exit 2
}

# seconds D: the whole seconds, rounded up, of a Go duration such as 5s, 500ms
# or 1m30s (units h, m, s, ms).
seconds() {
	local d=$1 ms=0 n unit
	[[ $d =~ ^([0-9]+(h|ms|m|s))+$ ]] || return 1
	while [[ $d =~ ^([0-9]+)(h|ms|m|s)(.*)$ ]]; do
		n=${BASH_REMATCH[1]} unit=${BASH_REMATCH[2]} d=${BASH_REMATCH[3]}
		case $unit in
		h) ms=$((ms + n * 3600000)) ;;
		m) ms=$((ms + n * 60000)) ;;
		s) ms=$((ms + n * 1000)) ;;
		ms) ms=$((ms + n)) ;;
		esac
	done
	echo $(((ms + 999) / 1000))
}

[[ $ROUNDS =~ ^[0-9]+$ ]] && ((ROUNDS >= 1 && ROUNDS <= 20)) || die "ROUNDS=$ROUNDS: want 1 to 20"
dur_s=$(seconds "$DURATION") || die "BENCH_DURATION=$DURATION: want a duration such as 5s or 500ms"
warm_s=$(seconds "$WARMUP") || die "BENCH_WARMUP=$WARMUP: want a duration such as 1s or 500ms"
((dur_s > 0)) || die "BENCH_DURATION=$DURATION: want a positive duration"
command -v jq >/dev/null || die "needs jq to read the JSON reports (apt-get install jq)"
for bin in "$BALLOTD" "$BENCHMATRIX" "$ETCDMATRIX"; do
	[ -x "$bin" ] || die "$bin is missing: run make bench-compare, or make build, make bench and make bench-etcd first"
done

# The cells, as replicas:clients:value:op.
split() { tr ', ' '\n\n' <<<"$1" | sed '/^$/d'; }
cells=()
if [ -n "${BENCH_CELLS:-}" ]; then
	mapfile -t cells < <(split "$BENCH_CELLS")
elif [ -n "${BENCH_REPLICAS:-}${BENCH_CLIENTS:-}${BENCH_VALUES:-}${BENCH_OPS:-}" ]; then
	for r in $(split "${BENCH_REPLICAS:-3}"); do
		for v in $(split "${BENCH_VALUES:-100}"); do
			for op in $(split "${BENCH_OPS:-put get}"); do
				for c in $(split "${BENCH_CLIENTS:-64}"); do
					cells+=("$r:$c:$v:$op")
				done
			done
		done
	done
else
	cells=(3:64:100:put 3:64:100:get 3:1:100:put)
fi
((${#cells[@]} >= 1 && ${#cells[@]} <= 24)) || die "${#cells[@]} cells: want 1 to 24"
for cell in "${cells[@]}"; do
	[[ $cell =~ ^[0-9]+:[0-9]+:[0-9]+:(put|get|stale)$ ]] ||
		die "cell '$cell': want replicas:clients:value:op, op one of put, get, stale"
done

# Each run starts a cluster (a few seconds for etcd's first election), may
# preload 1,000 keys, warms up, measures and stops the cluster (up to 10 s).
limit=$((dur_s + warm_s + 90))
runs=$((ROUNDS * ${#cells[@]} * 2))
estimate=$((runs * (dur_s + warm_s + 4)))
stamp=$(date +%Y%m%d-%H%M%S)
mkdir -p "$OUT"
report="$OUT/compare-$stamp.md"
work=$(mktemp -d "${TMPDIR:-/tmp}/ballot-compare-XXXXXX")
trap 'rm -rf "$work"' EXIT

echo "bench-compare: $ROUNDS rounds of ${#cells[@]} cells, each on Ballot then on etcd: $runs runs of $DURATION + $WARMUP warm-up, about $((estimate / 60))m$((estimate % 60))s"

# figures.tsv: round, cell, system, error, ops/s, p50, p99, server CPU µs/op,
# client CPU µs/op, others' share, failed operations.
figures="$work/figures.tsv"
: >"$figures"
failed=0
run_cell() { # round cell-index system binary args...
	local round=$1 i=$2 sys=$3 bin=$4
	shift 4
	local dir="$work/$sys-$round-$i" cell=${cells[$i]} json row
	IFS=: read -r r c v op <<<"$cell"
	mkdir -p "$dir"
	local status=0
	timeout --kill-after=15s "${limit}s" "$bin" "$@" -replicas "$r" -clients "$c" -values "$v" -ops "$op" \
		-duration "$DURATION" -warmup "$WARMUP" -out "$dir" >"$dir/log" 2>&1 || status=$?
	if ((status != 0)); then
		echo "  $sys: run failed (exit $status$( ((status == 124)) && echo ", stopped after ${limit}s")); its output:"
		sed 's/^/    /' "$dir/log"
	fi
	grep '^\[1/1\]' "$dir/log" | sed "s/^\[1\/1\]/  $sys:/" || true
	json=$(find "$dir" -name '*.json' | head -n 1)
	row=""
	if [ -n "$json" ]; then
		row=$(jq -r '.cells[0] | select(. != null) | [(.error // "" | gsub("[\t\n]"; " ")), .ops_per_sec, .p50_ms, .p99_ms,
			.server_cpu_us_per_op, .client_cpu_us_per_op, .others_cpu_share, .errors] | @tsv' "$json")
	fi
	if [ -z "$row" ]; then
		row=$(printf 'no report\t0\t0\t0\t0\t0\t0\t0')
	fi
	case $row in
	$'\t'*) ;;
	*) failed=1 ;;
	esac
	printf '%s\t%s\t%s\t%s\n' "$round" "$i" "$sys" "$row" >>"$figures"
}

for round in $(seq 1 "$ROUNDS"); do
	for i in "${!cells[@]}"; do
		echo "round $round/$ROUNDS, cell ${cells[$i]}:"
		run_cell "$round" "$i" ballot "$BENCHMATRIX" -ballotd "$BALLOTD"
		run_cell "$round" "$i" etcd "$ETCDMATRIX"
	done
done

commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
if [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]; then
	commit="$commit with uncommitted changes"
fi
etcd_clients="each etcd worker with its own clientv3.Client, as each Ballot worker has its own client"
case ${BENCH_ETCD_SHARED:-} in
1 | t | T | true | TRUE | True) etcd_clients="etcd's workers sharing one clientv3.Client (one connection per member), each Ballot worker with its own client" ;;
esac
etcd_version=$(sed -n 's/^.*go\.etcd\.io\/etcd\/server\/v3 \(v[0-9.]*\).*$/\1/p' bench/etcd/go.mod | head -n 1)

{
	echo "# Ballot and etcd side by side, $(date -u '+%Y-%m-%d %H:%M UTC')"
	echo
	echo "- Machine: $(nproc) CPUs, Linux $(uname -r), Ballot at commit $commit, etcd ${etcd_version:-?} from bench/etcd/go.mod."
	echo "- $ROUNDS rounds; in each, every cell ran on a fresh Ballot cluster and right after on a fresh etcd cluster of as many members: $DURATION measured after $WARMUP of warm-up, 1,000 keys of 16 bytes, $etcd_clients, the load generator in the driver on the same two cores."
	echo "- ratio = Ballot ÷ etcd, of throughput or of the servers' CPU time per operation (summed over the cluster). Medians over the rounds; failed runs are left out."
	echo
	awk -F'\t' -v ncells="${#cells[@]}" -v cells="${cells[*]}" -v rounds="$ROUNDS" '
	function median(list,    a, n, i, j, t) {
		n = split(list, a, " ")
		if (n == 0) return ""
		for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j-1] + 0 > a[j] + 0; j--) { t = a[j]; a[j] = a[j-1]; a[j-1] = t }
		return n % 2 ? a[(n+1)/2] : (a[n/2] + a[n/2+1]) / 2
	}
	function name(i,    p, op) {
		split(cl[i+1], p, ":")
		op = p[4] == "get" ? "linearizable get" : p[4] == "stale" ? "stale get" : p[4]
		return p[1] (p[1] == 1 ? " node, " : " nodes, ") op ", " p[3] " B, " p[2] (p[2] == 1 ? " client" : " clients")
	}
	function thousands(x,    s, out) {
		s = sprintf("%.0f", x); out = ""
		while (length(s) > 3) { out = "," substr(s, length(s) - 2) out; s = substr(s, 1, length(s) - 3) }
		return s out
	}
	{
		k = $1 SUBSEP $2 SUBSEP $3
		row[NR] = $0; ok[k] = ($4 == ""); ops[k] = $5; p99[k] = $7; cpu[k] = $8
	}
	END {
		split(cells, cl, " ")
		print "| cell | Ballot ops/s | etcd ops/s | ops/s ratio per round | median ratio | p99 ms Ballot / etcd | CPU µs/op Ballot / etcd | CPU ratio |"
		print "|---|---:|---:|---|---:|---:|---:|---:|"
		for (i = 0; i < ncells; i++) {
			bo = eo = ratios = rl = bp = ep = bc = ec = cr = ""
			for (r = 1; r <= rounds; r++) {
				kb = r SUBSEP i SUBSEP "ballot"; ke = r SUBSEP i SUBSEP "etcd"
				if (ok[kb]) { bo = bo " " ops[kb]; bp = bp " " p99[kb]; bc = bc " " cpu[kb] }
				if (ok[ke]) { eo = eo " " ops[ke]; ep = ep " " p99[ke]; ec = ec " " cpu[ke] }
				if (ok[kb] && ok[ke] && ops[ke] > 0 && cpu[ke] > 0) {
					ratio = ops[kb] / ops[ke]
					ratios = ratios " " ratio; rl = rl (rl == "" ? "" : ", ") sprintf("%.2f", ratio)
					cr = cr " " cpu[kb] / cpu[ke]
				} else {
					rl = rl (rl == "" ? "" : ", ") "failed"
				}
			}
			m = median(ratios); c = median(cr)
			printf "| %s | %s | %s | %s | %s | %s / %s | %s / %s | %s |\n", name(i),
				bo == "" ? "failed" : thousands(median(bo)), eo == "" ? "failed" : thousands(median(eo)), rl,
				m == "" ? "—" : sprintf("**%.2f**", m),
				bp == "" ? "—" : sprintf("%.1f", median(bp)), ep == "" ? "—" : sprintf("%.1f", median(ep)),
				bc == "" ? "—" : sprintf("%.0f", median(bc)), ec == "" ? "—" : sprintf("%.0f", median(ec)),
				c == "" ? "—" : sprintf("%.2f", c)
		}
		print ""
		print "Every run, in the order they ran (others: CPU the rest of the machine used, as a share of both cores):"
		print ""
		print "| round | cell | system | ops/s | p50 ms | p99 ms | server CPU µs/op | client CPU µs/op | others | failed ops | error |"
		print "|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---|"
		for (n = 1; n <= NR; n++) {
			split(row[n], f, "\t")
			sys = f[3] == "ballot" ? "Ballot" : "etcd"
			if (f[4] != "") {
				gsub(/\|/, "/", f[4])
				printf "| %s | %s | %s | | | | | | | | %s |\n", f[1], name(f[2]), sys, f[4]
				continue
			}
			printf "| %s | %s | %s | %s | %.2f | %.2f | %.0f | %.0f | %.0f%% | %s | |\n", f[1], name(f[2]), sys,
				thousands(f[5]), f[6], f[7], f[8], f[9], 100 * f[10], f[11]
		}
	}' "$figures"
} >"$work/table.md"

echo
cat "$work/table.md"
cp "$work/table.md" "$report"
echo
echo "wrote $report"
exit "$failed"
