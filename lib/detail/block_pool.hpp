// Invocation memory for bursts (spawn_queue.cpp's queued spawns): blocks of
// one size carved from chunks the kernel fills in one call (MAP_POPULATE).
// A fresh heap costs a page fault per 4 KiB first touched, ~2 us each on a
// small VM: a thousand queued spawn() calls spent 0.6 of their 0.9 us each
// faulting in their Invocation. Freed blocks are kept for the next
// invocations; the chunks go with the pool, when the Supervisor and every
// invocation are gone (each block's allocator holds the pool). Loop thread
// only, as everything that makes or drops an Invocation.
#pragma once

#include <cstddef>
#include <memory>
#include <new>
#include <vector>

namespace payloadrun::detail {

class __attribute__((visibility("hidden"))) BlockPool {
 public:
  BlockPool() = default;
  BlockPool(const BlockPool&) = delete;
  BlockPool& operator=(const BlockPool&) = delete;
  ~BlockPool();

  /// `size` bytes aligned to `align`: a pooled block when `size` is the
  /// pool's block size (set by the first call), else operator new. Throws
  /// std::bad_alloc.
  void* allocate(std::size_t size, std::size_t align);
  void deallocate(void* p, std::size_t size, std::size_t align) noexcept;

  std::size_t chunks() const noexcept { return chunks_.size(); }

 private:
  struct Free {
    Free* next;
  };
  struct Chunk {
    void* base;
    std::size_t bytes;
    bool mapped;  // else from operator new (mmap failed)
  };
  bool refill() noexcept;  // false: no chunk (the caller falls back)

  std::size_t size_ = 0;   // the pooled size: 0 until the first allocation
  std::size_t block_ = 0;  // its stride in a chunk (size_ rounded up to align_)
  std::size_t align_ = 0;
  Free* free_ = nullptr;
  std::vector<Chunk> chunks_;
};

/// A std allocator drawing from a shared BlockPool (for allocate_shared).
/// Hidden: std's templates instantiated with it (the shared_ptr control
/// block) would otherwise be exported from the library.
template <class T>
class __attribute__((visibility("hidden"))) PoolAllocator {
 public:
  using value_type = T;
  explicit PoolAllocator(std::shared_ptr<BlockPool> pool) noexcept : pool_(std::move(pool)) {}
  template <class U>
  PoolAllocator(const PoolAllocator<U>& other) noexcept : pool_(other.pool()) {}

  T* allocate(std::size_t n) { return static_cast<T*>(pool_->allocate(n * sizeof(T), alignof(T))); }
  void deallocate(T* p, std::size_t n) noexcept { pool_->deallocate(p, n * sizeof(T), alignof(T)); }
  const std::shared_ptr<BlockPool>& pool() const noexcept { return pool_; }

  template <class U>
  bool operator==(const PoolAllocator<U>& o) const noexcept {
    return pool_ == o.pool();
  }

 private:
  std::shared_ptr<BlockPool> pool_;
};

}  // namespace payloadrun::detail
