# rt.sh — sourced by the runtime script tests (tests/rt_*.sh) from the source
# root: a scratch folder $T removed at exit, the tiny GPT-2 model $M and its
# token file $D, the failure flag and bad() that sets it, same_losses
# (losses.sh), and OpenMPI's settings for running as root and oversubscribing
# 2 cores (harmless where mpirun is never called).
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
M=examples/tiny-gpt2.sbp
D=tests/data/rt/tiny.bin
fail=0
bad() { echo "FAIL: $*"; fail=1; }
# why FILE: what a failed command printed: its error lines, or, where it
# printed none (a sanitizer's report, a signal, mpirun's own message), the
# end of its output, so a CI log says why without a rerun.
why() { grep -q error "$1" 2>/dev/null && grep error "$1" | head -3 || tail -n 25 "$1" 2>/dev/null; }
. tests/lib/losses.sh
# runn N ARGS...: `sbpc run` of the tiny model on its tokens on N ranks,
# quiet (leak checks off under ASan: the MPI stack's own allocations);
# a script that runs another way defines its own after sourcing this.
runn() { local n=$1; shift; mpirun -np "$n" env ASAN_OPTIONS=detect_leaks=0 "$SBPC" run $M --data $D --quiet "$@"; }
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
