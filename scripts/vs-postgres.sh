#!/usr/bin/env bash
# Our throughput as a ratio against PostgreSQL two-phase commit, measured the
# only way that means something on a shared host: interleaved pairs (ours,
# then PostgreSQL, then ours ...) at the same clients, accounts and seconds,
# reported as the ratio of the medians, with the date.
#
#   scripts/vs-postgres.sh                       # 3 pairs, 64 clients, 10 s each
#   scripts/vs-postgres.sh --pairs 5 --clients 16 --seconds 8
#   BENCH=target/release/bench scripts/vs-postgres.sh
#
# Needs the bench built (cargo build --profile perf -p backend -p participant
# -p system-tests) and the baseline at ../shared/pg2pc/run.sh (or PG2PC=path).
set -euo pipefail

here="$(cd "$(dirname "$0")/.." && pwd)"
pairs=3
clients=64
seconds=10
while [ $# -gt 0 ]; do
  case "$1" in
    --pairs) pairs="$2"; shift 2 ;;
    --clients) clients="$2"; shift 2 ;;
    --seconds) seconds="$2"; shift 2 ;;
    -h|--help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "vs-postgres: unknown argument '$1' (try --help)" >&2; exit 2 ;;
  esac
done
for v in "$pairs" "$clients" "$seconds"; do
  case "$v" in ''|*[!0-9]*|0) echo "vs-postgres: --pairs, --clients and --seconds take a positive whole number, not '$v'" >&2; exit 2 ;; esac
done

bench="${BENCH:-}"
if [ -z "$bench" ]; then
  for b in "$here/target/perf/bench" "$here/target/release/bench"; do
    if [ -x "$b" ]; then bench="$b"; break; fi
  done
fi
if [ -z "$bench" ] || [ ! -x "$bench" ]; then
  echo "vs-postgres: no bench binary; build it first: cargo build --profile perf -p backend -p participant -p system-tests" >&2
  exit 1
fi
pg="${PG2PC:-$here/../shared/pg2pc/run.sh}"
if [ ! -x "$pg" ]; then
  echo "vs-postgres: the PostgreSQL baseline is not at $pg; set PG2PC=/path/to/pg2pc/run.sh" >&2
  exit 1
fi

median() { sort -n | awk '{a[NR]=$1} END {if (NR == 0) exit 1; if (NR % 2) print a[(NR+1)/2]; else printf "%.1f\n", (a[NR/2]+a[NR/2+1])/2}'; }

ours=()
theirs=()
echo "vs-postgres: $(date -u '+%Y-%m-%d %H:%M UTC'), $pairs interleaved pairs, $clients clients, ${seconds} s each, bench $bench"
for i in $(seq 1 "$pairs"); do
  out="$("$bench" --clients "$clients" --seconds "$seconds" 2>&1)" || { echo "$out" >&2; echo "vs-postgres: our run $i failed (above)" >&2; exit 1; }
  if ! grep -q '^invariants: OK' <<<"$out"; then echo "$out" >&2; echo "vs-postgres: our run $i did not end with 'invariants: OK'" >&2; exit 1; fi
  o="$(awk '$1 == "committed" {sub("/s", "", $3); print $3; exit}' <<<"$out")"
  out="$("$pg" --clients "$clients" --seconds "$seconds" 2>&1)" || { echo "$out" >&2; echo "vs-postgres: PostgreSQL run $i failed (above)" >&2; exit 1; }
  line="$(grep '^pg2pc ' <<<"$out" | tail -1)"
  case "$line" in *verify=ok*) ;; *) echo "$out" >&2; echo "vs-postgres: PostgreSQL run $i did not verify" >&2; exit 1 ;; esac
  p="$(tr ' ' '\n' <<<"$line" | awk -F= '$1 == "tps" {print $2}')"
  if [ -z "$o" ] || [ -z "$p" ]; then echo "vs-postgres: could not read a throughput from run $i" >&2; exit 1; fi
  ours+=("$o"); theirs+=("$p")
  echo "pair $i: ours $o/s, PostgreSQL $p/s (load average $(cut -d' ' -f1 /proc/loadavg))"
done
mo="$(printf '%s\n' "${ours[@]}" | median)"
mp="$(printf '%s\n' "${theirs[@]}" | median)"
ratio="$(awk -v a="$mo" -v b="$mp" 'BEGIN {printf "%.1f", a / b}')"
echo "median: ours $mo/s, PostgreSQL $mp/s, ratio ${ratio}x ($(date -u +%Y-%m-%d), $clients clients)"
