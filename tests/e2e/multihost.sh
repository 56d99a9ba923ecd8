#!/usr/bin/env bash
# Two hosts on one machine: network namespaces on a bridge, each with its own IP address and
# host name, joined by mpirun over TCP as if they were two machines (netns_rsh.sh stands in for
# ssh). mpirun itself runs in this namespace, with an address on the bridge. Checks:
#   1. tensor parallel 2 inside each host x data parallel 2 across them trains exactly like the
#      same layout on one host: the loss column of train.tsv is compared as text;
#   2. the ranks see two nodes, named by their hosts (a tp group across them is reported so);
#   3. a host that fails mid-run ends the whole job within 60 s, every rank gone, with a message
#      naming the lost rank(s): its ranks killed (SIGKILL), its ranks hung (SIGSTOP: the
#      --collective-timeout deadline names them), its network cut (the link goes down).
#
# usage: multihost.sh MPIRUN... -- TESSERA_TRAIN CONFIG WORKDIR
# Needs root and `ip netns`; exits 77 (a skip) with the reason otherwise. Set
# TESSERA_MULTIHOST_TBF to shape the traffic leaving each host with tc's token bucket filter,
# e.g. TESSERA_MULTIHOST_TBF="rate 1gbit burst 1mbit latency 400ms" (measured here: 0.88 Gbit/s
# each way; with "burst 32kbit" only 0.35 Gbit/s, the bucket being too small for the rate).
# Set TESSERA_MULTIHOST_BENCH to a tessera-bench-collectives command (binary and arguments) to
# run it instead of the checks, one rank on each host, and print its tables (docs/performance.md).
set -euo pipefail
mpirun=()
while [ "$1" != "--" ]; do mpirun+=("$1"); shift; done
shift
train="$1" config="$2" work="$3"
here=$(cd "$(dirname "$0")" && pwd)

skip() { echo "SKIP: $*"; exit 77; }
now_ms() { echo $(($(date +%s%N) / 1000000)); }
seconds_since() { local ms=$(($(now_ms) - $1)); echo "$((ms / 1000)).$(printf '%03d' $((ms % 1000)))"; }
test_start=$(now_ms)

[ "$(id -u)" = 0 ] || skip "needs root to create network namespaces (this is uid $(id -u))"
for tool in ip unshare; do command -v "$tool" >/dev/null || skip "'$tool' is not installed"; done

# Names unique to this run (interface names hold at most 15 characters), and a /24 subnet that
# no interface or route of this machine uses.
p="tsr-$$"
hosts=("$p-h0" "$p-h1")
if ip netns list | grep -q "^$p-" || ip -o link show | grep -q ": $p-"; then
  echo "FAIL: network namespaces or links named $p-* exist already; not touching them"
  exit 1
fi
subnet=""
for i in $(seq 0 49); do
  candidate="10.213.$((($$ + i) % 250 + 1))"
  if ! ip -4 addr show | grep -q "inet $candidate\." && ! ip -4 route show | grep -q "^$candidate\."; then
    subnet=$candidate
    break
  fi
done
[ -n "$subnet" ] || skip "no free 10.213.x.0/24 subnet on this machine"

running=""  # a background mpirun (the fault runs), stopped on the way out
cleanup() {
  [ -z "$running" ] || kill "$running" 2>/dev/null || true
  for ns in "${hosts[@]}"; do
    for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
    ip netns del "$ns" 2>/dev/null || true
    # What killed ranks leave behind, named by their host name (see netns_rsh.sh).
    rm -rf /dev/shm/vader_segment."$ns".* /tmp/ompi."$ns".* 2>/dev/null || true
  done
  # The namespaces go when their last socket does, which may take minutes: remove the links now.
  for link in "$p-v0" "$p-v1" "$p-br"; do ip link del "$link" 2>/dev/null || true; done
}
trap cleanup EXIT

# The bridge is the network; this namespace joins it as .1, host i as .(i+2) behind a veth pair.
error=$(ip link add "$p-br" type bridge 2>&1) || skip "cannot create a bridge (ip link add type bridge): $error"
ip addr add "$subnet.1/24" dev "$p-br"
ip link set "$p-br" up
addresses=()
for i in 0 1; do
  ns=${hosts[$i]}
  error=$(ip netns add "$ns" 2>&1) || skip "'ip netns add' is unavailable here: $error"
  ip link add "$p-v$i" type veth peer name "$p-e$i"
  ip link set "$p-v$i" master "$p-br" up
  ip link set "$p-e$i" netns "$ns"
  ip -n "$ns" link set "$p-e$i" name eth0
  ip -n "$ns" addr add "$subnet.$((i + 2))/24" dev eth0
  ip -n "$ns" link set eth0 up
  ip -n "$ns" link set lo up
  if [ -n "${TESSERA_MULTIHOST_TBF:-}" ]; then
    # shellcheck disable=SC2086  # the filter's arguments, split into words
    ip netns exec "$ns" tc qdisc add dev eth0 root tbf $TESSERA_MULTIHOST_TBF
  fi
  addresses+=("$subnet.$((i + 2))")
done
rm -rf "$work" && mkdir -p "$work"
printf '%s slots=2\n' "${addresses[@]}" >"$work/hostfile"
echo "hosts: ${hosts[0]} at ${addresses[0]}, ${hosts[1]} at ${addresses[1]} (bridge $p-br, $subnet.0/24)" \
     "${TESSERA_MULTIHOST_TBF:+, shaped: tbf $TESSERA_MULTIHOST_TBF}"

# mpirun across the hosts: its daemons (orted) started through netns_rsh.sh, found on PATH as on
# any host of one installation; MPI and mpirun's own traffic on the bridge only; shared memory
# inside a host, TCP between hosts. mpi_yield_when_idle: the two hosts share this machine's cores,
# which Open MPI cannot see (each host has as many slots as ranks), and ranks that spin while
# they wait would take the cores from the ranks that compute (3 s a step instead of 0.1 s).
# The keepalive lets mpirun notice a host that is cut off within seconds instead of hanging.
# shellcheck disable=SC2054  # "tcp,vader,self" is one argument
across=(--hostfile "$work/hostfile" --map-by slot --bind-to none
        --mca plm_rsh_agent "$here/netns_rsh.sh" --mca plm_rsh_no_tree_spawn 1
        --mca oob_tcp_if_include "$subnet.0/24" --mca btl tcp,vader,self --mca btl_tcp_if_include "$subnet.0/24"
        --mca mpi_yield_when_idle 1
        --mca oob_tcp_keepalive_time 3 --mca oob_tcp_keepalive_intvl 2 --mca oob_tcp_keepalive_probes 3)
if [ -n "${TESSERA_MULTIHOST_BENCH:-}" ]; then
  printf '%s slots=1\n' "${addresses[@]}" >"$work/hostfile1"
  bench_across=("${across[@]}")
  bench_across[1]="$work/hostfile1"  # one rank per host: every byte crosses the link
  # shellcheck disable=SC2086  # the command's words
  timeout 3000 "${mpirun[@]}" "${bench_across[@]}" -np 2 $TESSERA_MULTIHOST_BENCH
  exit 0
fi

# --peak-gflops: a number for the "% of peak" column instead of a matrix product timed at start.
common=(--config "$config" --threads 1 --log-every 10 --peak-gflops 10)
layout=(--tensor-parallel 2 --data-parallel 2)

run() {  # run NAME MPIRUN_ARGS... -- TRAIN_ARGS...: a run that must succeed, its output in NAME.log
  local name=$1 started
  shift
  local args=()
  while [ "$1" != "--" ]; do args+=("$1"); shift; done
  shift
  started=$(now_ms)
  if ! timeout 120 "${mpirun[@]}" "${args[@]}" "$train" "${common[@]}" "$@" --out-dir "$work/$name" \
       >"$work/$name.log" 2>&1; then
    echo "FAIL: the $name run failed:"
    cat "$work/$name.log"
    exit 1
  fi
  echo "$name run: $(seconds_since "$started") s"
}
losses() { awk -F'\t' 'NR > 1 {print $1, $2}' "$1"; }  # step and loss, as written

# 1. The same 20 steps on one host and across two.
run one_host -np 4 -- "${layout[@]}" --steps 20
run two_hosts "${across[@]}" -np 4 -- "${layout[@]}" --steps 20
expected=$(losses "$work/one_host/train.tsv")
actual=$(losses "$work/two_hosts/train.tsv")
[ "$(echo "$expected" | wc -l)" = 20 ] || { echo "FAIL: one_host/train.tsv has no 20 steps"; exit 1; }
if [ "$expected" != "$actual" ]; then
  echo "FAIL: the losses across two hosts differ from one host's (step, one host, two hosts):"
  paste -d' ' <(echo "$expected") <(echo "$actual" | cut -d' ' -f2) || true
  exit 1
fi
echo "20 losses identical across two hosts (step 1: $(echo "$actual" | head -1 | cut -d' ' -f2)," \
     "step 20: $(echo "$actual" | tail -1 | cut -d' ' -f2))"

# 2. The ranks' own view of the nodes: a tp group of 4 spans both hosts, and the warning names them.
run tp_across_hosts "${across[@]}" -np 4 -- --tensor-parallel 4 --steps 1
placement="ranks 0-1 on ${hosts[0]}; ranks 2-3 on ${hosts[1]}"
grep -qF "tensor-parallel group 0 (world ranks 0-3) spans 2 nodes ($placement)" "$work/tp_across_hosts.log" || {
  echo "FAIL: expected the ranks to see two nodes ($placement):"
  cat "$work/tp_across_hosts.log"
  exit 1
}
echo "ranks see two nodes: $placement"
# The layout table in the out-dir: world rank, host, local rank, tp rank, dp rank (tp 2 x dp 2).
want_layout="0 ${hosts[0]} 0 0 0
1 ${hosts[0]} 1 1 0
2 ${hosts[1]} 0 0 1
3 ${hosts[1]} 1 1 1"
got_layout=$(awk 'NR > 1 {print $1, $2, $3, $4, $5}' "$work/two_hosts/layout.txt")
[ "$got_layout" = "$want_layout" ] || {
  echo "FAIL: two_hosts/layout.txt does not place the ranks on their hosts; want:"
  echo "$want_layout"; echo "got:"; cat "$work/two_hosts/layout.txt"; exit 1; }
grep -q "r0 info\]   *0  ${hosts[0]}" "$work/two_hosts.log" || { echo "FAIL: the layout table is not in the log"; exit 1; }
echo "layout.txt places ranks 0-1 on ${hosts[0]} and 2-3 on ${hosts[1]}"

# 3. A host fails while the job runs: after 5 logged steps, ACTION strikes host 1; the job must
# end within 60 s with every rank gone and a line matching PATTERN.
ranks_on() { for pid in $(ip netns pids "$1"); do [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = tessera-train ] && echo "$pid"; done; true; }
# shellcheck disable=SC2046  # one word per process id
kill_ranks() { kill -9 $(ranks_on "${hosts[1]}"); }
# shellcheck disable=SC2046
stop_ranks() { kill -STOP $(ranks_on "${hosts[1]}"); }
cut_link() { ip link set "$p-v1" down; }
fault() {  # fault NAME ACTION PATTERN
  local name=$1 action=$2 pattern=$3 log="$work/$1.log" pid rc=0 struck left
  timeout 120 "${mpirun[@]}" "${across[@]}" -np 4 "$train" "${common[@]}" "${layout[@]}" --steps 100000 \
    --collective-timeout 10 --out-dir "$work/$name" >"$log" 2>&1 &
  pid=$!
  running=$pid
  local deadline=$(($(now_ms) + 60000))
  until [ "$(wc -l 2>/dev/null <"$work/$name/train.tsv" || echo 0)" -gt 5 ]; do
    if [ "$(now_ms)" -gt "$deadline" ] || ! kill -0 "$pid" 2>/dev/null; then
      echo "FAIL: $name: the run did not reach step 5"; cat "$log"; exit 1
    fi
    sleep 0.1
  done
  [ -n "$(ranks_on "${hosts[1]}")" ] || { echo "FAIL: $name: no tessera-train on ${hosts[1]}"; exit 1; }
  struck=$(now_ms)
  "$action"
  while kill -0 "$pid" 2>/dev/null && [ $(($(now_ms) - struck)) -lt 60000 ]; do sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then
    echo "FAIL: $name: mpirun still runs 60 s after the fault"; cat "$log"; exit 1
  fi
  wait "$pid" || rc=$?
  running=""
  local took
  took=$(seconds_since "$struck")
  sleep 1  # the daemons reap their last ranks
  left=$(ranks_on "${hosts[0]}")$(ranks_on "${hosts[1]}")
  [ -z "$left" ] || { echo "FAIL: $name: ranks left running: $left"; exit 1; }
  [ "$rc" -ne 0 ] || { echo "FAIL: $name: mpirun exited 0"; cat "$log"; exit 1; }
  grep -Eq "$pattern" "$log" || { echo "FAIL: $name: no line matching: $pattern"; cat "$log"; exit 1; }
  echo "$name: the job ended $took s after the fault (mpirun exit code $rc), every rank gone:"
  grep -E "$pattern" "$log" | head -2 | sed 's/^/    /'
}
ip1=${addresses[1]//./\\.}
# Open MPI's daemon on the host sees its ranks die and mpirun ends the job at once.
fault killed kill_ranks "process rank [23] with PID [0-9]+ on node $ip1 exited on signal 9"
# Hung ranks are alive to Open MPI: the collective deadline finds them and names them.
fault stopped stop_ranks "timed out after 10 s in .* did not arrive"
# Where the stopped ranks sat decides the group: a dp pair names one peer, the world's
# stop-flag reduction names both; either way a stopped world rank is named, with its host (the
# node an operator drains).
grep -Eq "group rank\(s\) .*\(world rank [23] on ${hosts[1]}\).* did not arrive" "$work/stopped.log" || {
  echo "FAIL: stopped: the deadline message does not name world rank 2 or 3 on ${hosts[1]}"; exit 1; }
# A host cut off: the deadline fires on the other host, and mpirun (keepalive) gives up on the lost daemon.
fault cut_off cut_link "lost communication with a remote daemon"
grep -q "on node ${addresses[1]}" "$work/cut_off.log" || { echo "FAIL: cut_off: the lost host is not named"; exit 1; }
echo "PASS in $(seconds_since "$test_start") s"
