#!/bin/sh
# The fault suite (tests/tests/faults_*.rs) and its summary table.
#
#   tests/faults_report.sh                           # CI-sized run (< 3 min, debug)
#   CLPS_SOAK_SECONDS=600 tests/faults_report.sh     # soak: crash and partition loops run 10 min
#   CLPS_FAULT_SEED=42 tests/faults_report.sh        # another fault schedule
#   tests/faults_report.sh --table                   # only print the last figures
#
# Each scenario writes its latest line to target/faults/<scenario>.tsv.
set -eu
cd "$(dirname "$0")/.."
if [ "${1:-}" != "--table" ]; then
    # The crash, hub-loss and disk scenarios run the real binaries.
    cargo build --workspace --bins
    cargo test -p clps-tests --test 'faults_*' -- --test-threads=2
fi
awk -F '\t' '
BEGIN {
    print "| scenario | iterations | faults injected | changes acknowledged | changes lost | inputs fuzzed | crashes found | seconds |"
    print "|---|---|---|---|---|---|---|---|"
}
{
    printf "| %s | %s | %s | %s | %s | %s | %s | %s |\n", $1, $2, $3, $4, $5, $6, $7, $8
    for (i = 2; i <= 8; i++) total[i] += $i
}
END {
    printf "| **total** | %d | %d | %d | %d | %d | %d | %.1f |\n", total[2], total[3], total[4], total[5], total[6], total[7], total[8]
}' target/faults/*.tsv
