#!/usr/bin/env bash
# Makes sure the Apache Thrift compiler is on the PATH, installing Debian's
# thrift-compiler package with apt-get when it is missing (through sudo unless
# running as root). gen/ is produced by the 0.17 compiler; another version may
# generate different code, which `make check-gen` then reports.
set -euo pipefail

want_version=0.17

if ! command -v thrift >/dev/null 2>&1; then
	echo "installing thrift-compiler with apt-get"
	if ! command -v apt-get >/dev/null 2>&1; then
		echo "ensure-thrift: thrift is not installed and apt-get is not available;" \
			"install the Apache Thrift compiler $want_version by hand" >&2
		exit 1
	fi
	sudo=()
	if [ "$(id -u)" -ne 0 ]; then
		if ! command -v sudo >/dev/null 2>&1; then
			echo "ensure-thrift: need root or sudo to install thrift-compiler" >&2
			exit 1
		fi
		sudo=(sudo)
	fi
	# env after sudo: sudo would drop DEBIAN_FRONTEND from the environment.
	"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
	"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends thrift-compiler
	if ! command -v thrift >/dev/null 2>&1; then
		echo "ensure-thrift: thrift-compiler installed but thrift is not on the PATH" >&2
		exit 1
	fi
fi

version=$(thrift --version)
case "$version" in
*" $want_version".*) ;;
*) echo "ensure-thrift: warning: found '$version'; gen/ is generated with $want_version" >&2 ;;
esac
