// Starting the ranks of a one-host data-parallel run: `"devices": N` in the train config.
//
//   if (devices > 1 && !launched_as_worker()) return launch_local_workers(devices, argc, argv);
//
// The parent forks N children and execs the same program with the same arguments in each, with
// RANK = LOCAL_RANK = i, WORLD_SIZE = N, MASTER_ADDR = 127.0.0.1, MASTER_PORT = a free port and
// NCCL_NVLS_ENABLE = 0 set (NVLink multicast stays off on these machines). Each child sees
// WORLD_SIZE and trains as one rank (training/distributed.h). The parent only waits: when a
// child fails it stops the others (SIGTERM, then SIGKILL after 10 s) and returns that child's
// exit status; 0 when all succeed, 130 (training/cli.h) when they stopped on Ctrl-C or SIGTERM,
// which is not a failure: the ranks are left to finish and save. Launchers of several hosts
// (torchrun, srun, mpirun) set the same variables themselves and start the program directly.
#pragma once

namespace mt::training {

// True when WORLD_SIZE is set in the environment: this process is one rank of a run.
bool launched_as_worker();

int launch_local_workers(int n, int argc, char** argv);

}  // namespace mt::training
