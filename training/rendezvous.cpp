// TCP and file rendezvous (see training/rendezvous.h). POSIX sockets, blocking with poll()
// deadlines: the payload is 128 bytes once per run, so simplicity beats throughput here.
#include "training/rendezvous.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <thread>

#include "base/error.h"

namespace mt::training {

namespace {

using Clock = std::chrono::steady_clock;

// Closes the socket when it goes out of scope, on every error path.
struct Fd {
  int fd = -1;
  explicit Fd(int f) : fd(f) {}
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
};

int ms_left(Clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  return left.count() > 0 ? static_cast<int>(left.count()) : 0;
}

// Waits until fd is readable (POLLIN) or writable; false at the deadline.
bool wait_fd(int fd, short events, Clock::time_point deadline) {
  pollfd p{fd, events, 0};
  while (true) {
    const int r = ::poll(&p, 1, ms_left(deadline));
    if (r > 0) return true;
    if (r == 0) return false;
    if (errno != EINTR) return false;
  }
}

void send_all(int fd, const void* data, size_t n, const char* what) {
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    const ssize_t k = ::send(fd, p, n, MSG_NOSIGNAL);
    if (k < 0 && errno == EINTR) continue;
    CHECK(k > 0, "rendezvous: sending {} failed: {}", what, std::strerror(errno));
    p += k;
    n -= static_cast<size_t>(k);
  }
}

void recv_all(int fd, void* data, size_t n, Clock::time_point deadline, const char* what) {
  char* p = static_cast<char*>(data);
  while (n > 0) {
    CHECK(wait_fd(fd, POLLIN, deadline), "rendezvous: timed out receiving {}", what);
    const ssize_t k = ::recv(fd, p, n, 0);
    if (k < 0 && errno == EINTR) continue;
    CHECK(k > 0, "rendezvous: connection closed while receiving {} ({})", what,
          k == 0 ? "peer closed" : std::strerror(errno));
    p += k;
    n -= static_cast<size_t>(k);
  }
}

addrinfo* resolve(const std::string& addr, int port, bool passive) {
  addrinfo hints{};
  hints.ai_family = AF_INET;  // IPv4, like MASTER_ADDR in practice; "localhost" resolves too
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = passive ? AI_PASSIVE : 0;
  addrinfo* res = nullptr;
  const std::string service = std::to_string(port);
  const int rc = ::getaddrinfo(addr.c_str(), service.c_str(), &hints, &res);
  CHECK(rc == 0 && res != nullptr, "rendezvous: cannot resolve MASTER_ADDR '{}': {}", addr,
        ::gai_strerror(rc));
  return res;
}

std::vector<char> serve(const std::string& addr, int port, int world,
                        const std::vector<char>& payload, Clock::time_point deadline) {
  addrinfo* res = resolve(addr, port, true);
  Fd listener(::socket(res->ai_family, res->ai_socktype, res->ai_protocol));
  CHECK(listener.fd >= 0, "rendezvous: socket() failed: {}", std::strerror(errno));
  const int one = 1;
  ::setsockopt(listener.fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  const int bound = ::bind(listener.fd, res->ai_addr, res->ai_addrlen);
  const int bind_errno = errno;
  ::freeaddrinfo(res);
  CHECK(bound == 0, "rendezvous: rank 0 cannot listen on {}:{}: {}", addr, port,
        std::strerror(bind_errno));
  CHECK(::listen(listener.fd, world) == 0, "rendezvous: listen failed: {}", std::strerror(errno));
  const uint32_t size = static_cast<uint32_t>(payload.size());
  for (int joined = 1; joined < world; ++joined) {
    CHECK(wait_fd(listener.fd, POLLIN, deadline),
          "rendezvous: rank 0 on {}:{} timed out with {} "
          "of {} ranks joined",
          addr, port, joined, world);
    Fd peer(::accept(listener.fd, nullptr, nullptr));
    CHECK(peer.fd >= 0, "rendezvous: accept failed: {}", std::strerror(errno));
    int32_t peer_rank = -1;
    recv_all(peer.fd, &peer_rank, sizeof(peer_rank), deadline, "a rank number");
    CHECK(peer_rank > 0 && peer_rank < world, "rendezvous: a peer says it is rank {} of {}",
          peer_rank, world);
    send_all(peer.fd, &size, sizeof(size), "the payload size");
    send_all(peer.fd, payload.data(), payload.size(), "the payload");
  }
  return payload;
}

std::vector<char> join(const std::string& addr, int port, int rank, Clock::time_point deadline) {
  while (true) {
    addrinfo* res = resolve(addr, port, false);
    Fd sock(::socket(res->ai_family, res->ai_socktype, res->ai_protocol));
    const int rc = sock.fd >= 0 ? ::connect(sock.fd, res->ai_addr, res->ai_addrlen) : -1;
    ::freeaddrinfo(res);
    if (rc == 0) {
      const int32_t me = rank;
      send_all(sock.fd, &me, sizeof(me), "this rank's number");
      uint32_t size = 0;
      recv_all(sock.fd, &size, sizeof(size), deadline, "the payload size");
      CHECK(size <= (1u << 20), "rendezvous: payload of {} bytes announced (at most 1 MiB)", size);
      std::vector<char> payload(size);
      recv_all(sock.fd, payload.data(), size, deadline, "the payload");
      return payload;
    }
    // Rank 0 may not be listening yet: try again every 50 ms until the deadline.
    CHECK(ms_left(deadline) > 0, "rendezvous: rank {} could not reach rank 0 at {}:{} ({})", rank,
          addr, port, std::strerror(errno));
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

Clock::time_point deadline_after(double seconds) {
  return Clock::now() + std::chrono::milliseconds(static_cast<int64_t>(seconds * 1000));
}

}  // namespace

std::vector<char> tcp_broadcast(const std::string& addr, int port, int rank, int world,
                                const std::vector<char>& payload, double timeout_s) {
  CHECK(world >= 1 && rank >= 0 && rank < world, "rendezvous: rank {} of world {}", rank, world);
  CHECK(port > 0 && port < 65536, "rendezvous: MASTER_PORT must be in 1..65535, got {}", port);
  const Clock::time_point deadline = deadline_after(timeout_s);
  if (rank == 0) return serve(addr, port, world, payload, deadline);
  return join(addr, port, rank, deadline);
}

std::vector<char> file_broadcast(const std::string& path, int rank,
                                 const std::vector<char>& payload, double timeout_s) {
  namespace fs = std::filesystem;
  if (rank == 0) {
    const std::string tmp = path + ".tmp";
    {
      std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
      CHECK(out.good(), "rendezvous: cannot write {}", tmp);
      out.write(payload.data(), static_cast<std::streamsize>(payload.size()));
      CHECK(out.good(), "rendezvous: writing {} failed", tmp);
    }
    std::error_code ec;
    fs::rename(tmp, path, ec);
    CHECK(!ec, "rendezvous: renaming {} to {} failed: {}", tmp, path, ec.message());
    return payload;
  }
  const Clock::time_point deadline = deadline_after(timeout_s);
  while (!fs::exists(path)) {
    CHECK(ms_left(deadline) > 0, "rendezvous: rank {} timed out after {} s waiting for {}", rank,
          timeout_s, path);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  std::ifstream in(path, std::ios::binary);
  CHECK(in.good(), "rendezvous: cannot read {}", path);
  return std::vector<char>(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

int find_free_port() {
  Fd sock(::socket(AF_INET, SOCK_STREAM, 0));
  CHECK(sock.fd >= 0, "find_free_port: socket() failed: {}", std::strerror(errno));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;  // the kernel picks a free one
  CHECK(::bind(sock.fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0,
        "find_free_port: bind failed: {}", std::strerror(errno));
  socklen_t len = sizeof(a);
  CHECK(::getsockname(sock.fd, reinterpret_cast<sockaddr*>(&a), &len) == 0,
        "find_free_port: getsockname failed: {}", std::strerror(errno));
  return ntohs(a.sin_port);
}

}  // namespace mt::training
