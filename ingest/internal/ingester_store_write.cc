// The store write of a batch: rows in a few chunks written concurrently,
// retried with backoff until acknowledged; rows the store rejects become
// dead letters. While retrying, the consumer is paused and polled
// (backpressure that keeps the group membership).
#include <glog/logging.h>

#include <algorithm>
#include <chrono>
#include <future>

#include "ingest/internal/ingester_impl.h"

namespace seg::ingest::internal {

Status IngesterImpl::WriteRows(const std::vector<const kafka::Message*>& messages,
                               std::vector<RowBuild>* rows, std::vector<DeadLetterItem>* dead,
                               std::vector<uint64_t>* dl_tags, std::stop_token stop,
                               std::vector<bridge::CommittedRow>* committed) {
  if (rows->empty()) return Status::OK();
  batch_rows_.Observe(double(rows->size()));
  // Rows are split into a few chunks written concurrently (each row stays
  // atomic; a batch across rows never was): the store serves each
  // connection on its own thread, so the write uses more than one core.
  size_t parallel = options_.unbatched_puts ? 1 : std::max(1, options_.store_put_parallelism);
  if (rows->size() < 256) parallel = 1;
  size_t per = (rows->size() + parallel - 1) / parallel;
  parallel = (rows->size() + per - 1) / per;
  std::vector<std::vector<store::RowPut>> chunks(parallel);
  for (size_t g = 0; g < rows->size(); ++g) chunks[g / per].push_back(std::move((*rows)[g].put));
  auto row_at = [&](size_t g) -> const store::RowPut& { return chunks[g / per][g % per]; };

  auto put_one = [&](const std::vector<store::RowPut>& batch) -> Status {
    if (!options_.unbatched_puts) return store_->Put(options_.table, batch);
    std::vector<store::RowPut> one(1);
    for (const store::RowPut& p : batch) {
      for (const store::Cell& c : p.cells) {
        one[0].row = p.row;
        one[0].cells.assign(1, c);
        SEG_RETURN_IF_ERROR(store_->Put(options_.table, one));
      }
    }
    return Status::OK();
  };
  std::vector<bool> chunk_done(parallel, false);
  // The first attempt writes every chunk on other threads while this one
  // finishes the batches beyond max_batches_in_flight (waits for their
  // notices, commits) and then polls the next batch's messages: both used
  // to follow the write. Retries write chunk 0 here.
  const bool overlap = options_.max_batches_in_flight > 0 &&
                       static_cast<int32_t>(in_flight_.size()) >= options_.max_batches_in_flight;
  bool first_attempt = true;
  Status overlapped;
  auto put_chunks = [&]() -> Status {
    int64_t t0 = clock_->MonotonicUs();
    std::vector<std::pair<size_t, std::future<Status>>> futures;
    for (size_t c = first_attempt ? 0 : 1; c < parallel; ++c) {
      if (chunk_done[c]) continue;
      futures.emplace_back(
          c, std::async(std::launch::async, [&put_one, &chunks, c] { return put_one(chunks[c]); }));
    }
    Status first;
    if (first_attempt) {
      first_attempt = false;
      while (overlap && overlapped.ok() && !in_flight_.empty() &&
             static_cast<int32_t>(in_flight_.size()) >= options_.max_batches_in_flight) {
        overlapped = FinishOldest(stop);
      }
      PollAhead(futures);
    } else if (!chunk_done[0]) {
      first = put_one(chunks[0]);
      chunk_done[0] = first.ok();
    }
    for (auto& [c, f] : futures) {
      Status r = f.get();
      chunk_done[c] = r.ok();
      if (!r.ok() && first.ok()) first = r;
    }
    if (first.ok()) store_latency_.Observe(double(clock_->MonotonicUs() - t0) / 1e6);
    return first;
  };

  Status s =
      Retry(stop, options_.store_backoff, "store put", &store_retries_, &stats_store_retries_, [&] {
        Status r = put_chunks();
        if (!r.ok() && IsRetryable(r) && !in_flight_.empty()) {
          // Do not hold the previous batches hostage to
          // this outage: finish and commit them now.
          Status f = FinishAll(stop);
          if (!f.ok()) {
            LOG_EVERY_N(WARNING, 10) << "ingest: " << f;
          }
        }
        return r;
      });
  // Written, but an older batch could not be finished (stopping): the
  // caller abandons this one uncommitted, as when finishing follows.
  if (s.ok() && !overlapped.ok()) return overlapped;
  std::vector<bool> rejected(rows->size(), false);
  if (!s.ok() && s.code() == StatusCode::kInvalidArgument) {
    // Some row is invalid for the store: isolate it, write the others.
    LOG(WARNING) << "ingest: store rejected the batch, writing rows one by one: " << s;
    for (size_t g = 0; g < rows->size(); ++g) {
      if (chunk_done[g / per]) continue;
      std::vector<store::RowPut> one{row_at(g)};
      Status r = Retry(stop, options_.store_backoff, "store put (row)", &store_retries_,
                       &stats_store_retries_, [&] { return put_one(one); });
      if (r.ok()) continue;
      if (r.code() != StatusCode::kInvalidArgument) return r;  // Cancelled
      rejected[g] = true;
      for (size_t m : (*rows)[g].messages) {
        dead->push_back({m, reason::kStoreRejected, std::string(r.message())});
      }
    }
    SEG_RETURN_IF_ERROR(ProduceDeadLetters(messages, *dead, stop, dl_tags));
  } else if (!s.ok()) {
    return s;
  }
  committed->reserve(rows->size());
  for (size_t g = 0; g < rows->size(); ++g) {
    if (rejected[g]) continue;
    const store::RowPut& p = row_at(g);
    int64_t newest = 0;
    for (const store::Cell& c : p.cells) newest = std::max(newest, c.timestamp);
    committed->push_back({p.row, newest, static_cast<int64_t>(p.cells.size())});
    events_written_.Inc(double(p.cells.size()));
    stats_events_written_ += static_cast<int64_t>(p.cells.size());
  }
  return Status::OK();
}

bool IngesterImpl::SleepFor(std::stop_token stop, int64_t ms) {
  if (stop.stop_requested()) return false;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
  if (!closed_ && consumer_ && !consumer_->paused()) {
    Status p = consumer_->Pause();
    if (p.ok()) {
      pauses_.Inc();
      LOG(INFO) << "ingest: consumer paused while retrying";
    } else {
      LOG(WARNING) << "ingest: " << p;
    }
  }
  while (!stop.stop_requested()) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return true;
    if (closed_ || !consumer_ || !consumer_->paused()) {
      std::unique_lock<std::mutex> lock(sleep_mu_);
      sleep_cv_.wait_for(lock, stop, left, [] { return false; });
      continue;
    }
    // Serves rebalances and resets the poll interval; returns messages
    // only from a fetch that raced the pause: they are kept for the next
    // batch (the consumer position is already past them).
    auto batch = consumer_->PollBatch(size_t(options_.batch_max_events),
                                      std::min(left, std::chrono::milliseconds(100)));
    if (!batch.ok()) {
      LOG_EVERY_N(WARNING, 10) << "ingest: poll while paused: " << batch.status();
      std::unique_lock<std::mutex> lock(sleep_mu_);
      sleep_cv_.wait_for(lock, stop, std::min(left, std::chrono::milliseconds(100)),
                         [] { return false; });
    } else if (!batch->empty()) {
      carry_.push_back(std::move(batch).value());
    }
  }
  return false;
}

void IngesterImpl::PollAhead(const std::vector<std::pair<size_t, std::future<Status>>>& writes) {
  if (!consumer_ || consumer_->paused()) return;
  auto writing = [&writes] {
    for (const auto& [chunk, f] : writes) {
      if (f.wait_for(std::chrono::seconds(0)) != std::future_status::ready) return true;
    }
    return false;
  };
  size_t have = 0;
  for (const kafka::Batch& b : carry_) have += b.size();
  const size_t limit = static_cast<size_t>(options_.batch_max_events);
  while (have < limit && writing()) {
    auto batch = consumer_->PollBatch(limit - have, std::chrono::milliseconds(1));
    if (!batch.ok()) {
      LOG_EVERY_N(WARNING, 10) << "ingest: poll ahead: " << batch.status();
      return;  // the next batch's own poll reports it
    }
    if (batch->empty()) continue;
    have += batch->size();
    carry_.push_back(std::move(batch).value());
  }
}

Status IngesterImpl::ResumeIfPaused() {
  if (!consumer_ || !consumer_->paused()) return Status::OK();
  LOG(INFO) << "ingest: consumer resumed";
  return consumer_->Resume();
}

}  // namespace seg::ingest::internal
