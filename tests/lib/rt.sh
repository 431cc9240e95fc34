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
. tests/lib/losses.sh
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
