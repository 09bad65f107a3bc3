// One batch of the ingest loop: poll, decode and validate, group the cells
// per row; after the store write (ingester_store_write.cc), finish it in
// order: notices and dead letters acknowledged, offsets stored, commit.
#include <glog/logging.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <unordered_map>
#include <unordered_set>

#include "ingest/internal/ingester_impl.h"
#include "proto/events.pb.h"

namespace seg::ingest::internal {
namespace {

void DedupeCells(std::vector<store::Cell>* cells) {
  if (cells->size() < 2) return;
  std::stable_sort(cells->begin(), cells->end(), [](const store::Cell& a, const store::Cell& b) {
    return a.qualifier < b.qualifier;
  });
  // Keep the last of equal qualifiers (the latest delivery).
  size_t out = 0;
  for (size_t i = 0; i < cells->size(); ++i) {
    if (i + 1 < cells->size() && (*cells)[i + 1].qualifier == (*cells)[i].qualifier) continue;
    if (out != i) (*cells)[out] = std::move((*cells)[i]);
    ++out;
  }
  cells->resize(out);
}

}  // namespace

StatusOr<size_t> IngesterImpl::ProcessBatch(std::stop_token stop) {
  // ---- 1. poll a batch bounded by count and time
  std::vector<kafka::Batch> polled;
  std::vector<const kafka::Message*> messages;
  int64_t start_us = clock_->MonotonicUs();
  auto poll_start = std::chrono::steady_clock::now();
  auto poll_deadline = poll_start + std::chrono::milliseconds(options_.batch_max_ms);
  bool first = true;
  SEG_RETURN_IF_ERROR(ResumeIfPaused());
  // Messages polled ahead during the last write, or while the consumer
  // was paused, come first.
  for (kafka::Batch& carried : carry_) {
    for (const kafka::Message& m : carried) messages.push_back(&m);
    polled.push_back(std::move(carried));
    first = false;
  }
  carry_.clear();
  while (messages.size() < static_cast<size_t>(options_.batch_max_events)) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        poll_deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) break;
    if (!messages.empty() && options_.batch_idle_ms > 0) {
      left = std::min(left, std::chrono::milliseconds(options_.batch_idle_ms));
    }
    SEG_ASSIGN_OR_RETURN(kafka::Batch batch,
                         consumer_->PollBatch(options_.batch_max_events - messages.size(), left));
    if (batch.empty()) break;
    if (first) {
      // The time bound counts from the first message, not from the wait.
      first = false;
      poll_deadline =
          std::chrono::steady_clock::now() + std::chrono::milliseconds(options_.batch_max_ms);
      start_us = clock_->MonotonicUs();
    }
    for (const kafka::Message& m : batch) messages.push_back(&m);
    polled.push_back(std::move(batch));
  }
  lag_.Set(double(consumer_->Lag()));
  if (messages.empty()) {
    // Idle: finish what is in flight so a quiet stream still commits.
    SEG_RETURN_IF_ERROR(FinishAll(stop));
    return size_t{0};
  }
  in_batch_ = true;
  events_in_.Inc(double(messages.size()));
  batch_events_.Observe(double(messages.size()));

  // ---- 2. decode, validate, encode
  int64_t decode_start_us = clock_->MonotonicUs();
  poll_latency_.Observe(double(decode_start_us - start_us) / 1e6);
  int64_t now_ms = clock_->NowMs();
  std::vector<DeadLetterItem> dead;
  std::vector<RowBuild> rows;
  std::unordered_map<std::string, size_t> row_index;
  Event event;
  store::Cell cell;
  for (size_t i = 0; i < messages.size(); ++i) {
    std::optional<Rejection> rejection =
        DecodeAndValidate(messages[i]->value(), options_.validation, now_ms, &event);
    if (!rejection) {
      Status s = EncodeEventCell(event, options_.family, &cell);
      if (!s.ok()) rejection = Rejection{reason::kBadIp, std::string(s.message())};
    }
    if (rejection) {
      dead.push_back({i, rejection->reason, std::move(rejection->detail)});
      continue;
    }
    auto [it, inserted] = row_index.try_emplace(event.user_id(), rows.size());
    if (inserted) {
      rows.emplace_back();
      rows.back().put.row = event.user_id();
    }
    RowBuild& row = rows[it->second];
    row.put.cells.push_back(std::move(cell));
    row.messages.push_back(i);
    cell = store::Cell();
  }
  // Duplicates inside one batch collapse onto one cell (same qualifier).
  for (RowBuild& row : rows) DedupeCells(&row.put.cells);
  decode_latency_.Observe(double(clock_->MonotonicUs() - decode_start_us) / 1e6);

  // ---- 3. dead letters go out first and fly while the store works
  auto batch = std::make_unique<InFlight>();
  batch->start_us = start_us;
  SEG_RETURN_IF_ERROR(ProduceDeadLetters(messages, dead, stop, &batch->dl_tags));

  // ---- 4. the store write, retried until acknowledged; the previous
  //         batches are finished (and committed) right after it, beyond
  //         max_batches_in_flight, or as soon as the write has to be retried
  SEG_RETURN_IF_ERROR(WriteRows(messages, &rows, &dead, &batch->dl_tags, stop, &batch->committed));
  batch->acked_at_ms = clock_->NowMs();
  if (watermark_) {
    // Every message of the batch is stored or dead-lettered: either way
    // nothing below it can still change a row.
    std::map<int32_t, int64_t> next;
    for (const kafka::Message* m : messages) {
      int64_t& n = next[m->partition()];
      n = std::max(n, m->offset() + 1);
    }
    for (const auto& [partition, offset] : next) watermark_->OnStored(partition, offset);
  }
  while (!in_flight_.empty() &&
         static_cast<int32_t>(in_flight_.size()) >= options_.max_batches_in_flight) {
    SEG_RETURN_IF_ERROR(FinishOldest(stop));
  }

  // ---- 5. notices of this batch start flying; steps 6-7 happen in
  //         FinishOldest, during the next batches' writes
  if (options_.notices_enabled && !batch->committed.empty()) {
    auto pending = notifier_->StartPublish(batch->committed, batch->acked_at_ms);
    if (pending.ok()) {
      batch->notices = std::move(pending).value();
    } else {
      LOG_EVERY_N(WARNING, 100) << "ingest: " << pending.status();  // retried in Finish
    }
  }
  batch->polled = std::move(polled);
  batch->messages = std::move(messages);
  batch->dead = std::move(dead);
  size_t n = batch->messages.size();
  in_flight_.push_back(std::move(batch));
  stats_events_in_ += static_cast<int64_t>(n);
  // Fully synchronous mode: finish now.
  if (options_.max_batches_in_flight <= 0) SEG_RETURN_IF_ERROR(FinishAll(stop));
  return n;
}

Status IngesterImpl::FinishAll(std::stop_token stop) {
  while (!in_flight_.empty()) SEG_RETURN_IF_ERROR(FinishOldest(stop));
  return Status::OK();
}

Status IngesterImpl::FinishOldest(std::stop_token stop) {
  if (in_flight_.empty()) return Status::OK();
  InFlight& f = *in_flight_.front();
  if (options_.notices_enabled && !f.committed.empty()) {
    int64_t t0 = clock_->MonotonicUs();
    Status s = f.notices ? f.notices->Wait(std::chrono::milliseconds(wait_limit_ms_))
                         : UnavailableError("notices not produced");
    if (!s.ok() && stop.stop_requested()) {
      // Shutting down: no blocking re-publish; the batch stays uncommitted.
      return CancelledError("ingest: stopped before the change notices were acknowledged: " +
                            std::string(s.message()));
    }
    if (!s.ok()) {
      kafka_retries_.Inc();
      stats_kafka_retries_++;
      LOG_EVERY_N(WARNING, 10) << "ingest: change notices: " << s << "; publishing again";
      SEG_RETURN_IF_ERROR(Retry(stop, options_.kafka_backoff, "publish change notices",
                                &kafka_retries_, &stats_kafka_retries_,
                                [&] { return notifier_->Publish(f.committed, f.acked_at_ms); }));
    }
    f.notices.reset();
    notice_latency_.Observe(double(clock_->MonotonicUs() - t0) / 1e6);
    std::unordered_set<std::string_view> users;
    for (const auto& c : f.committed) users.insert(c.row);
    stats_notices_ += static_cast<int64_t>(users.size());
  }
  SEG_RETURN_IF_ERROR(AwaitDeadLetters(f.messages, f.dead, stop, &f.dl_tags));
  for (const kafka::Batch& b : f.polled) {
    Status s = consumer_->StoreOffsets(b);
    if (!s.ok()) LOG(WARNING) << "ingest: store offsets: " << s;
  }
  Status commit = consumer_->Commit(options_.sync_commit);
  if (!commit.ok()) {
    // The stored offsets stay; the next commit (or the revoke) covers them.
    commit_failures_.Inc();
    stats_commit_failures_++;
    LOG_EVERY_N(WARNING, 100) << "ingest: " << commit;
  }
  batch_latency_.Observe(double(clock_->MonotonicUs() - f.start_us) / 1e6);
  stats_batches_++;
  in_flight_.pop_front();
  return Status::OK();
}

}  // namespace seg::ingest::internal
