#include "detail/block_pool.hpp"

#include <sys/mman.h>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define PAYLOADRUN_POISON(p, n) ASAN_POISON_MEMORY_REGION(p, n)
#define PAYLOADRUN_UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION(p, n)
#else
#define PAYLOADRUN_POISON(p, n) ((void)(p), (void)(n))
#define PAYLOADRUN_UNPOISON(p, n) ((void)(p), (void)(n))
#endif

namespace payloadrun::detail {
namespace {
constexpr std::size_t chunk_bytes = 64 * 1024;  // ~60 invocations: one mmap each
}

BlockPool::~BlockPool() {
  for (const Chunk& c : chunks_) {
    PAYLOADRUN_UNPOISON(c.base, c.bytes);
    if (c.mapped) {
      ::munmap(c.base, c.bytes);
    } else {
      ::operator delete(c.base, std::align_val_t{64});
    }
  }
}

bool BlockPool::refill() noexcept {
  if (chunks_.size() == chunks_.capacity()) {
    try {
      chunks_.reserve(chunks_.empty() ? 8 : chunks_.size() * 2);
    } catch (...) {
      return false;
    }
  }
  void* base = ::mmap(nullptr, chunk_bytes, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
  bool mapped = true;
  if (base == MAP_FAILED) {  // the heap then, faulted in as used
    mapped = false;
    base = ::operator new(chunk_bytes, std::align_val_t{64}, std::nothrow);
    if (base == nullptr) return false;
  }
  chunks_.push_back({base, chunk_bytes, mapped});
  // Blocks in address order, the first on top of the free list.
  auto* bytes = static_cast<unsigned char*>(base);
  const std::size_t count = chunk_bytes / block_;
  for (std::size_t i = count; i-- > 0;) {
    auto* f = reinterpret_cast<Free*>(bytes + i * block_);
    f->next = free_;
    free_ = f;
  }
  PAYLOADRUN_POISON(base, chunk_bytes);
  return true;
}

void* BlockPool::allocate(std::size_t size, std::size_t align) {
  if (block_ == 0 && size >= sizeof(Free) && size <= chunk_bytes / 8 && align <= 64 &&
      align >= alignof(Free)) {
    size_ = size;
    block_ = (size + align - 1) / align * align;
    align_ = align;
  }
  if (block_ == 0 || size != size_ || align != align_) return ::operator new(size, std::align_val_t{align});
  if (free_ == nullptr && !refill()) throw std::bad_alloc();
  Free* f = free_;
  PAYLOADRUN_UNPOISON(f, block_);
  free_ = f->next;
  return f;
}

void BlockPool::deallocate(void* p, std::size_t size, std::size_t align) noexcept {
  if (block_ == 0 || size != size_ || align != align_) {
    ::operator delete(p, std::align_val_t{align});
    return;
  }
  auto* f = static_cast<Free*>(p);  // every block of this size is a chunk's
  f->next = free_;
  free_ = f;
  PAYLOADRUN_POISON(p, block_);
}

}  // namespace payloadrun::detail
