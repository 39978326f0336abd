#!/usr/bin/env bash
# Runs a local Ballot cluster in the foreground: one bin/ballotd per replica listed
# in the replicas file, each with its own data directory. Every log line is prefixed
# with the replica id. Ctrl-C (or TERM) stops exactly the replicas started here:
# TERM first, then KILL for any still running after a grace period (a second Ctrl-C
# sends KILL at once). A replica that exits on its own is reported and the others
# keep running.
#
# The cluster follows the file while it runs: a line added to it gets a replica
# started (add it to the cluster with 'bin/ballot reconfigure'), and the replica of
# a line removed from it is stopped once it reports that it is no longer a member
# (after 'bin/ballot reconfigure' has committed the change).
#
# Environment:
#   REPLICAS  replicas file                  (default: replicas.txt)
#   DATA      parent of the data directories (default: ./data; replica N uses DATA/N)
#   BALLOTD   server binary                  (default: bin/ballotd of this repository)
#   GRACE     seconds between TERM and KILL  (default: 10)
#   BALLOT    client binary, to ask a replica whether it is still a member
#             (default: bin/ballot of this repository)
#   BALLOT_TLS_DIR  directory of certificates as 'make certs' writes them
#             (ca.pem, replica-ID.pem/.key, client.pem/.key): every replica then
#             runs mutual TLS between replicas and TLS with client certificates
#             on its client port (docs/security.md). Default: certs/ if it holds
#             ca.pem, else plaintext.
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
BALLOT=${BALLOT:-$root/bin/ballot}

die() {
	echo "run-cluster: $*" >&2
	exit 1
}

[[ -r $REPLICAS ]] || die "cannot read replicas file $REPLICAS"
[[ -x $BALLOTD ]] || die "$BALLOTD is not built; run 'make build'"
[[ $GRACE =~ ^[0-9]+$ ]] || die "GRACE=$GRACE is not a whole number of seconds"

# TLS: from BALLOT_TLS_DIR, or certs/ when 'make certs' has written it.
tls_dir=
if [[ -n ${BALLOT_TLS_DIR-} ]]; then
	[[ -r $BALLOT_TLS_DIR/ca.pem ]] || die "BALLOT_TLS_DIR=$BALLOT_TLS_DIR holds no readable ca.pem (make certs writes one)"
	tls_dir=$BALLOT_TLS_DIR
elif [[ -r certs/ca.pem ]]; then
	tls_dir=certs
fi
client_tls=() # the ballot command's flags, to ask a replica whether it is a member
if [[ -n $tls_dir ]]; then
	client_tls=(--cacert "$tls_dir/ca.pem" --cert "$tls_dir/client.pem" --key "$tls_dir/client.key")
	echo "run-cluster: TLS with the certificates in $tls_dir; clients need:" \
		"bin/ballot ${client_tls[*]} ..." >&2
else
	echo "run-cluster: plaintext (no certs/ca.pem; 'make certs' writes one for TLS)" >&2
fi

declare -A no_cert # replica id -> 1 when it was not started for want of a certificate

# replica_tls sets tls_flags to ballotd's TLS flags for replica $1 (none without
# TLS), or says what is missing and fails.
replica_tls() {
	tls_flags=()
	[[ -n $tls_dir ]] || return 0
	local cert=$tls_dir/replica-$1.pem key=$tls_dir/replica-$1.key
	if [[ ! -r $cert || ! -r $key ]]; then
		echo "run-cluster: not starting replica $1: no $cert or $key (the certificates in $tls_dir" \
			"were made before it was listed; make new ones for every replica with" \
			"'bin/ballot certs --force --out $tls_dir' and restart them all)" >&2
		no_cert[$1]=1
		return 1
	fi
	tls_flags=(--peer-cert "$cert" --peer-key "$key" --peer-ca "$tls_dir/ca.pem"
		--client-cert "$cert" --client-key "$key" --client-ca "$tls_dir/ca.pem")
}

# One "id client-addr peer-addr" per replica, comments and blank lines skipped.
# ballotd validates the file properly; this only refuses to start on a line that
# does not even have three fields.
read_members() {
	awk -v file="$REPLICAS" '
		{ sub(/#.*/, "") }
		NF == 0 { next }
		NF != 3 { printf "%s:%d: want 3 fields (id client-addr peer-addr), got %d\n", file, NR, NF > "/dev/stderr"; bad = 1; exit 1 }
		{ print $1, $2, $3 }
		END { if (bad) exit 1 }
	' "$REPLICAS"
}
members=$(read_members) || die "malformed replicas file"
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

pids=()              # replicas started here and not yet reaped
declare -A id_of     # pid -> replica id
declare -A pid_of    # replica id -> pid, while it runs
declare -A client_of # replica id -> client address
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

start_replica() {
	local id=$1 client=$2 peer=$3 dir=$DATA/$1 pid
	replica_tls "$id" || return 0
	mkdir -p "$dir"
	"$BALLOTD" --id "$id" --replicas "$REPLICAS" --data "$dir" "${tls_flags[@]}" </dev/null > >(prefix "$id") 2>&1 &
	pid=$!
	pids+=("$pid")
	id_of[$pid]=$id
	pid_of[$id]=$pid
	client_of[$id]=$client
	echo "run-cluster: replica $id: pid $pid, client $client, peer $peer, data $dir"
}

while read -r id client peer; do
	start_replica "$id" "$client" "$peer"
done <<<"$members"

# follow_file starts a replica for every line the file gained, and stops the
# replica of a line it lost once that replica says it is no longer a member.
follow_file() {
	local now id client peer
	now=$(read_members 2>/dev/null) || return 0
	while read -r id client peer; do
		[[ -n $id && -z ${pid_of[$id]-} && -z ${no_cert[$id]-} ]] || continue
		echo "run-cluster: $REPLICAS lists replica $id: starting it; 'bin/ballot reconfigure' adds it" >&2
		start_replica "$id" "$client" "$peer"
	done <<<"$now"
	for id in "${!pid_of[@]}"; do
		grep -q "^$id " <<<"$now" && continue
		if "$BALLOT" "${client_tls[@]}" --endpoints "${client_of[$id]}" --timeout 1s status --json 2>/dev/null |
			grep -q '"member": false'; then
			echo "run-cluster: replica $id left the configuration and the file: stopping it" >&2
			kill -TERM "${pid_of[$id]}" 2>/dev/null || true
		fi
	done
}

echo "run-cluster: ${#pids[@]} replicas running; Ctrl-C stops them"

failed=0
timer=

while ((${#pids[@]})); do
	[[ -n $timer ]] || { sleep 1 & timer=$!; }
	unset done
	status=0
	wait -n -p done "${pids[@]}" "$timer" || status=$?
	[[ -n ${done-} ]] || continue # interrupted by a signal; its trap has run
	if [[ $done == "$timer" ]]; then
		timer=
		follow_file
		continue
	fi
	forget "$done"
	unset "pid_of[${id_of[$done]}]"
	((status == 0)) || failed=1
	echo "run-cluster: replica ${id_of[$done]} (pid $done) exited with status $status;" \
		"${#pids[@]} still running" >&2
done
echo "run-cluster: every replica has exited"
exit "$failed"
