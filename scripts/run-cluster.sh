#!/usr/bin/env bash
# Runs a local Ballot cluster in the foreground: one bin/ballotd per replica listed
# in the replicas file, each with its own data directory. Every log line is prefixed
# with the replica id. Ctrl-C (or TERM) stops exactly the replicas started here:
# TERM first, then KILL for any still running after a grace period (a second Ctrl-C
# sends KILL at once). A replica that exits on its own is reported and the others
# keep running.
#
# Environment:
#   REPLICAS  replicas file                  (default: replicas.txt)
#   DATA      parent of the data directories (default: ./data; replica N uses DATA/N)
#   BALLOTD   server binary                  (default: bin/ballotd of this repository)
#   GRACE     seconds between TERM and KILL  (default: 10)
set -euo pipefail

if ((BASH_VERSINFO[0] < 5 || (BASH_VERSINFO[0] == 5 && BASH_VERSINFO[1] < 1))); then
	echo "run-cluster: needs bash 5.1 or newer (for wait -n -p)" >&2
	exit 1
fi

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
REPLICAS=${REPLICAS:-replicas.txt}
DATA=${DATA:-./data}
BALLOTD=${BALLOTD:-$root/bin/ballotd}
GRACE=${GRACE:-10}

die() {
	echo "run-cluster: $*" >&2
	exit 1
}

[[ -r $REPLICAS ]] || die "cannot read replicas file $REPLICAS"
[[ -x $BALLOTD ]] || die "$BALLOTD is not built; run 'make build'"
[[ $GRACE =~ ^[0-9]+$ ]] || die "GRACE=$GRACE is not a whole number of seconds"

# One "id client-addr peer-addr" per replica, comments and blank lines skipped.
# ballotd validates the file properly; this only refuses to start on a line that
# does not even have three fields.
members=$(awk -v file="$REPLICAS" '
	{ sub(/#.*/, "") }
	NF == 0 { next }
	NF != 3 { printf "%s:%d: want 3 fields (id client-addr peer-addr), got %d\n", file, NR, NF > "/dev/stderr"; bad = 1; exit 1 }
	{ print $1, $2, $3 }
	END { if (bad) exit 1 }
' "$REPLICAS") || die "malformed replicas file"
[[ -n $members ]] || die "$REPLICAS lists no replicas"

# prefix copies its input to stdout with "[id] " before every line. It ignores
# INT and TERM so that it outlives its replica's shutdown messages: a replica
# writing to a closed pipe would die of SIGPIPE instead of stopping cleanly.
prefix() {
	trap '' INT TERM
	local line
	while IFS= read -r line || [[ -n $line ]]; do
		printf '[%s] %s\n' "$1" "$line"
	done
}

pids=()          # replicas started here and not yet reaped
declare -A id_of # pid -> replica id
stopping=0
force=0

# forget removes a reaped pid from pids.
forget() {
	local p keep=()
	for p in "${pids[@]}"; do
		[[ $p == "$1" ]] || keep+=("$p")
	done
	pids=("${keep[@]}")
}

# stop sends TERM to every replica still running, waits up to GRACE seconds for
# them to exit, then sends KILL to the rest.
stop() {
	((stopping)) && return
	stopping=1
	trap 'force=1' INT TERM
	((${#pids[@]})) || return 0
	echo "run-cluster: stopping replicas (TERM to pids ${pids[*]})" >&2
	kill -TERM "${pids[@]}" 2>/dev/null || true
	sleep "$GRACE" &
	local timer=$! done status
	while ((${#pids[@]})); do
		if ((force)); then
			echo "run-cluster: sending KILL to pids ${pids[*]}" >&2
			kill -KILL "${pids[@]}" 2>/dev/null || true
			force=0
		fi
		unset done
		status=0
		wait -n -p done "${pids[@]}" ${timer:+"$timer"} || status=$?
		[[ -n ${done-} ]] || continue # interrupted by a signal
		if [[ $done == "$timer" ]]; then
			echo "run-cluster: replicas still running after ${GRACE}s" >&2
			timer=
			force=1
			continue
		fi
		echo "run-cluster: replica ${id_of[$done]} (pid $done) stopped, status $status" >&2
		forget "$done"
	done
	if [[ -n $timer ]]; then
		kill "$timer" 2>/dev/null || true
		wait "$timer" 2>/dev/null || true
	fi
}

trap 'stop; exit 130' INT
trap 'stop; exit 143' TERM
trap 'stop' EXIT

while read -r id client peer; do
	dir=$DATA/$id
	mkdir -p "$dir"
	"$BALLOTD" --id "$id" --replicas "$REPLICAS" --data "$dir" </dev/null > >(prefix "$id") 2>&1 &
	pid=$!
	pids+=("$pid")
	id_of[$pid]=$id
	echo "run-cluster: replica $id: pid $pid, client $client, peer $peer, data $dir"
done <<<"$members"

echo "run-cluster: ${#pids[@]} replicas running; Ctrl-C stops them"

failed=0

while ((${#pids[@]})); do
	unset done
	status=0
	wait -n -p done "${pids[@]}" || status=$?
	[[ -n ${done-} ]] || continue # interrupted by a signal; its trap has run
	forget "$done"
	((status == 0)) || failed=1
	echo "run-cluster: replica ${id_of[$done]} (pid $done) exited with status $status;" \
		"${#pids[@]} still running" >&2
done
echo "run-cluster: every replica has exited"
exit "$failed"
