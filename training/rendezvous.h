// Rendezvous: how rank 0 hands the other ranks the 128-byte NCCL unique id before NCCL exists.
//
//   std::vector<char> id = tcp_broadcast("127.0.0.1", 29500, rank, world, rank0_id, 120.0);
//
// TCP (MASTER_ADDR / MASTER_PORT, as torchrun): rank 0 listens, every other rank connects
// (retrying until rank 0 is up), says its rank, and receives the payload. Works across hosts.
// File (one host, no free port wanted): rank 0 writes the payload to <path>.tmp and renames it
// to <path> (a rename is atomic, so a reader never sees half a file); the others poll for it.
// The path must be fresh for each run (the launcher puts its pid and the time in it): a file left
// by an earlier run would hand out a stale id.
//
// Both return the payload on every rank (rank 0 gets its own back), or throw an Error naming the
// address or file and the timeout.
#pragma once

#include <string>
#include <vector>

namespace mt::training {

std::vector<char> tcp_broadcast(const std::string& addr, int port, int rank, int world,
                                const std::vector<char>& payload, double timeout_s);

std::vector<char> file_broadcast(const std::string& path, int rank,
                                 const std::vector<char>& payload, double timeout_s);

// A TCP port that was free a moment ago on this host (bind to port 0 and read it back): for a
// launcher that starts the ranks itself. Another program may take it in between; rare.
int find_free_port();

}  // namespace mt::training
