// The CUDA runtime: device queries, copies, the caching allocator (reuse, statistics, the
// out-of-memory Error), and the tensor kernels (fill, convert, strided copy) against the CPU.
#include <cmath>

#include "cuda/debug.h"
#include "cuda/runtime.h"
#include "tensor/random.h"
#include "tensor/tensor.h"
#include "tests/test_util.h"

using namespace mt;

TEST_SUITE("cuda") {
  CUDA_TEST_CASE("cuda: runtime reports a device and round-trips host memory") {
    CHECK(cuda::device_count() >= 1);
    CHECK(cuda::current_device() == 0);
    CHECK(cuda::device_name(0) != "none");
    std::vector<float> host = {1.5f, -2.0f, 3.25f, 7.0f, -0.5f};
    void* d = cuda::allocate(host.size() * sizeof(float));
    cuda::copy_host_to_device(d, host.data(), host.size() * sizeof(float));
    void* d2 = cuda::allocate(host.size() * sizeof(float));
    cuda::copy_device_to_device(d2, d, host.size() * sizeof(float));
    std::vector<float> back(host.size(), 0.0f);
    cuda::copy_device_to_host(back.data(), d2, host.size() * sizeof(float));
    CHECK(back == host);
    cuda::memset_zero(d2, host.size() * sizeof(float));
    cuda::copy_device_to_host(back.data(), d2, host.size() * sizeof(float));
    CHECK(back == std::vector<float>(host.size(), 0.0f));
    cuda::release(d);
    cuda::release(d2);
    CHECK_THROWS_WITH_TEXT(cuda::set_device(cuda::device_count()), "device(s) visible");
  }

  CUDA_TEST_CASE("cuda: uploads through the pinned staging ring arrive intact") {
    // 20 uploads cycle 5 times through the 4 staging buffers, each overwritten on the host right
    // after its copy is queued; a 9 MiB upload takes the pageable path.
    std::vector<void*> blocks;
    std::vector<float> host(1000);
    for (int k = 0; k < 20; ++k) {
      for (size_t i = 0; i < host.size(); ++i) host[i] = float(k * 1000 + int(i));
      blocks.push_back(cuda::allocate(host.size() * sizeof(float)));
      cuda::copy_host_to_device(blocks.back(), host.data(), host.size() * sizeof(float));
    }
    std::vector<float> big((size_t(9) << 20) / sizeof(float), 2.5f);
    void* big_block = cuda::allocate(big.size() * sizeof(float));
    cuda::copy_host_to_device(big_block, big.data(), big.size() * sizeof(float));
    for (int k = 0; k < 20; ++k) {
      cuda::copy_device_to_host(host.data(), blocks[k], host.size() * sizeof(float));
      CHECK(host.front() == float(k * 1000));
      CHECK(host.back() == float(k * 1000 + 999));
      cuda::release(blocks[k]);
    }
    std::vector<float> big_back(big.size(), 0.0f);
    cuda::copy_device_to_host(big_back.data(), big_block, big.size() * sizeof(float));
    CHECK(big_back == big);
    cuda::release(big_block);
  }

  CUDA_TEST_CASE("cuda: the caching allocator reuses blocks: no cudaMalloc in a steady state") {
    // A "training step": the same set of sizes allocated and released again and again.
    const std::vector<size_t> sizes = {4, 1000, 513, 1 << 20, (3 << 20) + 7, 12345678};
    auto step = [&] {
      std::vector<void*> blocks;
      for (size_t s : sizes) blocks.push_back(cuda::allocate(s));
      for (void* p : blocks) cuda::release(p);
    };
    step();
    const cuda::MemoryStats warm = cuda::memory_stats();
    for (int i = 0; i < 50; ++i) step();
    const cuda::MemoryStats after = cuda::memory_stats();
    CHECK(after.num_device_mallocs == warm.num_device_mallocs);
    CHECK(after.reserved == warm.reserved);
    CHECK(after.allocated == warm.allocated);
  }

  CUDA_TEST_CASE("cuda: allocator statistics count allocated, reserved and peak bytes") {
    cuda::empty_cache();
    const cuda::MemoryStats base = cuda::memory_stats();
    cuda::reset_peak_memory();
    void* a = cuda::allocate(1000);     // small: rounds to 1024
    void* b = cuda::allocate(3 << 20);  // large: rounds to 4 MiB
    cuda::MemoryStats s = cuda::memory_stats();
    CHECK(s.allocated - base.allocated == 1024 + (4 << 20));
    CHECK(s.reserved - base.reserved == 1024 + (4 << 20));
    CHECK(s.num_device_mallocs - base.num_device_mallocs == 2);
    cuda::release(b);
    s = cuda::memory_stats();
    CHECK(s.allocated - base.allocated == 1024);
    CHECK(s.peak_allocated - base.allocated == 1024 + (4 << 20));
    CHECK(s.reserved - base.reserved == 1024 + (4 << 20));  // cached, not freed
    void* c = cuda::allocate((3 << 20) + 100);  // same 4 MiB bin: the cached block comes back
    CHECK(c == b);
    cuda::release(c);
    cuda::release(a);
    cuda::empty_cache();
    CHECK(cuda::memory_stats().reserved == base.reserved);
  }

  CUDA_TEST_CASE("cuda: out of memory is an Error naming the request and the usage") {
    const size_t huge = size_t(1) << 50;  // 1 PiB
    CHECK_THROWS_WITH_TEXT(cuda::allocate(huge), "CUDA out of memory: tried to allocate");
    CHECK_THROWS_WITH_TEXT(cuda::allocate(huge), "reserved by the caching allocator");
    // The allocator still works afterwards.
    void* p = cuda::allocate(4096);
    CHECK(p != nullptr);
    cuda::release(p);
  }

  CUDA_TEST_CASE("cuda: fill, casts and strided copies match the CPU bit for bit") {
    cuda::set_poison_allocations(true);
    Generator gen(7);
    const Tensor x = Tensor::randn({5, 7, 3}, gen, kFloat64);
    // A permuted, sliced view: every copy goes through the strided kernel.
    const Tensor view = x.permute({2, 0, 1}).slice(2, 1, 7, 2);
    for (DType to : {kFloat32, kBFloat16, kFloat64, kInt32, kInt64}) {
      const Tensor cpu = view.to(to).contiguous();
      const Tensor gpu = view.cuda().contiguous().to(to);
      CHECK(gpu.is_cuda());
      CHECK(gpu.shape() == cpu.shape());
      CHECK(gpu.cpu().to_vector<double>() == cpu.to_vector<double>());
      const Tensor gpu_view = x.cuda().permute({2, 0, 1}).slice(2, 1, 7, 2).to(to).contiguous();
      CHECK(gpu_view.cpu().to_vector<double>() == cpu.to_vector<double>());
    }
    Tensor f = Tensor::empty({1031}, kBFloat16, Device::cuda());
    f.fill_(0.1);
    CHECK(f.cpu().to_vector<double>() == Tensor::full({1031}, 0.1, kBFloat16).to_vector<double>());
    // A broadcast source (stride 0) copied into a transposed destination.
    Tensor dst = Tensor::zeros({4, 6}, kFloat32, Device::cuda());
    Tensor dst_t = dst.transpose(0, 1);
    dst_t.copy_(Tensor::from_doubles({1, 2, 3, 4}, {4}).cuda().expand({6, 4}));
    CHECK(dst.cpu().to_vector<float>()[6 * 2 + 5] == 3.0f);
    cuda::set_poison_allocations(false);
  }

}  // TEST_SUITE
