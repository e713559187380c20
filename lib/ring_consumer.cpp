// Ring consumer side: the public RingConsumer (its Impl, which reads the
// records: detail/ring_consumer_impl.hpp), RingConsumer::read (in place,
// committing a batch at a time) and RingView.
#include "detail/ring_consumer_impl.hpp"

namespace payloadrun {

// Import the oldest journal not yet imported (one at a time: memory stays
// bounded by one journal, at most detail::spill_chunk_bytes of records).
// True when one was imported.
bool RingConsumer::Impl::import_spill() {
  last_spill_scan_ns = detail::monotonic_ns();
  more_spills = false;
  for (const std::string& path : detail::list_spills(options.spill_dir, map.name())) {
    if (imported.count(path) != 0) continue;
    if (!spilled.empty()) {
      more_spills = true;  // after the ones being returned now
      return false;
    }
    imported.insert(path);  // (an unreadable one is tried again by the next consumer)
    detail::SpillContents c = detail::read_spill(path);
    for (auto& p : c.problems) {
      ++stats.corrupt;
      report(fmt::format("ring '{}': {}", map.name(), p));
    }
    if (!c.readable) continue;  // left where it is
    const std::size_t file = spills.size();
    spills.push_back({path, c.spill_id, 0, c.damaged});
    for (auto& r : c.records) {
      ++stats.records;
      RingHold hold;
      hold.spills.push_back(c.spill_id);
      std::optional<RingMessage> out;
      deliver(r.meta, std::move(r.body), origin_of('s', c.spill_id, r.offset), hold,
              atomic_message(r.meta), out);
      if (out) {
        ++spills[file].waiting;
        spilled.emplace_back(std::move(*out), file);
      }
    }
    report(fmt::format("ring '{}': imported {} records from spill journal {}{}", map.name(),
                       c.records.size(), path, c.damaged ? " (damaged: kept for inspection)" : ""));
    more_spills = true;  // there may be more behind it
    return true;
  }
  return false;
}

// A fragment: the first opens a partial message, the next ones must follow
// in sequence, the last delivers the whole (or the message is lost once).
RingConsumer::Impl::Step RingConsumer::Impl::fragment(const detail::RecordMeta& m, RecordType type, std::string body,
                                                      std::string origin, const RingHold& hold, bool atomic,
                                                      std::optional<RingMessage>& out) {
  const auto key = std::make_pair(m.pid, m.message_id);
  // (A message is at most 4 GiB: total_length is a u32.)
  if (m.frag_index >= m.frag_count) {
    ++stats.corrupt;
    report(fmt::format("ring '{}': fragment {}/{} of pid {} is inconsistent; skipped",
                       map.name(), m.frag_index, m.frag_count, m.pid));
    return Step::progressed;
  }
  auto it = partials.find(key);
  if (m.frag_index == 0) {
    counted.erase(key);
    if (it != partials.end()) drop_partial(m.pid, m.message_id, "restarted");
    Partial p{type, m.payload_index, m.frag_count, 0, m.total_length, {}, std::move(origin), {}, atomic};
    // A message larger than the ring cannot hold its first fragments
    // uncommitted until its last arrives (that could wait forever).
    if (atomic) p.hold = hold;
    // total_length is untrusted: reserve at most a ring's worth up front;
    // the body grows as fragments really arrive.
    p.body.reserve(static_cast<std::size_t>(std::min<std::uint64_t>(m.total_length, map.capacity())));
    it = partials.emplace(key, std::move(p)).first;
  } else if (it == partials.end()) {
    // Its first fragments were lost (abandoned, corrupt, or consumed by a
    // consumer that stopped), or it was already counted incomplete.
    const bool last = m.frag_index + 1 == m.frag_count;
    if (counted.count(key) != 0) {
      if (last) counted.erase(key);
    } else if (last) {
      drop_partial(m.pid, m.message_id, "its first fragments are missing");
    }
    return Step::progressed;
  } else if (it->second.atomic) {
    it->second.hold.add(hold);
  }
  Partial& p = it->second;
  if (m.frag_index != p.next_frag || m.frag_count != p.frag_count ||
      m.total_length != p.total_length || p.body.size() + body.size() > p.total_length) {
    lose_message(m, "fragments out of sequence");
    return Step::progressed;
  }
  p.body += body;
  ++p.next_frag;
  if (p.next_frag < p.frag_count) return Step::progressed;
  if (p.body.size() != p.total_length) {
    drop_partial(m.pid, m.message_id, "length mismatch");
    return Step::progressed;
  }
  RingHold whole = p.hold;
  whole.add(hold);
  out = RingMessage{p.type, m.pid, p.payload_index, m.message_id, std::move(p.body), std::move(p.origin), whole};
  partials.erase(it);
  return Step::message;
}

// Remove the journals whose records are all committed and no partial holds.
void RingConsumer::Impl::remove_spills(const RingHold& keep) {
  const std::vector<std::uint64_t> held = held_spills(keep);
  for (auto it = spills.begin(); it != spills.end();) {
    const bool in_use = it->waiting != 0 || std::find(held.begin(), held.end(), it->id) != held.end();
    if (in_use) {
      ++it;
      continue;
    }
    if (it->keep) {
      // Damaged: kept for inspection (a later consumer imports it again;
      // its lines are deduplicated by origin).
    } else if (::unlink(it->path.c_str()) == 0 || errno == ENOENT) {
      imported.erase(it->path);
    } else {
      // Still imported: never read it again in this consumer.
      report(fmt::format("ring '{}': cannot remove imported spill journal {}: {}", map.name(),
                         it->path, std::strerror(errno)));
    }
    const std::size_t gone = static_cast<std::size_t>(it - spills.begin());
    it = spills.erase(it);
    for (auto& [m, file] : spilled) {
      if (file > gone) --file;
    }
  }
}


std::string RingView::origin() const { return message_ != nullptr ? message_->origin : origin_of('r', ring_id_, position_); }

RingHold RingView::hold() const {
  if (message_ != nullptr) return message_->hold;
  RingHold h;
  h.ring_position = position_;
  return h;
}

RingMessage RingView::to_message() const {
  if (message_ != nullptr) return *message_;
  return RingMessage{type, pid, payload_index, message_id, std::string(body), origin(), hold()};
}

void RingHold::add(const RingHold& other) {
  ring_position = std::min(ring_position, other.ring_position);
  for (std::uint64_t id : other.spills) {
    if (std::find(spills.begin(), spills.end(), id) == spills.end()) spills.push_back(id);
  }
}

RingConsumer::RingConsumer(const std::string& name, RingOptions options)
    : impl_(std::make_unique<Impl>(name, options)) {}
RingConsumer::~RingConsumer() = default;
RingConsumer::RingConsumer(RingConsumer&&) noexcept = default;
RingConsumer& RingConsumer::operator=(RingConsumer&&) noexcept = default;

std::optional<RingMessage> RingConsumer::next(std::chrono::milliseconds timeout) {
  try {
    std::optional<RingMessage> out;
    impl_->next(timeout, out, nullptr);
    return out;
  } catch (const std::bad_alloc&) {
    ++impl_->stats.incomplete;  // counted: the record it was reading is lost
    impl_->report("ring: out of memory while reading a record; it is counted incomplete");
    return std::nullopt;
  }
}

std::size_t RingConsumer::read(std::chrono::milliseconds timeout, const std::function<void(const RingView&)>& fn,
                               std::size_t max) {
  Impl& im = *impl_;
  // Commit what was read (and handed over) so far: at the end, and every
  // eighth of the ring, so producers get room back while a batch runs.
  const std::uint64_t batch = im.map.capacity() / 8;
  auto commit_read = [&im] {
    if (im.options.auto_commit && im.read_pos > im.committed) im.store_tail(im.read_pos);
  };
  struct Restore {
    Impl& im;
    decltype(commit_read)& commit;
    ~Restore() {
      im.defer_commit = false;
      commit();
    }
  } restore{im, commit_read};
  im.defer_commit = true;
  std::size_t n = 0;
  RingView view;
  std::optional<RingMessage> out;  // (outside the loop: constructing one zeroes ~200 bytes)
  while (n < max) {
    out.reset();
    try {
      if (!im.next(n == 0 ? timeout : std::chrono::milliseconds(0), out, &view, n != 0)) break;
    } catch (const std::bad_alloc&) {
      ++im.stats.incomplete;
      im.report("ring: out of memory while reading a record; it is counted incomplete");
      break;
    }
    if (out) detail::RingViewAccess::set_message(view, *out);
    ++n;
    fn(view);
    if (im.read_pos - im.committed >= batch) commit_read();
  }
  return n;
}

bool RingConsumer::empty() const noexcept {
  return impl_->spilled.empty() &&
         impl_->map.header().head.load(std::memory_order_acquire) == impl_->read_pos;
}
void RingConsumer::commit(const RingHold& keep) { impl_->commit(keep); }
std::uint64_t RingConsumer::ring_id() const noexcept { return impl_->ring_id; }
std::uint64_t RingConsumer::committed_position() const noexcept {
  return impl_->map.header().tail.load(std::memory_order_acquire);
}
bool RingConsumer::has_partial() const noexcept { return !impl_->partials.empty(); }

void RingConsumer::abandon_partials() {
  auto& partials = impl_->partials;
  for (auto it = partials.begin(); it != partials.end();) {
    const auto next_it = std::next(it);
    // Without auto_commit a message reserved in one step stays uncommitted
    // (held) for the next consumer: only the others are lost here.
    if (impl_->options.auto_commit || !it->second.atomic) {
      const auto key = it->first;
      impl_->drop_partial(key.first, key.second, "the consumer stopped before its last fragment");
    }
    it = next_it;
  }
}

const RingStats& RingConsumer::stats() const noexcept { return impl_->stats; }
std::vector<std::string> RingConsumer::take_reports() { return std::exchange(impl_->reports, {}); }
std::size_t RingConsumer::capacity() const noexcept { return impl_->map.capacity(); }

}  // namespace payloadrun
