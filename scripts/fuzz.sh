#!/usr/bin/env bash
# Runs every Go fuzz target of the repository, one after another, for FUZZTIME
# each, and prints one summary line per target: its name and package, how long
# it ran, how many inputs it executed, executions per second, and the result.
# `go test -fuzz` takes one target per run, so the targets are found with
# `go test -list '^Fuzz'` (a new target is picked up without editing anything).
#
# A target that fails leaves its input under the package's testdata/fuzz/<target>/
# (go test prints the path); the full output of each run is kept in FUZZ_OUT.
#
# Environment:
#   FUZZTIME      how long each target runs: a Go duration, or Nx for N inputs
#                 (default: 60s)
#   FUZZPARALLEL  fuzzing workers per target (default: 2, the machine's cores)
#   FUZZMINIMIZE  -fuzzminimizetime: how hard go test shrinks a new input
#                 (default: 20x; the replica targets are stateful, so a long
#                 minimisation costs much and shrinks little)
#   FUZZ_OUT      directory for the logs (default: $TMPDIR/ballot-fuzz)
#   FUZZ_PKGS     packages to search (default: ./...)
#   FUZZ_RUN      regular expression: only the targets it matches
#
# Exit status: 0 when every target ran clean, 1 when one failed.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
GO=${GO:-go}
FUZZTIME=${FUZZTIME:-60s}
FUZZPARALLEL=${FUZZPARALLEL:-2}
FUZZMINIMIZE=${FUZZMINIMIZE:-20x}
FUZZ_OUT=${FUZZ_OUT:-${TMPDIR:-/tmp}/ballot-fuzz}
FUZZ_PKGS=${FUZZ_PKGS:-./...}
FUZZ_RUN=${FUZZ_RUN:-.}

# seconds converts a Go duration (1h30m, 90s, 2m) to seconds; empty for Nx.
seconds() {
	local d=$1 total=0 n unit
	[[ $d =~ ^[0-9]+x$ ]] && return 0
	while [[ $d =~ ^([0-9]+)(h|m|s)(.*)$ ]]; do
		n=${BASH_REMATCH[1]} unit=${BASH_REMATCH[2]} d=${BASH_REMATCH[3]}
		case $unit in
		h) total=$((total + n * 3600)) ;;
		m) total=$((total + n * 60)) ;;
		s) total=$((total + n)) ;;
		esac
	done
	if [[ -n $d ]]; then
		echo "fuzz: FUZZTIME=$1 is not a duration like 60s, 10m, 1h30m or a count like 5000x" >&2
		exit 2
	fi
	echo "$total"
}
budget=$(seconds "$FUZZTIME")
# A hung target ends five minutes past its time (go test then prints where it
# hangs); a count has no time to measure against.
timeout_flag=0
[[ -n $budget ]] && timeout_flag="$((budget + 300))s"

mkdir -p "$FUZZ_OUT"
module=$($GO list -m)

# Targets, as "package target" lines: `go test -list` prints a package's names,
# then "ok <package> <time>".
targets=()
pending=()
while IFS= read -r line; do
	case $line in
	Fuzz*) pending+=("$line") ;;
	ok*)
		pkg=$(awk '{print $2}' <<<"$line")
		for t in "${pending[@]}"; do
			[[ $t =~ $FUZZ_RUN ]] && targets+=("$pkg $t")
		done
		pending=()
		;;
	FAIL* | *"build failed"*)
		echo "fuzz: listing the targets failed: $line" >&2
		exit 1
		;;
	esac
done < <($GO test -list '^Fuzz' $FUZZ_PKGS 2>&1)
if ((${#targets[@]} == 0)); then
	echo "fuzz: no fuzz targets found in $FUZZ_PKGS matching '$FUZZ_RUN'" >&2
	exit 1
fi
echo "fuzz: ${#targets[@]} targets, $FUZZTIME each, $FUZZPARALLEL workers; logs in $FUZZ_OUT"

summary=()
failed=0
for entry in "${targets[@]}"; do
	read -r pkg target <<<"$entry"
	log="$FUZZ_OUT/$target.log"
	echo "fuzz: $target ($pkg) ..."
	start=$(date +%s)
	status=0
	$GO test -run '^$' -fuzz "^${target}\$" -fuzztime "$FUZZTIME" -fuzzminimizetime "$FUZZMINIMIZE" \
		-parallel "$FUZZPARALLEL" -timeout "$timeout_flag" "$pkg" >"$log" 2>&1 || status=$?
	took=$(($(date +%s) - start))
	# The last progress line has the totals: "fuzz: elapsed: 1m0s, execs: 55348 (888/sec), ...";
	# its elapsed time leaves out building the test binary.
	last=$(grep -a '^fuzz: elapsed: .*execs: ' "$log" | tail -n 1 || true)
	execs=$(grep -o 'execs: [0-9]*' <<<"$last" | awk '{print $2}' || true)
	execs=${execs:-0}
	elapsed=$(sed -n 's/^fuzz: elapsed: \([0-9hms]*\),.*/\1/p' <<<"$last")
	[[ -n $elapsed ]] && took=$(seconds "$elapsed")
	rate=$((took > 0 ? execs / took : execs))
	input=$(grep -a -o 'Failing input written to [^ ]*' "$log" | tail -n 1 | awk '{print $5}' || true)
	if ((status == 0)); then
		result=ok
	elif [[ -z $input ]] && grep -aq '^    context deadline exceeded$' "$log" &&
		! grep -aq -e '^        ' -e '^panic:' "$log"; then
		# Go 1.26's coordinator can report its own -fuzztime deadline as a
		# failure (go.dev/issue/75804): no input failed and none was written.
		result="ok (the go test deadline race of go.dev/issue/75804 at the end)"
	elif [[ -n $input ]]; then
		result="FAIL: input in $pkg/$input (see $log)"
		failed=1
	else
		result="FAIL: exit status $status (see $log)"
		failed=1
	fi
	line=$(printf '%-20s %-12s %6ss %10s execs %8s/s  %s' "$target" "./${pkg#"$module"/}" "$took" "$execs" "$rate" "$result")
	echo "fuzz: $line"
	summary+=("$line")
done

echo
echo "fuzz summary (FUZZTIME=$FUZZTIME, $FUZZPARALLEL workers):"
printf '  %s\n' "${summary[@]}"
exit $failed
