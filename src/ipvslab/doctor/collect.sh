#!/bin/sh
# ipvslab collect.sh: capture what `ipvslab doctor` reads from a node, with nothing but a
# POSIX sh and coreutils or busybox (no Python, no ipvslab), into a .tar.gz that
# `ipvslab doctor --from ARCHIVE` reads anywhere.
#
#   sh collect.sh [OUTPUT]      OUTPUT: an archive path, a directory, or - for stdout
#                               (default: ipvslab-capture-HOST-TIME.tar.gz here)
#
# Environment:
#   IPVSLAB_ROOT=/host   read the node from this root instead of / (a pod with the
#                        host's / mounted read-only at /host and hostPID: true)
#   IPVSLAB_NO_EXEC=1    do not run `kube-proxy --version` (through /proc/PID/exe)
#   IPVSLAB_TIMEOUT=5    seconds `kube-proxy --version` may take
#
# Read-only: it writes nothing under the root, only its archive (mode 0600: connection
# tables name client addresses) and a temporary directory it removes. It reads what
# `ipvslab doctor collect` reads, in the same capture layout (ipvslab-capture/...):
# /proc/net/ip_vs, ip_vs_conn, ip_vs_stats; /proc/sys/net/ipv4/vs/* and four related
# sysctls; the kernel release, /proc/version and /proc/version_signature; os-release;
# kube-proxy's command line, its --config file (through /proc/PID/root) and version.
# Exit status: 0 when an archive was written, 1 when nothing could be captured, 2 on a
# usage error or when the archive cannot be written.

set -u
umask 077

ROOT=${IPVSLAB_ROOT:-/}
ROOT=${ROOT%/}
TIMEOUT=${IPVSLAB_TIMEOUT:-5}
TOP=ipvslab-capture

die() {
	printf 'collect.sh: %s\n' "$1" >&2
	exit 2
}

case ${1:-} in
-h | --help)
	sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'
	exit 0
	;;
esac
[ $# -le 1 ] || die "usage: collect.sh [OUTPUT]"
[ -d "$ROOT/" ] || die "root ${ROOT:-/}: no such directory"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/ipvslab-collect.XXXXXX") || die "cannot create a temporary directory"
trap 'rm -rf "$WORK"' EXIT
trap 'exit 130' INT TERM
OUT_DIR=$WORK/$TOP
mkdir -p "$OUT_DIR/proc/net" "$OUT_DIR/etc" "$OUT_DIR/kube-proxy" || die "cannot write to $WORK"

NOTES=$WORK/notes
PROBLEMS=$WORK/problems
FILES=$WORK/files
: >"$NOTES"
: >"$PROBLEMS"
: >"$FILES"

# One JSON string: backslashes and quotes escaped, tabs as \t, other control bytes dropped.
json_string() {
	printf '%s' "$1" | tr -d '\000-\010\012-\037' | sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e 's/	/\\t/g' |
		{
			printf '"'
			cat
			printf '"'
		}
}

note() { printf '%s\n' "$1" >>"$NOTES"; }

problem() { # source message
	printf '%s\t%s\n' "$1" "$2" >>"$PROBLEMS"
}

# copy SOURCE LAYOUT_PATH KIND: a file of the node into the archive, if it exists.
copy() {
	if [ ! -e "$1" ]; then
		return 1
	fi
	if cat "$1" >"$OUT_DIR/$2" 2>/dev/null; then
		printf '%s\t%s\t%s\n' "$3" "$2" "$1" >>"$FILES"
		return 0
	fi
	rm -f "$OUT_DIR/$2"
	problem "$1" "cannot read: permission denied or unreadable"
	return 2
}

# resolve_in_root BASE PATH: PATH as a process whose root is BASE sees it, following
# symlinks by hand so absolute targets stay inside BASE (as doctor/live.py does).
resolve_in_root() {
	_base=$1
	_todo=$2
	_done=
	_links=0
	while [ -n "$_todo" ]; do
		case $_todo in
		*/*)
			_part=${_todo%%/*}
			_todo=${_todo#*/}
			;;
		*)
			_part=$_todo
			_todo=
			;;
		esac
		case $_part in
		'' | .) continue ;;
		..)
			_done=${_done%/*}
			continue
			;;
		esac
		if [ -L "$_base$_done/$_part" ]; then
			_links=$((_links + 1))
			[ "$_links" -le 40 ] || return 1
			_target=$(readlink "$_base$_done/$_part") || return 1
			case $_target in /*) _done= ;; esac
			_todo=$_target/$_todo
			continue
		fi
		_done=$_done/$_part
	done
	printf '%s\n' "$_base$_done"
}

# --------------------------------------------------------------------------- /proc/net

IPVS_PRESENT=false
if [ -e "$ROOT/proc/net/ip_vs" ]; then
	IPVS_PRESENT=true
	copy "$ROOT/proc/net/ip_vs" proc/net/ip_vs PROC_IP_VS
	for name in ip_vs_conn ip_vs_stats; do
		case $name in
		ip_vs_conn) kind=PROC_IP_VS_CONN ;;
		*) kind=PROC_IP_VS_STATS ;;
		esac
		if ! copy "$ROOT/proc/net/$name" "proc/net/$name" "$kind"; then
			[ -e "$ROOT/proc/net/$name" ] ||
				note "$ROOT/proc/net/$name does not exist although $ROOT/proc/net/ip_vs does"
		fi
	done
else
	note "IPVS is not loaded here: $ROOT/proc/net/ip_vs does not exist. Either the ip_vs kernel module is not loaded on this node, or this is not the host's network namespace (IPVS tables are per network namespace): run on the host, in a pod with hostNetwork: true, or under \`nsenter -t 1 -n\`. Sysctls, the kernel release and kube-proxy are still read."
fi

# --------------------------------------------------------------------------- sysctls

sysctl_line() { # key file
	[ -f "$2" ] || return 0
	_value=$(tr '\n' ' ' <"$2" 2>/dev/null) || return 0
	_value=$(printf '%s' "$_value" | sed -e 's/^[[:space:]]*//' -e 's/[[:space:]]*$//')
	printf '%s = %s\n' "$1" "$_value" >>"$OUT_DIR/sysctl.txt"
}

: >"$OUT_DIR/sysctl.txt"
VS_DIR=$ROOT/proc/sys/net/ipv4/vs
if [ -d "$VS_DIR" ]; then
	for f in "$VS_DIR"/*; do
		[ -f "$f" ] && sysctl_line "net.ipv4.vs.${f##*/}" "$f"
	done
elif [ "$IPVS_PRESENT" = true ]; then
	note "$VS_DIR does not exist: the net.ipv4.vs.* sysctls are not visible here (they are hidden outside the initial user namespace)."
fi
for key in net.ipv4.ip_local_port_range net.ipv4.ip_local_reserved_ports \
	net.ipv4.tcp_tw_reuse net.netfilter.nf_conntrack_tcp_timeout_time_wait; do
	sysctl_line "$key" "$ROOT/proc/sys/$(printf '%s' "$key" | tr . /)"
done
if [ -s "$OUT_DIR/sysctl.txt" ]; then
	printf 'SYSCTL\tsysctl.txt\t%s\n' "$ROOT/proc/sys" >>"$FILES"
else
	rm -f "$OUT_DIR/sysctl.txt"
	note "no sysctl could be read under $ROOT/proc/sys"
fi

# --------------------------------------------------------------------------- kernel, distro

copy "$ROOT/proc/sys/kernel/osrelease" uname-r.txt KERNEL_RELEASE ||
	note "$ROOT/proc/sys/kernel/osrelease does not exist: the kernel release is unknown"
copy "$ROOT/proc/version" proc/version PROC_VERSION
copy "$ROOT/proc/version_signature" proc/version_signature VERSION_SIGNATURE

found_os=
for rel in etc/os-release usr/lib/os-release; do
	path=$(resolve_in_root "$ROOT" "$rel") || continue
	if copy "$path" etc/os-release OS_RELEASE; then
		found_os=1
		break
	fi
done
[ -n "$found_os" ] || note "neither $ROOT/etc/os-release nor usr/lib/os-release exist"

# --------------------------------------------------------------------------- kube-proxy

KP_PID=
for dir in "$ROOT"/proc/[0-9]*; do
	[ -r "$dir/cmdline" ] || continue
	printf '%s\n' "${dir##*/}"
done | sort -n | while read -r pid; do
	argv0=$(tr '\000' '\n' <"$ROOT/proc/$pid/cmdline" 2>/dev/null | sed -n 1p)
	argv1=$(tr '\000' '\n' <"$ROOT/proc/$pid/cmdline" 2>/dev/null | sed -n 2p)
	case ${argv0##*/} in
	kube-proxy) echo "$pid" ;;
	hyperkube) case $argv1 in kube-proxy | proxy) echo "$pid" ;; esac ;;
	esac
done >"$WORK/kube-proxy-pids"
KP_PID=$(sed -n 1p "$WORK/kube-proxy-pids")

if [ -z "$KP_PID" ]; then
	note "no kube-proxy process was found under $ROOT/proc: kube-proxy's flags, config and version are unknown. kube-proxy runs in a pod; run on the host, or in a pod with hostPID: true."
else
	others=$(sed -n '2,$p' "$WORK/kube-proxy-pids" | tr '\n' ' ' | sed 's/ *$//; s/ /, /g')
	[ -z "$others" ] || note "several kube-proxy processes: read pid $KP_PID (also: $others)"
	PID_DIR=$ROOT/proc/$KP_PID
	copy "$PID_DIR/cmdline" kube-proxy/cmdline KUBE_PROXY_CMDLINE
	# --config=PATH or --config PATH (the last one wins, as with pflag).
	config=$(tr '\000' '\n' <"$PID_DIR/cmdline" | sed -n -e 's/^--config=//p' -e '/^--config$/{n;p;}' | sed -n '$p')
	if [ -n "$config" ]; then
		case $config in
		/*) path=$(resolve_in_root "$PID_DIR/root" "$config") ;;
		*) path=$PID_DIR/cwd/$config ;;
		esac
		if [ -z "${path:-}" ] || ! copy "$path" kube-proxy/config.yaml KUBE_PROXY_CONFIG; then
			note "kube-proxy's --config file $config was not found in its mount namespace ($PID_DIR/root$config): settings come from its flags only."
		fi
	fi
	if [ "${IPVSLAB_NO_EXEC:-}" = 1 ]; then
		note "kube-proxy --version was not run (running programs was turned off, IPVSLAB_NO_EXEC=1): its version is unknown."
	elif command -v timeout >/dev/null 2>&1; then
		if timeout "$TIMEOUT" "$PID_DIR/exe" --version >"$OUT_DIR/kube-proxy/version.txt" 2>/dev/null &&
			[ -s "$OUT_DIR/kube-proxy/version.txt" ]; then
			printf 'KUBE_PROXY_VERSION\tkube-proxy/version.txt\t%s\n' "$PID_DIR/exe --version" >>"$FILES"
		else
			rm -f "$OUT_DIR/kube-proxy/version.txt"
			note "$PID_DIR/exe --version failed or printed nothing: the kube-proxy version is unknown."
		fi
	else
		note "no timeout command: kube-proxy --version was not run; its version is unknown."
	fi
fi

# --------------------------------------------------------------------------- manifest

HOST=
for f in "$ROOT/proc/sys/kernel/hostname" "$ROOT/etc/hostname"; do
	[ -r "$f" ] && HOST=$(sed -n 1p "$f" | tr -d '[:space:]') && [ -n "$HOST" ] && break
done
[ -n "$HOST" ] || HOST=$(hostname 2>/dev/null || echo node)
NOW=$(date -u +%Y-%m-%dT%H:%M:%S+00:00)
STAMP=$(date -u +%Y%m%dT%H%M%SZ)

{
	printf '{\n  "format": "ipvslab-capture",\n  "format_version": 1,\n'
	printf '  "ipvslab_version": "collect.sh",\n'
	printf '  "collected_at": "%s",\n' "$NOW"
	printf '  "hostname": %s,\n' "$(json_string "$HOST")"
	printf '  "live": true,\n  "ipvs_present": %s,\n  "files": [' "$IPVS_PRESENT"
	sep=
	while IFS='	' read -r kind path source; do
		bytes=$(wc -c <"$OUT_DIR/$path" | tr -d ' ')
		printf '%s\n    {"kind": "%s", "path": "%s", "source": %s, "bytes": %s}' \
			"$sep" "$kind" "$path" "$(json_string "$source")" "$bytes"
		sep=,
	done <"$FILES"
	printf '\n  ],\n  "problems": ['
	sep=
	while IFS='	' read -r source message; do
		printf '%s\n    {"source": %s, "line_no": 0, "field": "file", "message": %s}' \
			"$sep" "$(json_string "$source")" "$(json_string "$message")"
		sep=,
	done <"$PROBLEMS"
	printf '\n  ],\n  "notes": ['
	sep=
	while IFS= read -r line; do
		printf '%s\n    %s' "$sep" "$(json_string "$line")"
		sep=,
	done <"$NOTES"
	printf '\n  ]\n}\n'
} >"$OUT_DIR/manifest.json"

# What was captured and what was not, on stderr (the DaemonSet's pod log), as
# `ipvslab doctor collect` prints it.
{
	count=$(wc -l <"$FILES" | tr -d ' ')
	printf 'captured (%s): %s\n' "$count" "$(cut -f2 "$FILES" | tr '\n' ' ' | sed 's/ $//; s/ /, /g')"
	[ "$IPVS_PRESENT" = false ] && printf 'no IPVS on this node: /proc/net/ip_vs does not exist\n'
	while IFS= read -r line; do printf 'note: %s\n' "$line"; done <"$NOTES"
	while IFS='	' read -r source message; do
		printf 'problem: %s: %s\n' "$source" "$message"
	done <"$PROBLEMS"
} >&2

if [ ! -s "$FILES" ]; then
	printf 'collect.sh: nothing could be captured under %s\n' "${ROOT:-/}" >&2
	exit 1
fi

# --------------------------------------------------------------------------- archive

SAFE_HOST=$(printf '%s' "$HOST" | tr -c 'A-Za-z0-9._-' '_')
NAME=ipvslab-capture-$SAFE_HOST-$STAMP.tar.gz
OUTPUT=${1:-.}
if [ "$OUTPUT" = - ]; then
	tar -C "$WORK" -czf - "$TOP" || die "cannot write the archive to stdout"
	exit 0
fi
[ -d "$OUTPUT" ] && OUTPUT=${OUTPUT%/}/$NAME
if ! tar -C "$WORK" -czf "$OUTPUT.tmp.$$" "$TOP" || ! mv -f "$OUTPUT.tmp.$$" "$OUTPUT"; then
	rm -f "$OUTPUT.tmp.$$"
	die "cannot write the archive to $OUTPUT"
fi
printf 'wrote %s\n' "$OUTPUT" >&2
printf 'diagnose it with: ipvslab doctor --from %s\n' "$OUTPUT" >&2
