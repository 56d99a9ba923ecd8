#!/usr/bin/env bash
# An ssh stand-in for mpirun (--mca plm_rsh_agent) whose "hosts" are network namespaces of this
# machine: HOST is an IP address, and COMMAND runs, as ssh would run it (its words joined by
# spaces, read by a shell), inside the namespace that holds that address.
#
# Each host also gets a host name of its own, the namespace's name (a UTS namespace per launch):
# namespaces share /tmp and /dev/shm, and Open MPI names its session directories
# (/tmp/ompi.HOST.UID) and shared-memory segments (/dev/shm/vader_segment.HOST.*) by host name,
# so two hosts with one name collide (orted fails "File exists"; the vader transport crashes).
#
# usage: netns_rsh.sh [ssh options] HOST COMMAND...
set -u
while [ $# -gt 0 ] && [[ "$1" == -* ]]; do shift; done  # ssh options: nothing to do here
[ $# -ge 2 ] || { echo "usage: netns_rsh.sh [ssh options] HOST COMMAND..." >&2; exit 255; }
host=$1
shift

holds_address() {  # holds_address NAMESPACE: does it have an interface with address $host?
  ip -n "$1" -4 -o addr show 2>/dev/null | awk -v h="$host" '{split($4, a, "/"); if (a[1] == h) f = 1} END {exit !f}'
}
for ns in $(ip netns list | awk '{print $1}'); do
  if holds_address "$ns"; then
    # shellcheck disable=SC2016  # $1 and $2 are the inner shell's: the host name and the command
    exec ip netns exec "$ns" unshare --uts /bin/sh -c 'hostname "$1" && exec /bin/sh -c "$2"' sh "$ns" "$*"
  fi
done
echo "netns_rsh.sh: no network namespace holds the address '$host' (namespaces: $(ip netns list | awk '{print $1}' | tr '\n' ' '))" >&2
exit 255  # what ssh returns when it cannot reach the host
