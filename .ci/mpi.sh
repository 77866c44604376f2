#!/usr/bin/env bash
# The alltoall package over MPI: installs Open MPI from Debian if it is
# missing, builds the alltoall test binary with the build tag mpi, and runs
# its MPI tests and benchmarks under mpirun with 4 processes (2 simulated
# nodes x 2 ranks). Called by .ci/run; fails loudly, bounded in time.
#   DSV3_A2A_TOKENS  tokens per rank of the benchmarks (default here 1024;
#                    4096 is the full DeepSeek-V3 shape and needs ~10 GB)
#   DSV3_MPI_BENCH=0 skips the benchmarks
set -euo pipefail
cd "$(dirname "$0")/.."

root=0
if [ "$(id -u)" = 0 ]; then root=1; fi
if ! command -v mpirun >/dev/null 2>&1 || ! pkg-config --exists mpi 2>/dev/null; then
	echo "installing Open MPI (libopenmpi-dev openmpi-bin)"
	sudo=""
	if [ "$root" = 0 ]; then sudo="sudo"; fi
	timeout 900 $sudo apt-get update
	DEBIAN_FRONTEND=noninteractive timeout 900 $sudo apt-get install -y libopenmpi-dev openmpi-bin
fi
mpirun --version | head -1

dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
go vet -tags mpi ./alltoall
go test -c -tags mpi -o "$dir/alltoall.mpi.test" ./alltoall

# run LIMIT ARGS...: rank 0 prints; ranks 1-3 write to files that are
# shown when the job fails.
run() {
	local limit=$1
	shift
	echo "mpirun ${args[*]} alltoall.mpi.test $*"
	if ! timeout "$limit" mpirun "${args[@]}" \
		-n 1 "$dir/alltoall.mpi.test" "$@" : \
		-n 3 bash -c '"$0" "$@" >"$A2A_LOG.$OMPI_COMM_WORLD_RANK" 2>&1' "$dir/alltoall.mpi.test" "$@"; then
		for f in "$A2A_LOG".*; do
			echo "--- ${f##*.}: rank ${f##*.} output"
			cat "$f"
		done
		echo "FAIL: mpirun $*"
		exit 1
	fi
}
export A2A_LOG="$dir/rank"
args=(--oversubscribe)
if [ "$root" = 1 ]; then
	args+=(--allow-run-as-root)
	export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi

run 600 -test.run MPI -test.v -test.count 1
if [ "${DSV3_MPI_BENCH:-1}" != 0 ]; then
	export DSV3_A2A_TOKENS="${DSV3_A2A_TOKENS:-1024}"
	echo "benchmarks with $DSV3_A2A_TOKENS tokens per rank"
	# -test.benchtime Nx: every rank runs the same number of iterations.
	run 900 -test.run '^$' -test.bench MPI -test.benchtime 3x
fi
