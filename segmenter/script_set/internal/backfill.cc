#include "segmenter/script_set/internal/backfill.h"

#include <glog/logging.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <random>

namespace seg::segmenter::internal {
namespace {

int64_t ParseInt(std::string_view text) {
  int64_t v = 0;
  std::from_chars(text.data(), text.data() + text.size(), v);
  return v;
}

// "owner@expiry_ms"; owner ids contain no '@' (DefaultOwnerId) but take the
// last one anyway.
void ParseLease(std::string_view lease, std::string* owner, int64_t* expiry_ms) {
  size_t at = lease.rfind('@');
  if (at == std::string_view::npos) {
    owner->clear();
    *expiry_ms = 0;
    return;
  }
  owner->assign(lease.substr(0, at));
  *expiry_ms = ParseInt(lease.substr(at + 1));
}

std::string DefaultOwnerId() {
  char host[256] = {0};
  gethostname(host, sizeof(host) - 1);
  std::random_device rd;
  char suffix[16];
  std::snprintf(suffix, sizeof(suffix), "%08x", rd());
  // Unique per Backfill object: two runners never share an id.
  return std::string(host) + ":" + std::to_string(getpid()) + ":" + suffix;
}

store::Cell Put(std::string_view family, std::string_view qualifier, std::string value) {
  return store::Cell{std::string(family), std::string(qualifier), store::kLatestTimestamp,
                     std::move(value)};
}

}  // namespace

void AppendNewJob(std::string_view family, std::string_view version, int64_t now_ms, bool immediate,
                  std::vector<store::Cell>* puts) {
  puts->push_back(Put(family, kJobImmediate, immediate ? "1" : "0"));
  puts->push_back(Put(family, kJobTarget, std::string(version)));
  puts->push_back(Put(family, kJobCursor, ""));
  puts->push_back(Put(family, kJobStartedAt, std::to_string(now_ms)));
  puts->push_back(Put(family, kJobFinishedAt, "0"));
  puts->push_back(Put(family, kJobDone, "0"));
  puts->push_back(Put(family, kJobPublished, "0"));
  // An empty lease is a free one (an empty value satisfies the "absent"
  // condition). Writing it, rather than deleting the cell, invalidates the
  // previous job's runner without a delete marker that could mask a lease
  // put in the same millisecond on HBase.
  puts->push_back(Put(family, kJobLease, ""));
}

StatusOr<BackfillStatus> ReadBackfillStatus(store::Store* store, const BackfillOptions& options) {
  store::GetRequest get;
  get.row = options.meta_row;
  get.families = {options.meta_family};
  get.qualifiers = {
      std::string(kVersionQualifier), std::string(kJobTarget),     std::string(kJobCursor),
      std::string(kJobStartedAt),     std::string(kJobFinishedAt), std::string(kJobDone),
      std::string(kJobPublished),     std::string(kJobLease),      std::string(kJobImmediate)};
  SEG_ASSIGN_OR_RETURN(store::RowResult row, store->Get(options.meta_table, get));
  BackfillStatus st;
  for (store::CellView c : row) {
    if (c.qualifier == kVersionQualifier) {
      st.version = std::string(c.value);
    } else if (c.qualifier == kJobTarget) {
      st.target = std::string(c.value);
    } else if (c.qualifier == kJobCursor) {
      st.cursor = std::string(c.value);
    } else if (c.qualifier == kJobStartedAt) {
      st.started_at_ms = ParseInt(c.value);
    } else if (c.qualifier == kJobFinishedAt) {
      st.finished_at_ms = ParseInt(c.value);
    } else if (c.qualifier == kJobDone) {
      st.done = c.value == "1";
    } else if (c.qualifier == kJobImmediate) {
      st.immediate = c.value == "1";
    } else if (c.qualifier == kJobPublished) {
      st.published = ParseInt(c.value);
    } else if (c.qualifier == kJobLease) {
      ParseLease(c.value, &st.lease_owner, &st.lease_expiry_ms);
    }
  }
  return st;
}

Backfill::Backfill(store::Store* store, kafka::Producer* producer, BackfillOptions options)
    : store_(store),
      producer_(producer),
      options_(std::move(options)),
      clock_(options_.clock ? options_.clock : Clock::Real()),
      published_total_(metrics::GetCounter("seg_segmenter_backfill_users_published_total",
                                           "Backfill notices sent and acknowledged")),
      scanned_total_(metrics::GetCounter("seg_segmenter_backfill_rows_scanned_total",
                                         "Backfill rows read from the users table")),
      running_(
          metrics::GetGauge("seg_segmenter_backfill_running",
                            "1 while this node holds the backfill lease of an unfinished job")),
      job_published_(metrics::GetGauge("seg_segmenter_backfill_job_users",
                                       "Users sent so far by the current backfill job (stored "
                                       "count, as last seen by this node)")) {
  if (options_.owner_id.empty()) options_.owner_id = DefaultOwnerId();
  if (options_.scan_batch_rows <= 0) options_.scan_batch_rows = 500;
  notice_.set_kind(NOTICE_DEFINITION_CHANGE);
}

Backfill::~Backfill() { running_.Set(0); }

std::string Backfill::LeaseValue(int64_t expiry_ms) const {
  return options_.owner_id + "@" + std::to_string(expiry_ms);
}

StatusOr<bool> Backfill::CasLease(const std::string& expected, std::vector<store::Cell> puts) {
  store::Condition cond;
  cond.family = options_.meta_family;
  cond.qualifier = std::string(kJobLease);
  cond.op = store::CompareOp::kEqual;
  cond.value = expected;  // "" holds for an absent or free lease
  store::RowMutations m;
  m.row = options_.meta_row;
  m.puts = std::move(puts);
  return store_->CheckAndMutate(options_.meta_table, cond, m);
}

void Backfill::RefillTokens() {
  const int64_t now_us = clock_->MonotonicUs();
  const double burst = std::max<double>(1.0, options_.users_per_s / 10.0);
  if (last_refill_us_ < 0) {
    tokens_ = burst;
  } else {
    tokens_ = std::min(burst, tokens_ + (now_us - last_refill_us_) * 1e-6 * options_.users_per_s);
  }
  last_refill_us_ = now_us;
}

StatusOr<Backfill::Step> Backfill::RunSome(int64_t max_users) {
  Step step;
  SEG_ASSIGN_OR_RETURN(BackfillStatus job, ReadBackfillStatus(store_, options_));
  step.version = job.target;
  step.cursor = job.cursor;
  job_published_.Set(static_cast<double>(job.published));
  if (job.version.empty() || job.done || job.target != job.version) {
    // target != version only for a row not written by ScriptSet::Push.
    running_.Set(0);
    held_lease_.clear();
    step.state = Step::State::kIdle;
    return step;
  }

  if (const int64_t start_ms = job.started_at_ms + options_.start_delay_ms;
      !job.immediate && job.cursor.empty() && clock_->NowMs() < start_ms) {
    running_.Set(0);
    step.state = Step::State::kStarting;
    step.wait_ms = start_ms - clock_->NowMs();
    return step;
  }

  // The lease: keep ours while more than half of it remains, otherwise take
  // or renew it with a CAS on the exact value read.
  const int64_t now_ms = clock_->NowMs();
  std::string raw_lease =
      job.lease_owner.empty() ? "" : job.lease_owner + "@" + std::to_string(job.lease_expiry_ms);
  // Ours by owner id, not by the value we last wrote: a CAS whose reply was
  // lost (Thrift timeout) may have applied, and waiting out our own lease
  // would stall the job for lease_ms.
  const bool ours = !job.lease_owner.empty() && job.lease_owner == options_.owner_id;
  if (ours) held_lease_ = raw_lease;
  if (!ours && !job.lease_owner.empty() && job.lease_expiry_ms > now_ms) {
    running_.Set(0);
    step.state = Step::State::kLeasedElsewhere;
    step.wait_ms = std::min<int64_t>(job.lease_expiry_ms - now_ms, options_.lease_ms / 2);
    return step;
  }
  if (!ours || job.lease_expiry_ms - now_ms < options_.lease_ms / 2) {
    std::string lease = LeaseValue(now_ms + options_.lease_ms);
    SEG_ASSIGN_OR_RETURN(bool taken,
                         CasLease(raw_lease, {Put(options_.meta_family, kJobLease, lease)}));
    if (!taken) {
      running_.Set(0);
      step.state = Step::State::kLeasedElsewhere;
      step.wait_ms = 1000;
      return step;
    }
    if (!ours) {
      LOG(INFO) << "backfill " << job.target << ": lease taken by " << options_.owner_id
                << (job.lease_owner.empty() ? "" : " from expired " + job.lease_owner)
                << ", resuming after '" << job.cursor << "' (" << job.published << " sent)";
      rate_base_ms_ = now_ms;
      rate_base_published_ = job.published;
      logged_at_ms_ = now_ms;
      logged_published_ = job.published;
    }
    held_lease_ = std::move(lease);
  }
  running_.Set(1);

  int64_t allowed = max_users;
  if (options_.users_per_s > 0) {
    RefillTokens();
    allowed = std::min<int64_t>(allowed, static_cast<int64_t>(tokens_));
    if (allowed <= 0) {
      step.state = Step::State::kRateLimited;
      step.wait_ms = std::max<int64_t>(
          1, static_cast<int64_t>((1.0 - tokens_) * 1000.0 / options_.users_per_s) + 1);
      return step;
    }
  }

  // Scan from just after the cursor (a row key's successor is key + '\0').
  store::ScanRequest scan;
  if (!job.cursor.empty()) {
    scan.start_row = job.cursor;
    scan.start_row.push_back('\0');
  }
  scan.families = {options_.state_family};
  scan.batch_rows = static_cast<int32_t>(std::min<int64_t>(allowed, options_.scan_batch_rows));
  SEG_ASSIGN_OR_RETURN(auto scanner, store_->OpenScanner(options_.users_table, scan));
  notice_.set_script_set_version(job.target);
  notice_.set_acked_at_ms(now_ms);
  int64_t sent = 0;
  bool exhausted = false;
  std::string last;
  while (sent < allowed) {
    SEG_RETURN_IF_ERROR(scanner->NextBatch(&rows_));
    if (rows_.empty()) {
      exhausted = true;
      break;
    }
    scanned_total_.Inc(static_cast<double>(rows_.size()));
    for (const store::RowResult& row : rows_) {
      if (sent == allowed) break;
      notice_.set_user_id(row.row());
      notice_.SerializeToString(&value_);
      SEG_RETURN_IF_ERROR(producer_->Produce(options_.notices_topic, row.row(), value_));
      ++sent;
      last = row.row();  // assign: reuses `last`'s buffer
    }
  }
  scanner->Close().IgnoreError();
  if (options_.users_per_s > 0) tokens_ -= static_cast<double>(sent);

  // The cursor moves only past acknowledged notices.
  if (sent > 0) {
    SEG_RETURN_IF_ERROR(producer_->Flush(std::chrono::milliseconds(options_.flush_timeout_ms)));
  }
  published_total_.Inc(static_cast<double>(sent));

  const int64_t saved_ms = clock_->NowMs();
  const int64_t total = job.published + sent;
  std::vector<store::Cell> puts;
  if (sent > 0) {
    puts.push_back(Put(options_.meta_family, kJobCursor, last));
    puts.push_back(Put(options_.meta_family, kJobPublished, std::to_string(total)));
  }
  std::string lease;
  if (exhausted) {
    puts.push_back(Put(options_.meta_family, kJobDone, "1"));
    puts.push_back(Put(options_.meta_family, kJobFinishedAt, std::to_string(saved_ms)));
  } else {
    lease = LeaseValue(saved_ms + options_.lease_ms);  // renewed with the save
  }
  puts.push_back(Put(options_.meta_family, kJobLease, lease));
  SEG_ASSIGN_OR_RETURN(bool saved, CasLease(held_lease_, std::move(puts)));
  step.published = sent;
  if (!saved) {
    // A push reset the job or another runner took the lease over: what was
    // sent is re-sent by the job's runner (at least once).
    LOG(WARNING) << "backfill " << job.target << ": lease lost; " << sent
                 << " notices sent in this step are not recorded";
    held_lease_.clear();
    running_.Set(0);
    step.state = Step::State::kLostLease;
    return step;
  }
  held_lease_ = lease;
  if (sent > 0) step.cursor = last;
  job_published_.Set(static_cast<double>(total));

  if (exhausted || total - logged_published_ >= options_.log_every_users ||
      saved_ms - logged_at_ms_ >= options_.log_every_ms) {
    const double secs = std::max<int64_t>(1, saved_ms - rate_base_ms_) / 1000.0;
    LOG(INFO) << "backfill " << job.target << ": " << total << " users sent ("
              << static_cast<int64_t>((total - rate_base_published_) / secs) << "/s), cursor '"
              << step.cursor << "'" << (exhausted ? ", done" : "");
    logged_at_ms_ = saved_ms;
    logged_published_ = total;
  }
  if (exhausted) {
    running_.Set(0);
    held_lease_.clear();
    step.state = Step::State::kFinished;
  } else {
    step.state = Step::State::kProgress;
  }
  return step;
}

Status Backfill::Release() {
  if (held_lease_.empty()) return Status::OK();
  std::string held = std::move(held_lease_);
  held_lease_.clear();
  running_.Set(0);
  return CasLease(held, {Put(options_.meta_family, kJobLease, "")}).status();
}

}  // namespace seg::segmenter::internal
