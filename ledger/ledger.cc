#include "ledger/ledger.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <deque>
#include <map>
#include <mutex>
#include <set>
#include <shared_mutex>
#include <thread>

#include <pthread.h>

#include "absl/base/attributes.h"
#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "ledger/entry_codec.h"
#include "ledger/limits.h"
#include "ledger/merkle.h"
#include "ledger/monitor.h"
#include "ledger/rocks_status.h"
#include "ledger/state.h"
#include "ledger/status_macros.h"
#include "rocksdb/db.h"
#include "rocksdb/filter_policy.h"
#include "rocksdb/table.h"
#include "rocksdb/utilities/checkpoint.h"
#include "rocksdb/write_batch.h"

namespace warmledger {
namespace {

std::vector<OpResult> AllWith(size_t n, const absl::Status& status) {
  std::vector<OpResult> out(n);
  for (auto& r : out) r.status = status;
  return out;
}

// Visits the stored entries from_seq..last_seq in order (last_seq =
// UINT64_MAX: to the end), each checked for density, hash and decoding, and
// given with its raw stored value. `visit` returns false to stop early.
// A gap or damage is kDataLoss naming the seq.
using EntryVisitor = std::function<absl::StatusOr<bool>(StoredEntry, std::string_view value)>;
absl::Status ScanEntries(rocksdb::DB* db, const rocksdb::ReadOptions& ro, uint64_t from_seq,
                         uint64_t last_seq, const EntryVisitor& visit) {
  std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(ro));
  uint64_t expected = std::max<uint64_t>(from_seq, 1);
  for (it->Seek(EntryKey(expected)); it->Valid() && expected <= last_seq; it->Next()) {
    std::string_view key(it->key().data(), it->key().size());
    if (key.empty() || key[0] != kEntryKeyPrefix) break;
    uint64_t seq = SeqFromEntryKey(key);
    if (seq != expected) {
      return absl::DataLossError(absl::StrCat(
          "entry ", expected, ": missing (next stored key is ",
          seq == 0 ? std::string("malformed") : absl::StrCat("entry ", seq), ")"));
    }
    std::string_view value(it->value().data(), it->value().size());
    WL_ASSIGN_OR_RETURN(StoredEntry stored, ParseStoredValue(value, seq));
    WL_ASSIGN_OR_RETURN(bool more, visit(std::move(stored), value));
    ++expected;
    if (!more) return absl::OkStatus();
  }
  WL_RETURN_IF_ERROR(FromRocks(it->status(), "reading entries"));
  if (last_seq != UINT64_MAX && expected <= last_seq) {
    return absl::DataLossError(absl::StrCat("entry ", expected, ": missing"));
  }
  return absl::OkStatus();
}

// Replays the stored entries up to last_seq into `state`, checking the chain
// and that replay reproduces the stored bytes (docs/format.md, "Replay").
// With `snapshot`, the replayed state after its seq must equal it.
absl::Status ReplayAll(rocksdb::DB* db, const rocksdb::ReadOptions& ro, LedgerState* state,
                       uint64_t last_seq, const BalanceSnapshot* snapshot = nullptr) {
  EntryLookup lookup = [&](uint64_t seq) -> absl::StatusOr<Entry> {
    std::string value;
    WL_RETURN_IF_ERROR(FromRocks(db->Get(ro, EntryKey(seq), &value),
                                 absl::StrCat("entry ", seq)));
    WL_ASSIGN_OR_RETURN(StoredEntry stored, ParseStoredValue(value, seq));
    return std::move(stored.entry);
  };
  Journal journal = Journal::NotRecording();
  return ScanEntries(db, ro, 1, last_seq,
                     [&](StoredEntry stored, std::string_view value) -> absl::StatusOr<bool> {
    const uint64_t seq = stored.entry.seq;
    if (stored.entry.prev_hash != state->head_hash()) {
      return absl::DataLossError(absl::StrCat(
          "entry ", seq, ": prev_hash does not match the hash of entry ", seq - 1));
    }
    if (state->FindClientId(stored.entry.client_id)) {
      return absl::DataLossError(absl::StrCat("entry ", seq, ": client_id '",
                                              stored.entry.client_id, "' used twice"));
    }
    auto replayed =
        state->Replay(stored.entry.client_id, stored.entry.body, stored.entry.time_us, lookup,
                      &journal, stored.hash, stored.entry.version);
    journal.Clear();
    if (!replayed.ok()) {
      return absl::DataLossError(absl::StrCat("entry ", seq, ": replay rejected it: ",
                                              replayed.status().message()));
    }
    if (*replayed != EntryBytesOf(value)) {
      return absl::DataLossError(absl::StrCat(
          "entry ", seq, ": replay produced different bytes (recorded postings or time "
          "disagree with the rules)"));
    }
    if (snapshot != nullptr && snapshot->seq == seq) {
      WL_RETURN_IF_ERROR(CompareSnapshots(*snapshot, state->Snapshot()));
    }
    return true;
  });
}

// The stored balance snapshot, if any.
absl::StatusOr<std::optional<BalanceSnapshot>> ReadSnapshot(rocksdb::DB* db) {
  std::string value;
  rocksdb::Status s = db->Get(rocksdb::ReadOptions(), std::string(kSnapshotKey), &value);
  if (s.IsNotFound()) return std::nullopt;
  WL_RETURN_IF_ERROR(FromRocks(s, "reading the balance snapshot"));
  WL_ASSIGN_OR_RETURN(BalanceSnapshot snapshot, DecodeSnapshot(value));
  return snapshot;
}

// Reads stored tiles (the widths are checked by merkle::NodesFromTiles).
merkle::TileSource DbTiles(rocksdb::DB* db, rocksdb::ReadOptions ro) {
  return [db, ro](const merkle::TileId& id, uint64_t) -> absl::StatusOr<merkle::TileData> {
    std::string value;
    rocksdb::Status s = db->Get(ro, TileKey(id.level, id.index), &value);
    if (s.IsNotFound()) return absl::DataLossError(absl::StrCat(merkle::TileName(id), ": missing"));
    WL_RETURN_IF_ERROR(FromRocks(s, merkle::TileName(id)));
    return value;
  };
}

// Rebuilds the Merkle tree from the stored entries (their bytes, not their
// decoding: the replay checks those) and checks that the stored tiles are
// exactly the tiles the entries make. With `write_missing` (upgrading a
// version 1 ledger) absent tiles are written instead of reported. Stops at
// the first gap in the entries; the replay reports gaps.
absl::StatusOr<merkle::TileBuilder> RebuildTree(rocksdb::DB* db, const rocksdb::ReadOptions& ro,
                                                bool write_missing) {
  merkle::TileBuilder tree;
  rocksdb::WriteBatch missing;
  constexpr uint64_t kTileBytes = 32u << merkle::kTileHeight;
  auto check = [&](bool final) -> absl::Status {
    for (auto& [id, built] : tree.TakeChanged()) {
      std::string stored;
      rocksdb::Status s = db->Get(ro, TileKey(id.level, id.index), &stored);
      if (s.IsNotFound() && write_missing) {
        if (built.size() == kTileBytes || final) missing.Put(TileKey(id.level, id.index), built);
        continue;
      }
      if (s.IsNotFound()) {
        return absl::DataLossError(absl::StrCat("tree: ", merkle::TileName(id), " is missing"));
      }
      WL_RETURN_IF_ERROR(FromRocks(s, merkle::TileName(id)));
      const bool exact = built.size() == kTileBytes || final;
      if (stored.size() >= built.size() && stored.compare(0, built.size(), built) == 0 &&
          (!exact || stored.size() == built.size())) {
        continue;
      }
      size_t i = 0;
      while (i + 32 <= std::min(stored.size(), built.size()) &&
             stored.compare(i, 32, built, i, 32) == 0) {
        i += 32;
      }
      const uint64_t first_leaf = ((id.index << merkle::kTileHeight) + i / 32)
                                  << (merkle::kTileHeight * id.level);
      return absl::DataLossError(absl::StrCat(
          "entry ", first_leaf + 1, ": the stored Merkle tree does not match the entries (",
          merkle::TileName(id), " holds ", stored.size() / 32, " hashes, hash ", i / 32,
          i / 32 < std::min(stored.size(), built.size()) / 32 ? " differs" : " is missing",
          ")"));
    }
    return absl::OkStatus();
  };
  std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(ro));
  uint64_t expected = 1;
  for (it->Seek(EntryKey(1)); it->Valid(); it->Next()) {
    std::string_view key(it->key().data(), it->key().size());
    if (SeqFromEntryKey(key) != expected || it->value().size() < 32) break;
    tree.Append(merkle::LeafHash(
        EntryBytesOf(std::string_view(it->value().data(), it->value().size()))));
    if (++expected % 4096 == 0) WL_RETURN_IF_ERROR(check(false));
  }
  WL_RETURN_IF_ERROR(FromRocks(it->status(), "reading entries"));
  WL_RETURN_IF_ERROR(check(true));
  if (missing.Count() > 0) {
    rocksdb::WriteOptions wo;
    wo.sync = true;
    WL_RETURN_IF_ERROR(FromRocks(db->Write(wo, &missing), "writing the Merkle tree"));
  }
  // No tile beyond those the entries make (a tail of entries removed).
  uint64_t stored_tiles = 0;
  const std::string first_tile = TileKey(0, 0);
  it.reset(db->NewIterator(ro));  // sees the tiles written just now
  for (it->Seek(first_tile); it->Valid() && it->key().size() > 0 &&
                             it->key()[0] == kTileKeyPrefix;
       it->Next()) {
    ++stored_tiles;
  }
  WL_RETURN_IF_ERROR(FromRocks(it->status(), "reading the Merkle tree"));
  if (stored_tiles != merkle::TileCount(tree.size())) {
    return absl::DataLossError(absl::StrCat(
        "entry ", tree.size() + 1, ": the stored Merkle tree has ", stored_tiles,
        " tiles but the ", tree.size(), " entries make ", merkle::TileCount(tree.size()),
        " (entries after ", tree.size(), " were removed?)"));
  }
  return tree;
}

struct CheckpointRecord {
  uint64_t size = 0;
  Hash root{};
  std::string note;
};

// Checks every stored checkpoint: it parses, carries `origin`, is signed by
// `verifier` (when given), covers no more than `tree_size` entries, and its
// root is the root of the tree. Returns the newest.
absl::StatusOr<std::optional<CheckpointRecord>> VerifyCheckpoints(
    rocksdb::DB* db, const rocksdb::ReadOptions& ro, const merkle::NodeSource& nodes,
    uint64_t tree_size, const NoteVerifier* verifier, const std::string& origin) {
  std::optional<CheckpointRecord> newest;
  std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(ro));
  for (it->Seek(CheckpointKey(0)); it->Valid(); it->Next()) {
    std::string_view key(it->key().data(), it->key().size());
    if (key.empty() || key[0] != kCheckpointKeyPrefix) break;
    const uint64_t size = SizeFromCheckpointKey(key);
    std::string note(it->value().data(), it->value().size());
    std::string what = absl::StrCat("checkpoint of ", size, " entries: ");
    if (verifier != nullptr) {
      auto opened = verifier->Open(note);
      if (!opened.ok()) {
        return absl::DataLossError(absl::StrCat(what, "signature: ", opened.status().message()));
      }
    }
    auto checkpoint = ParseCheckpointUnverified(note);
    if (!checkpoint.ok()) {
      return absl::DataLossError(absl::StrCat(what, checkpoint.status().message()));
    }
    if (checkpoint->size != size || size == 0) {
      return absl::DataLossError(absl::StrCat(what, "stored under the wrong key (it says ",
                                              checkpoint->size, " entries)"));
    }
    if (checkpoint->origin != origin) {
      return absl::DataLossError(absl::StrCat(what, "origin '", checkpoint->origin,
                                              "' is not this ledger's origin '", origin, "'"));
    }
    if (size > tree_size) {
      return absl::DataLossError(absl::StrCat(
          "entry ", tree_size + 1, ": missing, but a signed checkpoint covers ", size,
          " entries (entries after ", tree_size, " were removed)"));
    }
    WL_ASSIGN_OR_RETURN(Hash root, merkle::RootAt(size, nodes));
    if (root != checkpoint->root) {
      return absl::DataLossError(absl::StrCat(
          what, "its root is not the root of entries 1..", size,
          " (history was rewritten at or before entry ", size, ")"));
    }
    newest = CheckpointRecord{size, root, std::move(note)};
  }
  WL_RETURN_IF_ERROR(FromRocks(it->status(), "reading checkpoints"));
  return newest;
}

}  // namespace

class Ledger::Impl {
 public:
  Impl(const LedgerOptions& options, std::unique_ptr<rocksdb::DB> db,
       std::optional<NoteVerifier> verifier)
      : options_(options),
        clock_(options.clock ? options.clock : SystemClock::Default()),
        db_(std::move(db)),
        verifier_(std::move(verifier)),
        nodes_(merkle::NodesFromTiles(DbTiles(db_.get(), rocksdb::ReadOptions()))) {}

  ~Impl() {
    {
      Monitor::Lock lock(&queue_mu_);
      stopping_ = true;
    }
    if (sequencer_.joinable()) sequencer_.join();
    if (syncer_.joinable()) syncer_.join();
    if (answerer_.joinable()) answerer_.join();
    WriteFinalSnapshot();
    {
      Monitor::Lock lock(&durable_mu_);
      checkpointer_stop_ = true;
    }
    if (checkpointer_.joinable()) checkpointer_.join();
    FlushMemtables();
    rocksdb::Status s = db_->Close();
    if (!s.ok()) std::fprintf(stderr, "warmledger: closing the database: %s\n", s.ToString().c_str());
  }

  // A clean close writes what is in the memtables to table files, so that
  // the next open (the server's, or the auditor's read-only one) has no
  // write-ahead log to replay. Nothing depends on it: every acknowledged
  // entry is in the log already.
  void FlushMemtables() {
    if (failed_.load()) return;
    rocksdb::FlushOptions fo;
    fo.wait = true;
    const rocksdb::Status s = db_->Flush(fo);
    if (!s.ok()) {
      std::fprintf(stderr, "warmledger: flushing the memtables at close: %s\n",
                   s.ToString().c_str());
    }
  }

  // Replays the entries into the state and, in parallel on a second thread,
  // rebuilds the Merkle tree from them and checks it against the stored
  // tiles; then checks every stored checkpoint against the tree.
  absl::Status Recover(bool upgrade) {
    rocksdb::ReadOptions ro;
    ro.fill_cache = false;
    ro.readahead_size = 4 << 20;
    absl::StatusOr<merkle::TileBuilder> tree = absl::UnknownError("tree not rebuilt");
    std::thread tree_thread([&] {
      pthread_setname_np(pthread_self(), "wl-tree");
      tree = RebuildTree(db_.get(), ro, upgrade);
    });
    std::unique_lock lock(state_mu_);
    {
      // Size the replay's indexes once for the entries stored.
      std::unique_ptr<rocksdb::Iterator> last(db_->NewIterator(rocksdb::ReadOptions()));
      last->SeekForPrev(EntryKey(UINT64_MAX));
      if (last->Valid()) {
        state_.Reserve(SeqFromEntryKey(std::string_view(last->key().data(), last->key().size())));
      }
    }
    absl::StatusOr<std::optional<BalanceSnapshot>> snapshot = ReadSnapshot(db_.get());
    absl::Status replayed = snapshot.status();
    if (replayed.ok()) {
      replayed = ReplayAll(db_.get(), ro, &state_, UINT64_MAX,
                           *snapshot ? &**snapshot : nullptr);
    }
    tree_thread.join();
    WL_RETURN_IF_ERROR(replayed);
    WL_RETURN_IF_ERROR(tree.status());
    if (*snapshot && (*snapshot)->seq > state_.head_seq()) {
      return absl::DataLossError(absl::StrCat(
          "entry ", state_.head_seq() + 1, ": missing, but the balance snapshot is of entry ",
          (*snapshot)->seq, " (entries after ", state_.head_seq(), " were removed)"));
    }
    last_snapshot_seq_ = *snapshot ? (*snapshot)->seq : 0;
    if (tree->size() != state_.head_seq()) {
      return absl::DataLossError(absl::StrCat("entry ", tree->size() + 1,
                                              ": the Merkle tree and the chain disagree"));
    }
    tree_ = std::move(*tree);
    WL_ASSIGN_OR_RETURN(std::optional<CheckpointRecord> newest,
                        VerifyCheckpoints(db_.get(), rocksdb::ReadOptions(), nodes_,
                                          state_.head_seq(),
                                          verifier_ ? &*verifier_ : nullptr,
                                          options_.checkpoint_origin));
    Monitor::Lock dlock(&durable_mu_);
    latest_checkpoint_ = std::move(newest);
    durable_seq_.store(state_.head_seq(), std::memory_order_release);
    durable_hash_ = state_.head_hash();
    return absl::OkStatus();
  }

  // On a clean close, the snapshot of the final state (the pipeline is
  // drained: the state is exactly what is durable).
  void WriteFinalSnapshot() {
    std::shared_lock lock(state_mu_);
    if (failed_.load() || state_.head_seq() == last_snapshot_seq_) return;
    rocksdb::WriteOptions wo;
    wo.sync = true;
    rocksdb::WriteBatch batch;
    batch.Put(std::string(kSnapshotKey), EncodeSnapshot(state_.Snapshot()));
    absl::Status s = FromRocks(SerialWrite(wo, &batch), "writing the balance snapshot");
    if (!s.ok()) std::fprintf(stderr, "warmledger: %s\n", std::string(s.message()).c_str());
  }

  // Every write of a running ledger goes through here, one at a time. The
  // sync stage's commits and the checkpointer's notes therefore never reach
  // RocksDB together, and RocksDB never has one thread write another's batch
  // in its write group: a hand-over inside Debian's RocksDB, which is built
  // without ThreadSanitizer, so TSan could not see it as synchronised. A
  // checkpoint note waits for at most one commit (one every
  // checkpoint_every_ms or checkpoint_every_entries).
  rocksdb::Status SerialWrite(const rocksdb::WriteOptions& wo, rocksdb::WriteBatch* batch) {
    std::lock_guard<std::mutex> lock(write_mu_);
    return db_->Write(wo, batch);
  }

  absl::Status WriteFormat(const std::string& version) {
    rocksdb::WriteOptions wo;
    wo.sync = true;
    return FromRocks(db_->Put(wo, std::string(kFormatKey), version), "writing format");
  }

  void Start() {
    sequencer_ = std::thread([this] {
      pthread_setname_np(pthread_self(), "wl-apply");
      SequencerLoop();
    });
    syncer_ = std::thread([this] {
      pthread_setname_np(pthread_self(), "wl-sync");
      SyncLoop();
    });
    answerer_ = std::thread([this] {
      pthread_setname_np(pthread_self(), "wl-answer");
      AnswerLoop();
    });
    if (options_.checkpoint_signer != nullptr) {
      checkpointer_ = std::thread([this] {
        pthread_setname_np(pthread_self(), "wl-checkpoint");
        CheckpointLoop();
      });
    }
  }

  void SubmitAsync(std::vector<Operation> ops, Callback done) {
    if (ops.empty()) {
      done({});
      return;
    }
    if (ops.size() > kBatchOpsMax) {
      done(AllWith(ops.size(), absl::InvalidArgumentError(absl::StrCat(
                                   "batch: ", ops.size(), " operations, at most ",
                                   kBatchOpsMax, " allowed"))));
      return;
    }
    absl::Status refused;
    {
      Monitor::Lock lock(&queue_mu_);
      if (stopping_) {
        refused = absl::UnavailableError("ledger: shutting down");
      } else if (failed_.load()) {
        refused = absl::UnavailableError(
            "ledger: a durable write failed; reopen the ledger to recover");
      } else if (queued_ops_ + ops.size() > kQueueOpsMax) {
        refused = absl::ResourceExhaustedError(absl::StrCat(
            "ledger: write queue full (", queued_ops_, " operations waiting, at most ",
            kQueueOpsMax, "); retry later"));
      } else {
        queued_ops_ += ops.size();
        queue_.push_back({std::move(ops), std::move(done)});
        return;
      }
    }
    done(AllWith(ops.size(), refused));
  }

  LedgerHead Head() const {
    Monitor::Lock lock(&durable_mu_);
    return {durable_seq_.load(std::memory_order_acquire), durable_hash_};
  }

  WriteStats GetWriteStats() const {
    Monitor::Lock lock(&durable_mu_);
    return write_stats_;
  }

  // Runs `read` on the state under the reader lock, then waits until all the
  // state may reflect is durable.
  template <typename F>
  auto ReadState(F read) const -> decltype(read(std::declval<const LedgerState&>())) {
    uint64_t seen;
    auto out = [&] {
      std::shared_lock lock(state_mu_);
      seen = state_.head_seq();
      return read(state_);
    }();
    WL_RETURN_IF_ERROR(AwaitDurable(seen));
    return out;
  }

  absl::StatusOr<StoredEntry> ReadEntry(uint64_t seq) const {
    uint64_t durable = durable_seq_.load(std::memory_order_acquire);
    if (seq == 0 || seq > durable) {
      return absl::NotFoundError(
          absl::StrCat("seq: entry ", seq, " not found (the ledger has ", durable, ")"));
    }
    std::string value;
    WL_RETURN_IF_ERROR(
        FromRocks(db_->Get(rocksdb::ReadOptions(), EntryKey(seq), &value),
                  absl::StrCat("entry ", seq)));
    return ParseStoredValue(value, seq);
  }

  absl::StatusOr<std::vector<StoredEntry>> ReadEntries(uint64_t from_seq,
                                                       uint64_t count_max) const {
    uint64_t durable = durable_seq_.load(std::memory_order_acquire);
    std::vector<StoredEntry> out;
    from_seq = std::max<uint64_t>(from_seq, 1);
    count_max = std::min<uint64_t>(count_max, kPageItemsMax);
    if (count_max == 0 || from_seq > durable) return out;
    uint64_t last = from_seq + std::min<uint64_t>(count_max - 1, durable - from_seq);
    WL_RETURN_IF_ERROR(ScanEntries(db_.get(), rocksdb::ReadOptions(), from_seq, last,
                                   [&](StoredEntry e, std::string_view) {
                                     out.push_back(std::move(e));
                                     return true;
                                   }));
    return out;
  }

  absl::StatusOr<AccountInfo> GetAccount(const std::string& account) const {
    return ReadState([&](const LedgerState& s) { return s.GetAccount(account); });
  }

  absl::StatusOr<HoldingsPage> GetHoldings(const std::string& account, uint64_t offset,
                                           uint64_t limit) const {
    return ReadState(
        [&](const LedgerState& s) { return s.GetHoldings(account, offset, limit); });
  }

  absl::StatusOr<LotInfo> GetLot(uint64_t lot) const {
    return ReadState([&](const LedgerState& s) { return s.GetLot(lot); });
  }

  absl::StatusOr<LotTrace> TraceLot(uint64_t lot) const {
    return TraceLot(lot, /*with_conversions=*/true);
  }

  // `with_conversions`: also follow what the lot's parts that went into a
  // conversion became (one level; a converted lot's own trace has its own).
  absl::StatusOr<LotTrace> TraceLot(uint64_t lot, bool with_conversions) const {
    LotTrace trace;
    std::vector<LedgerState::LotMoveRecord> moves;
    {
      std::shared_lock lock(state_mu_);
      // Inside a conversion only the lot's places are needed, not its parents.
      WL_ASSIGN_OR_RETURN(trace.lot, state_.GetLot(lot, /*with_parents=*/with_conversions));
      WL_ASSIGN_OR_RETURN(moves, state_.LotMoves(lot));
    }
    // What a lot's trace shows is fixed by the lot's own entry and the
    // entries that moved it (accounts' kinds, categories and communities
    // never change once opened), so it waits only for the latest of them to
    // be durable, not for whatever else the apply stage has taken on since.
    WL_RETURN_IF_ERROR(AwaitDurable(moves.empty() ? lot : std::max(lot, moves.back().seq)));
    if (moves.size() + 1 > kTraceHopsMax) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "lot: ", lot, " moved ", moves.size(), " times, more than a trace returns (",
          kTraceHopsMax, ")"));
    }
    // Net amount of this lot per account; the donor's own debit is not a place.
    std::map<std::string, int64_t> net;
    TraceHop first{lot, trace.lot.time_us, trace.lot.created_by, trace.lot.donor,
                   trace.lot.to, trace.lot.amount};
    if (trace.lot.created_by == EntryType::kPurchase) {
      WL_ASSIGN_OR_RETURN(StoredEntry created, ReadEntry(lot));
      const auto* purchase = std::get_if<PurchaseOp>(&created.entry.body);
      if (purchase == nullptr) {
        return absl::DataLossError(absl::StrCat("lot ", lot, ": expected a purchase"));
      }
      first.order_id = trace.lot.order_id = purchase->order_id;
    }
    trace.hops.push_back(std::move(first));
    net[trace.lot.to] += trace.lot.amount;
    struct Pending {
      uint64_t seq;
      EntryType type;
      int64_t consumed;
    };
    std::vector<Pending> conversions;
    // A recipient (of a voucher, cash aid or goods) is shown only by
    // category and community, filled in below in one pass under the state
    // lock: a hop's `to`, or for a voucher issue the voucher's recipient.
    std::vector<std::pair<size_t, std::string>> voucher_recipients;
    for (LedgerState::LotMoveRecord& move : moves) {
      const uint64_t seq = move.seq;
      if (move.known) {  // the state has it: no need to read the entry
        net[move.from] -= move.amount;
        net[move.to] += move.amount;
        trace.hops.push_back(TraceHop{seq, move.time_us, move.type, std::move(move.from),
                                      std::move(move.to), move.amount});
        continue;
      }
      WL_ASSIGN_OR_RETURN(StoredEntry stored, ReadEntry(seq));
      const EntryType type = stored.entry.type();
      for (size_t pi = 0; pi < stored.entry.postings.size(); ++pi) {
        const Posting& p = stored.entry.postings[pi];
        int64_t amount = 0;
        for (const Slice& s : p.slices) {
          if (s.lot == lot) amount += s.amount;
        }
        if (amount == 0) continue;
        TraceHop hop{seq, stored.entry.time_us, type, p.from, p.to, amount};
        if (const auto* r = std::get_if<RedemptionOp>(&stored.entry.body)) {
          hop.order_id = r->order_id;
        } else if (const auto* r = std::get_if<RefundOp>(&stored.entry.body)) {
          hop.order_id = r->order_id;
        }
        if (type == EntryType::kVoucherIssue) {
          voucher_recipients.emplace_back(trace.hops.size(),
                                          std::get<VoucherIssueOp>(stored.entry.body).recipient);
        }
        if (pi == 0 && (type == EntryType::kGoodsPurchase || type == EntryType::kGoodsSale)) {
          conversions.push_back({seq, type, amount});
        }
        trace.hops.push_back(std::move(hop));
        net[p.from] -= amount;
        net[p.to] += amount;
      }
    }
    {
      std::shared_lock lock(state_mu_);
      auto show_place = [&](TraceHop& hop, const std::string& recipient) {
        if (auto place = state_.RecipientPlace(recipient)) {
          hop.category = std::move(place->first);
          hop.community = std::move(place->second);
        }
      };
      for (size_t i = 1; i < trace.hops.size(); ++i) show_place(trace.hops[i], trace.hops[i].to);
      for (const auto& [i, recipient] : voucher_recipients) show_place(trace.hops[i], recipient);
      for (const auto& [account, amount] : net) {
        if (amount == 0) continue;
        AccountKind kind = state_.KindOf(account).value_or(AccountKind::kFund);
        if (amount < 0) {
          return absl::DataLossError(absl::StrCat("lot ", lot, ": account '", account,
                                                  "' sent more of it than it received"));
        }
        (IsHolding(kind) ? trace.held : trace.reached).push_back({account, kind, amount});
      }
    }
    if (!with_conversions) return trace;
    for (const Pending& c : conversions) {
      WL_ASSIGN_OR_RETURN(LotConversion conversion, Convert(lot, c.seq, c.type, c.consumed));
      trace.conversions.push_back(std::move(conversion));
    }
    return trace;
  }

  // What `consumed` of lot `lot`, converted by entry `seq` into lot `seq`,
  // became: the new lot's places, apportioned (docs/format.md).
  absl::StatusOr<LotConversion> Convert(uint64_t lot, uint64_t seq, EntryType type,
                                        int64_t consumed) const {
    WL_ASSIGN_OR_RETURN(LotTrace made, TraceLot(seq, /*with_conversions=*/false));
    LotConversion out;
    out.seq = seq;
    out.type = type;
    out.asset = made.lot.asset;
    out.lot_amount = made.lot.amount;
    out.consumed = consumed;
    std::vector<ConversionPlace> places;
    std::vector<int64_t> weights;
    {
      std::shared_lock lock(state_mu_);
      const std::optional<LotParent> parent = state_.FindParent(seq, lot);
      if (!parent) {
        return absl::DataLossError(
            absl::StrCat("lot ", seq, ": lot ", lot, " paid for it but is not its parent"));
      }
      out.share = parent->share;
      for (const TracePlace& p : made.held) {
        places.push_back({p.account, p.kind, "", "", 0, 0});
        weights.push_back(p.amount);
      }
      // Recipients grouped by category and community, in order of first
      // appearance.
      std::map<std::pair<std::string, std::string>, size_t> groups;
      for (const TracePlace& p : made.reached) {
        if (p.kind != AccountKind::kRecipient) {
          places.push_back({p.account, p.kind, "", "", 0, 0});
          weights.push_back(p.amount);
          continue;
        }
        std::optional<std::pair<std::string, std::string>> place =
            state_.RecipientPlace(p.account);
        if (!place) {
          return absl::DataLossError(
              absl::StrCat("lot ", seq, ": '", p.account, "' is not a recipient"));
        }
        auto [it, added] = groups.try_emplace(*place, places.size());
        if (added) {
          places.push_back({"", p.kind, place->first, place->second, 0, 0});
          weights.push_back(0);
        }
        weights[it->second] += p.amount;
      }
    }
    const std::vector<int64_t> amounts = Apportion(out.share, weights);
    const std::vector<int64_t> sources = Apportion(consumed, weights);
    for (size_t i = 0; i < places.size(); ++i) {
      if (amounts[i] == 0 && sources[i] == 0) continue;
      places[i].amount = amounts[i];
      places[i].source_amount = sources[i];
      out.places.push_back(std::move(places[i]));
    }
    return out;
  }

  absl::StatusOr<EntryTracePage> TraceEntry(uint64_t seq, uint64_t offset,
                                            uint64_t limit) const {
    WL_ASSIGN_OR_RETURN(StoredEntry stored, ReadEntry(seq));
    EntryTracePage page;
    page.seq = seq;
    page.type = stored.entry.type();
    page.offset = offset;
    WL_RETURN_IF_ERROR(CheckPageLimit(limit));
    uint64_t index = 0;
    std::vector<TraceSource> sources;
    for (size_t pi = 0; pi < stored.entry.postings.size(); ++pi) {
      const Posting& p = stored.entry.postings[pi];
      if (pi == 0) page.asset = p.asset;
      page.outflow += p.amount;
      for (const Slice& s : p.slices) {
        if (index >= offset && index < offset + limit) {
          sources.push_back({pi, s.lot, "", false, s.amount});
        }
        ++index;
      }
    }
    page.total_count = index;
    std::shared_lock lock(state_mu_);
    // Lots behind converted lots: listed once per page, on the first source
    // of each such lot, at most kPageItemsMax in all.
    size_t behind_left = kPageItemsMax;
    std::set<uint64_t> listed;
    for (TraceSource& src : sources) {
      WL_ASSIGN_OR_RETURN(LotInfo lot, state_.GetLot(src.lot, /*with_parents=*/false));
      src.donor = std::move(lot.donor);
      src.anonymous = lot.anonymous;
      src.behind_count = lot.parent_count;
      if (lot.parent_count == 0 || !listed.insert(src.lot).second) continue;
      for (size_t i = 0; i < lot.parent_count && behind_left > 0; ++i, --behind_left) {
        src.behind.push_back(state_.ParentAt(src.lot, i));
      }
    }
    page.sources = std::move(sources);
    return page;
  }

  absl::StatusOr<DonorStatementPage> DonorStatement(const std::string& donor,
                                                    uint64_t offset, uint64_t limit) const {
    WL_ASSIGN_OR_RETURN(std::vector<uint64_t> lots,
                        ReadState([&](const LedgerState& s) { return s.DonorLots(donor); }));
    DonorStatementPage page;
    page.donor = donor;
    page.total_lots = lots.size();
    page.offset = offset;
    WL_RETURN_IF_ERROR(CheckPageLimit(limit));
    for (uint64_t i = offset; i < lots.size() && i < offset + limit; ++i) {
      WL_ASSIGN_OR_RETURN(LotTrace t, TraceLot(lots[i]));
      page.lots.push_back(std::move(t));
    }
    return page;
  }

  absl::StatusOr<StatementPage> Statement(const std::string& account, int64_t from_time_us,
                                          int64_t to_time_us, uint64_t offset,
                                          uint64_t limit) const {
    WL_ASSIGN_OR_RETURN(StatementPage page, ReadState([&](const LedgerState& s) {
                          return s.Statement(account, from_time_us, to_time_us, offset, limit);
                        }));
    for (StatementLine& line : page.lines) {
      WL_ASSIGN_OR_RETURN(StoredEntry stored, ReadEntry(line.seq));
      line.type = stored.entry.type();
      for (const Posting& p : stored.entry.postings) {
        if (p.from == account) line.counterparty = p.to;
        if (p.to == account) line.counterparty = p.from;
      }
    }
    return page;
  }

  std::vector<std::string> ListAccounts(std::optional<AccountKind> kind, uint64_t offset,
                                        uint64_t limit, uint64_t* total) const {
    auto ids = ReadState([&](const LedgerState& s) -> absl::StatusOr<std::vector<std::string>> {
      return s.ListAccounts(kind, offset, limit, total);
    });
    // Only a failed ledger (every write refused) has no answer; list nothing.
    if (!ids.ok()) *total = 0;
    return ids.ok() ? std::move(*ids) : std::vector<std::string>{};
  }

  absl::StatusOr<uint64_t> FindLotByTraceHash(const std::string& trace_hash) const {
    return ReadState([&](const LedgerState& s) -> absl::StatusOr<uint64_t> {
      auto lot = s.FindLotByTraceHash(trace_hash);
      if (!lot) return absl::NotFoundError("trace_code: no donation has this trace code");
      return *lot;
    });
  }

  absl::StatusOr<std::vector<AidRuleInfo>> ListAidRules() const {
    return ReadState([&](const LedgerState& s) -> absl::StatusOr<std::vector<AidRuleInfo>> {
      return s.ListAidRules();
    });
  }

  absl::StatusOr<AidReport> GetAidReport(int64_t from_time_us, int64_t to_time_us,
                                         bool public_view) const {
    if (from_time_us > to_time_us) {
      return absl::InvalidArgumentError(absl::StrCat("from_time_us: ", from_time_us,
                                                     " is after to_time_us ", to_time_us));
    }
    return ReadState([&](const LedgerState& s) -> absl::StatusOr<AidReport> {
      return s.GetAidReport(from_time_us, to_time_us, public_view);
    });
  }

  absl::StatusOr<std::vector<ItemInfo>> ListItems() const {
    return ReadState(
        [&](const LedgerState& s) -> absl::StatusOr<std::vector<ItemInfo>> { return s.ListItems(); });
  }

  absl::StatusOr<ItemInfo> GetItem(const std::string& item) const {
    return ReadState([&](const LedgerState& s) { return s.GetItem(item); });
  }

  absl::StatusOr<VoucherInfo> GetVoucher(uint64_t voucher) const {
    return ReadState([&](const LedgerState& s) { return s.GetVoucher(voucher); });
  }

  absl::StatusOr<VoucherInfo> FindVoucherByCodeHash(const std::string& code_hash) const {
    return ReadState([&](const LedgerState& s) -> absl::StatusOr<VoucherInfo> {
      auto voucher = s.FindVoucherByCodeHash(code_hash);
      if (!voucher) return absl::NotFoundError("code: no voucher has this code");
      return s.GetVoucher(*voucher);
    });
  }

  absl::StatusOr<VoucherReport> GetVoucherReport() const {
    const int64_t now = clock_->NowMicros();
    return ReadState([&](const LedgerState& s) -> absl::StatusOr<VoucherReport> {
      return s.GetVoucherReport(now);
    });
  }

  absl::StatusOr<std::vector<StoreSettlement>> Settlement(const std::string& store,
                                                          int64_t from_time_us,
                                                          int64_t to_time_us) const {
    return ReadState(
        [&](const LedgerState& s) { return s.Settlement(store, from_time_us, to_time_us); });
  }

  // Account ids of the vouchers the expiry sweep should end now.
  absl::StatusOr<std::vector<std::string>> DueVouchers(size_t max) const {
    const int64_t now = clock_->NowMicros();
    return ReadState([&](const LedgerState& s) -> absl::StatusOr<std::vector<std::string>> {
      return s.DueVouchers(now, max);
    });
  }

  absl::StatusOr<std::vector<Balance>> TotalsPerAsset() const {
    return ReadState([&](const LedgerState& s) -> absl::StatusOr<std::vector<Balance>> {
      return s.TotalsPerAsset();
    });
  }

  bool WaitForSeq(uint64_t seq, int64_t timeout_ms) const {
    Monitor::Lock lock(&durable_mu_);
    auto reached = [this, seq]() { return durable_seq_.load(std::memory_order_acquire) >= seq; };
    return lock.AwaitWithTimeout(reached, absl::Milliseconds(std::max<int64_t>(timeout_ms, 0)));
  }

  absl::StatusOr<uint64_t> Backup(const std::string& dir) const {
    // Holding group_mu_ keeps the apply stage at a group boundary while the
    // checkpoint is cut, so the copy holds exactly the entries up to `seq`.
    std::lock_guard group_lock(group_mu_);
    uint64_t seq;
    {
      std::shared_lock lock(state_mu_);
      seq = state_.head_seq();
    }
    WL_RETURN_IF_ERROR(AwaitDurable(seq));  // the sync stage does not need state_mu_
    rocksdb::Checkpoint* raw = nullptr;
    WL_RETURN_IF_ERROR(FromRocks(rocksdb::Checkpoint::Create(db_.get(), &raw), "backup"));
    std::unique_ptr<rocksdb::Checkpoint> checkpoint(raw);
    WL_RETURN_IF_ERROR(FromRocks(checkpoint->CreateCheckpoint(dir), absl::StrCat("backup to ", dir)));
    return seq;
  }

  absl::Status VerifyChain() const {
    uint64_t durable = durable_seq_.load(std::memory_order_acquire);
    Hash prev{};
    return ScanEntries(db_.get(), rocksdb::ReadOptions(), 1, durable,
                       [&](StoredEntry e, std::string_view) -> absl::StatusOr<bool> {
                         if (e.entry.prev_hash != prev) {
                           return absl::DataLossError(absl::StrCat(
                               "entry ", e.entry.seq,
                               ": prev_hash does not match the hash of entry ",
                               e.entry.seq - 1));
                         }
                         prev = e.hash;
                         return true;
                       });
  }

  absl::StatusOr<Hash> TreeRoot(uint64_t tree_size) const {
    WL_RETURN_IF_ERROR(CheckTreeSize("tree_size", tree_size));
    return merkle::RootAt(tree_size, nodes_);
  }

  absl::StatusOr<std::vector<Hash>> InclusionProof(uint64_t seq, uint64_t tree_size) const {
    WL_RETURN_IF_ERROR(CheckTreeSize("tree_size", tree_size));
    if (seq == 0 || seq > tree_size) {
      return absl::InvalidArgumentError(absl::StrCat(
          "seq: entry ", seq, " is not in a tree of ", tree_size, " entries"));
    }
    return merkle::InclusionProof(seq - 1, tree_size, nodes_);
  }

  absl::StatusOr<std::vector<Hash>> ConsistencyProof(uint64_t old_size,
                                                     uint64_t new_size) const {
    WL_RETURN_IF_ERROR(CheckTreeSize("new_size", new_size));
    if (old_size == 0 || old_size > new_size) {
      return absl::InvalidArgumentError(absl::StrCat(
          "old_size: must be between 1 and new_size (", new_size, "), got ", old_size));
    }
    return merkle::ConsistencyProof(old_size, new_size, nodes_);
  }

  absl::StatusOr<std::string> LatestCheckpoint() const {
    Monitor::Lock lock(&durable_mu_);
    if (!latest_checkpoint_) {
      return absl::NotFoundError("checkpoint: none issued yet");
    }
    return latest_checkpoint_->note;
  }

  absl::StatusOr<std::string> CheckpointAt(uint64_t tree_size) const {
    std::string note;
    rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), CheckpointKey(tree_size), &note);
    if (s.IsNotFound()) {
      return absl::NotFoundError(
          absl::StrCat("tree_size: no checkpoint was issued at ", tree_size, " entries"));
    }
    WL_RETURN_IF_ERROR(FromRocks(s, "reading a checkpoint"));
    return note;
  }

  void WhenCheckpointCovers(uint64_t seq, int64_t timeout_ms, CheckpointCallback done) const {
    if (options_.checkpoint_signer == nullptr) {
      done(absl::FailedPreconditionError("checkpoint: this ledger signs no checkpoints"));
      return;
    }
    std::optional<std::string> ready;
    bool queued = false;
    {
      Monitor::Lock lock(&durable_mu_);
      if (latest_checkpoint_ && latest_checkpoint_->size >= seq) {
        ready = latest_checkpoint_->note;
      } else if (!checkpointer_stop_ && checkpoint_waiters_.size() < kCheckpointWaitersMax) {
        checkpoint_wanted_ = std::max(checkpoint_wanted_, seq);
        checkpoint_waiters_.push_back(
            {seq, absl::Now() + absl::Milliseconds(std::max<int64_t>(timeout_ms, 0)),
             std::move(done)});
        ++checkpoint_waiters_added_;
        queued = true;
      }
    }
    if (ready) {
      done(std::move(*ready));
    } else if (!queued) {
      done(absl::UnavailableError(absl::StrCat(
          "checkpoint: too many callers waiting (at most ", kCheckpointWaitersMax,
          ") or shutting down")));
    }
  }

  absl::StatusOr<std::string> WaitForCheckpoint(uint64_t seq, int64_t timeout_ms) const {
    Notification notified;
    absl::StatusOr<std::string> out;
    WhenCheckpointCovers(seq, timeout_ms, [&](absl::StatusOr<std::string> note) {
      out = std::move(note);
      notified.Notify();
    });
    notified.Wait();
    return out;
  }

  absl::StatusOr<Receipt> MakeReceipt(uint64_t seq) const {
    std::optional<CheckpointRecord> checkpoint;
    {
      Monitor::Lock lock(&durable_mu_);
      checkpoint = latest_checkpoint_;
    }
    if (!checkpoint || checkpoint->size < seq) {
      return absl::FailedPreconditionError(absl::StrCat(
          "seq: entry ", seq, " is not covered by a checkpoint yet (the newest covers ",
          checkpoint ? checkpoint->size : 0, " entries); retry shortly"));
    }
    WL_ASSIGN_OR_RETURN(StoredEntry stored, ReadEntry(seq));  // verified as read
    Receipt receipt;
    receipt.entry_bytes = std::move(stored.bytes);
    receipt.index = seq - 1;
    WL_ASSIGN_OR_RETURN(receipt.proof,
                        merkle::InclusionProof(seq - 1, checkpoint->size, nodes_));
    receipt.checkpoint = std::move(checkpoint->note);
    return receipt;
  }

  std::string VerifierKey() const {
    return options_.checkpoint_signer ? options_.checkpoint_signer->VerifierKey() : "";
  }

  absl::StatusOr<std::string> StateDigest() const {
    return ReadState(
        [&](const LedgerState& s) -> absl::StatusOr<std::string> { return s.Digest(); });
  }

  absl::StatusOr<std::string> RebuildStateDigest() const {
    uint64_t durable = durable_seq_.load(std::memory_order_acquire);
    const rocksdb::Snapshot* snapshot = db_->GetSnapshot();
    rocksdb::ReadOptions ro;
    ro.snapshot = snapshot;
    ro.fill_cache = false;
    LedgerState fresh;
    fresh.Reserve(durable);
    absl::Status s = ReplayAll(db_.get(), ro, &fresh, durable);
    db_->ReleaseSnapshot(snapshot);
    WL_RETURN_IF_ERROR(s);
    return fresh.Digest();
  }

 private:
  struct Request {
    std::vector<Operation> ops;
    Callback done;
  };

  // Requests applied together and made durable by one WriteBatch.
  struct Group {
    std::vector<Request> requests;
    std::vector<std::vector<OpResult>> results;
    uint64_t first_seq = 0;
    std::vector<std::string> values;  // stored values of seqs first_seq, first_seq+1, ...
    uint64_t last_seq = 0;            // head after the group
    Hash last_hash{};
    bool durable = false;             // set by the sync stage
    std::string snapshot;             // balance snapshot after last_seq, if one is due

    const std::string* Find(uint64_t seq) const {
      if (seq < first_seq || seq >= first_seq + values.size()) return nullptr;
      return &values[seq - first_seq];
    }
  };

  // The apply stage: takes queued requests, applies them to the state as one
  // group and hands the group to the sync stage. It may run one group ahead
  // of the sync stage, so applying group N+1 overlaps the fsync of group N.
  void SequencerLoop() {
    Journal journal;
    while (true) {
      auto group = std::make_shared<Group>();
      {
        Monitor::Lock lock(&queue_mu_);
        lock.Await([this] { return stopping_ || !queue_.empty(); });
        if (queue_.empty()) break;  // stopping, and all queued work is applied
        size_t ops = 0;
        while (!queue_.empty() &&
               (group->requests.empty() || ops + queue_.front().ops.size() <= kCommitOpsMax)) {
          ops += queue_.front().ops.size();
          group->requests.push_back(std::move(queue_.front()));
          queue_.pop_front();
        }
        queued_ops_ -= ops;
      }
      {
        // Bound the pipeline: at most kGroupsInFlightMax groups applied but
        // not yet durable.
        Monitor::Lock lock(&sync_mu_);
        lock.Await([this] { return in_flight_.size() < kGroupsInFlightMax; });
      }
      group->results.resize(group->requests.size());
      size_t group_ops = 0;
      for (const Request& r : group->requests) group_ops += r.ops.size();
      group->values.reserve(group_ops);
      {
        std::lock_guard group_lock(group_mu_);
        std::unique_lock lock(state_mu_);
        journal.Clear();
        group->first_seq = state_.head_seq() + 1;
        size_t ops_since_yield = 0;
        for (size_t i = 0; i < group->requests.size(); ++i) {
          group->results[i] =
              failed_.load() ? AllWith(group->requests[i].ops.size(),
                                       absl::UnavailableError("ledger: a durable write failed; "
                                                              "reopen the ledger"))
                             : ApplyRequest(group->requests[i].ops, &journal, group.get(),
                                            lock, ops_since_yield);
        }
        group->last_seq = state_.head_seq();
        group->last_hash = state_.head_hash();
        if (!group->values.empty() &&
            group->last_seq >= last_snapshot_seq_ + kSnapshotEveryEntries) {
          group->snapshot = EncodeSnapshot(state_.Snapshot());
          last_snapshot_seq_ = group->last_seq;
        }
      }
      Monitor::Lock lock(&sync_mu_);
      in_flight_.push_back(std::move(group));
    }
    Monitor::Lock lock(&sync_mu_);
    apply_done_ = true;
  }

  // The sync stage: writes the groups applied since its last commit as one
  // fsynced WriteBatch, in order, and publishes the new durable head. With
  // many small groups waiting (unary calls arrive one by one and the apply
  // stage groups whatever is queued), one fsync covers them all instead of
  // one each. Answering callers is left to the answer stage, so sending
  // replies never delays the next fsync.
  void SyncLoop() {
    std::vector<std::shared_ptr<Group>> groups;
    while (true) {
      groups.clear();
      {
        Monitor::Lock lock(&sync_mu_);
        lock.Await([this] { return apply_done_ || synced_ < in_flight_.size(); });
        if (synced_ == in_flight_.size()) {  // apply stage finished, all synced
          sync_done_ = true;
          return;
        }
        for (size_t i = synced_; i < in_flight_.size(); ++i) groups.push_back(in_flight_[i]);
      }
      const Group& last = *groups.back();
      bool any_values = false;
      for (const auto& g : groups) any_values = any_values || !g->values.empty();
      if (any_values && !failed_.load()) {
        // The entries and the tiles of the Merkle tree they extend commit
        // together.
        // Sized once (the entries, about 16 bytes of record header and key
        // each, and room for a few tiles), so that the batch's buffer is
        // not regrown and copied several times for a large commit; tiles
        // beyond that room still fit, at the cost of one regrowth.
        size_t batch_bytes = 64 << 10;
        for (const auto& g : groups) {
          for (const std::string& v : g->values) batch_bytes += v.size() + 16;
        }
        rocksdb::WriteBatch batch(batch_bytes);
        const std::string* snapshot = nullptr;
        for (const auto& g : groups) {
          for (size_t i = 0; i < g->values.size(); ++i) {
            batch.Put(EntryKey(g->first_seq + i), g->values[i]);
            tree_.Append(merkle::LeafHash(EntryBytesOf(g->values[i])));
          }
          if (!g->snapshot.empty()) snapshot = &g->snapshot;  // the newest one
        }
        WL_CHECK(tree_.size() == last.last_seq);
        for (const auto& [id, tile] : tree_.TakeChanged()) {
          batch.Put(TileKey(id.level, id.index), tile);
        }
        if (snapshot != nullptr) batch.Put(std::string(kSnapshotKey), *snapshot);
        rocksdb::WriteOptions wo;
        wo.sync = true;  // an acknowledgement means the entries are on disk
        const auto write_start = std::chrono::steady_clock::now();
        absl::Status s = FromRocks(SerialWrite(wo, &batch), "durable write");
        const int64_t write_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                                     std::chrono::steady_clock::now() - write_start)
                                     .count();
        if (!s.ok()) {
          // Memory is now ahead of disk. Refuse everything from here on;
          // reopening replays what is really stored.
          std::fprintf(stderr, "warmledger: %s\n", std::string(s.message()).c_str());
          Monitor::Lock dlock(&durable_mu_);
          failed_.store(true);
        } else {
          Monitor::Lock dlock(&durable_mu_);
          durable_hash_ = last.last_hash;
          durable_seq_.store(last.last_seq, std::memory_order_release);
          write_stats_.commits += 1;
          for (const auto& g : groups) write_stats_.entries += g->values.size();
          write_stats_.keys += batch.Count();
          write_stats_.bytes += batch.GetDataSize();
          write_stats_.write_ns += write_ns;
        }
      }
      // Everything a group answers (including duplicates of earlier groups'
      // entries) is durable once the groups before it and its own are.
      const bool durable = !failed_.load();
      for (const auto& g : groups) g->durable = durable;
      Monitor::Lock lock(&sync_mu_);
      synced_ += groups.size();
    }
  }

  // The answer stage: completes each synced group's callers, in order.
  void AnswerLoop() {
    while (true) {
      std::shared_ptr<Group> group;
      {
        Monitor::Lock lock(&sync_mu_);
        lock.Await([this] { return sync_done_ || synced_ > 0; });
        if (synced_ == 0) return;  // sync stage finished, all answered
        group = in_flight_.front();
      }
      if (!group->durable) {
        for (auto& results : group->results) {
          for (OpResult& r : results) {
            r = OpResult{absl::UnavailableError(
                "ledger: a durable write failed; this operation was not recorded")};
          }
        }
      }
      for (size_t i = 0; i < group->requests.size(); ++i) {
        group->requests[i].done(std::move(group->results[i]));
      }
      Monitor::Lock lock(&sync_mu_);
      in_flight_.pop_front();
      --synced_;
    }
  }

  absl::Status CheckTreeSize(absl::string_view field, uint64_t tree_size) const {
    const uint64_t durable = durable_seq_.load(std::memory_order_acquire);
    if (tree_size == 0 || tree_size > durable) {
      return absl::OutOfRangeError(absl::StrCat(field, ": ", tree_size,
                                                " is not a tree size of this ledger (1..",
                                                durable, ")"));
    }
    return absl::OkStatus();
  }

  // Issues checkpoints: when checkpoint_every_entries entries are uncovered,
  // when uncovered entries are checkpoint_every_ms old, or when a caller waits
  // for one; never two within checkpoint_interval_min_ms; once more on
  // shutdown so that every durable entry is covered.
  void CheckpointLoop() {
    const absl::Duration every = absl::Milliseconds(options_.checkpoint_every_ms);
    const absl::Duration min_interval = absl::Milliseconds(options_.checkpoint_interval_min_ms);
    absl::Time last_issued = absl::InfinitePast();
    bool halted = false;
    while (true) {
      uint64_t size = 0;
      bool stop = false;
      {
        Monitor::Lock lock(&durable_mu_);
        const uint64_t covered = latest_checkpoint_ ? latest_checkpoint_->size : 0;
        const uint64_t waiters_added = checkpoint_waiters_added_;
        auto due = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(durable_mu_) {
          const uint64_t durable = durable_seq_.load(std::memory_order_acquire);
          return checkpointer_stop_ || checkpoint_waiters_added_ != waiters_added ||
                 durable >= covered + options_.checkpoint_every_entries ||
                 (checkpoint_wanted_ > covered && durable >= checkpoint_wanted_);
        };
        lock.AwaitWithTimeout(due, std::min(every, UntilNextDeadline()));
        const absl::Duration since = absl::Now() - last_issued;
        if (!checkpointer_stop_ && since < min_interval) {
          auto stopping = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(durable_mu_) {
            return checkpointer_stop_;
          };
          lock.AwaitWithTimeout(stopping, min_interval - since);
        }
        stop = checkpointer_stop_;
        size = durable_seq_.load(std::memory_order_acquire);
        if (size <= covered || failed_.load() || halted) size = 0;
      }
      if (size > 0) {
        absl::Status issued = IssueCheckpoint(size);
        last_issued = absl::Now();
        if (!issued.ok()) {
          std::fprintf(stderr, "warmledger: checkpoint of %llu entries: %s\n",
                       static_cast<unsigned long long>(size),
                       std::string(issued.message()).c_str());
          // A tree that is not an extension of the last signed one must
          // never be signed; only a restart (which re-verifies) resumes.
          halted = halted || absl::IsInternal(issued);
        }
      }
      AnswerWaiters(stop);
      if (stop) return;
    }
  }

  // Time until the earliest waiter's deadline.
  absl::Duration UntilNextDeadline() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(durable_mu_) {
    absl::Time earliest = absl::InfiniteFuture();
    for (const CheckpointWaiter& w : checkpoint_waiters_) earliest = std::min(earliest, w.deadline);
    return std::max(earliest - absl::Now(), absl::ZeroDuration());
  }

  // Completes the waiters whose entry is covered, whose deadline passed, or
  // all of them when stopping.
  void AnswerWaiters(bool stopping) {
    std::vector<std::pair<CheckpointCallback, absl::StatusOr<std::string>>> answers;
    {
      Monitor::Lock lock(&durable_mu_);
      const absl::Time now = absl::Now();
      auto& waiters = checkpoint_waiters_;
      for (size_t i = 0; i < waiters.size();) {
        CheckpointWaiter& w = waiters[i];
        absl::StatusOr<std::string> answer;
        if (latest_checkpoint_ && latest_checkpoint_->size >= w.seq) {
          answer = latest_checkpoint_->note;
        } else if (stopping) {
          answer = absl::UnavailableError("checkpoint: the ledger is shutting down");
        } else if (now >= w.deadline) {
          answer = absl::DeadlineExceededError(absl::StrCat(
              "checkpoint: none covers entry ", w.seq, " yet (the newest covers ",
              latest_checkpoint_ ? latest_checkpoint_->size : 0, ")"));
        } else {
          ++i;
          continue;
        }
        answers.emplace_back(std::move(w.done), std::move(answer));
        w = std::move(waiters.back());
        waiters.pop_back();
      }
    }
    for (auto& [done, answer] : answers) done(std::move(answer));
  }

  // Signs and stores the checkpoint of the first `size` entries, after
  // proving that it extends the previous checkpoint.
  absl::Status IssueCheckpoint(uint64_t size) {
    WL_ASSIGN_OR_RETURN(Hash root, merkle::RootAt(size, nodes_));
    std::optional<CheckpointRecord> previous;
    {
      Monitor::Lock lock(&durable_mu_);
      previous = latest_checkpoint_;
    }
    if (previous) {
      WL_ASSIGN_OR_RETURN(std::vector<Hash> proof,
                          merkle::ConsistencyProof(previous->size, size, nodes_));
      absl::Status consistent =
          merkle::VerifyConsistency(previous->size, size, previous->root, root, proof);
      if (!consistent.ok()) {
        return absl::InternalError(absl::StrCat(
            "refusing to sign: the tree of ", size,
            " entries does not extend the checkpoint of ", previous->size, ": ",
            consistent.message()));
      }
    }
    WL_ASSIGN_OR_RETURN(std::string note,
                        options_.checkpoint_signer->Sign(
                            FormatCheckpoint({options_.checkpoint_origin, size, root})));
    rocksdb::WriteOptions wo;
    wo.sync = true;
    rocksdb::WriteBatch batch;
    batch.Put(CheckpointKey(size), note);
    WL_RETURN_IF_ERROR(FromRocks(SerialWrite(wo, &batch), "writing a checkpoint"));
    Monitor::Lock lock(&durable_mu_);
    latest_checkpoint_ = CheckpointRecord{size, root, std::move(note)};
    return absl::OkStatus();
  }

  // Reads an entry that is durable, or applied in a group not yet durable.
  absl::StatusOr<Entry> LookupEntry(uint64_t seq, const Group& current) const {
    const std::string* value = current.Find(seq);
    std::shared_ptr<Group> holder;
    if (value == nullptr) {
      Monitor::Lock lock(&sync_mu_);
      for (const auto& g : in_flight_) {
        if ((value = g->Find(seq)) != nullptr) {
          holder = g;  // keeps the value alive after the lock is released
          break;
        }
      }
    }
    std::string from_db;
    if (value == nullptr) {
      WL_RETURN_IF_ERROR(FromRocks(db_->Get(rocksdb::ReadOptions(), EntryKey(seq), &from_db),
                                   absl::StrCat("entry ", seq)));
      value = &from_db;
    }
    WL_ASSIGN_OR_RETURN(StoredEntry e, ParseStoredValue(*value, seq));
    return std::move(e.entry);
  }

  // Readers of derived state copy it under the lock, then wait until every
  // entry they may have seen is durable, so that nothing they return can be
  // lost in a crash.
  absl::Status AwaitDurable(uint64_t seq) const {
    Monitor::Lock lock(&durable_mu_);
    auto reached = [this, seq]() {
      return failed_.load() || durable_seq_.load(std::memory_order_acquire) >= seq;
    };
    lock.Await(reached);
    if (failed_.load()) {
      return absl::UnavailableError("ledger: a durable write failed; reopen the ledger");
    }
    return absl::OkStatus();
  }

  // Applies one request's operations under `lock` (on state_mu_). Between
  // linked chains, once kApplyOpsPerStateLock operations were applied since
  // the last time, releases the lock for a moment so that waiting readers
  // run: they see the state after a whole entry, never inside a chain that
  // may still be undone.
  std::vector<OpResult> ApplyRequest(std::vector<Operation>& ops, Journal* journal,
                                     Group* pending, std::unique_lock<std::shared_mutex>& lock,
                                     size_t& ops_since_yield)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(state_mu_) {
    std::vector<OpResult> results(ops.size());
    EntryLookup lookup = [&](uint64_t seq) { return LookupEntry(seq, *pending); };
    size_t i = 0;
    while (i < ops.size()) {
      if (ops_since_yield >= kApplyOpsPerStateLock) {
        lock.unlock();
        lock.lock();
        ops_since_yield = 0;
      }
      // A chain is [i, end]: linked operations up to the first unlinked one.
      size_t end = i;
      while (end < ops.size() && ops[end].linked) ++end;
      if (end == ops.size()) {
        for (size_t k = i; k < ops.size(); ++k) {
          results[k].status = absl::InvalidArgumentError(absl::StrCat(
              "operations[", k, "].linked: the linked chain starting at operation ", i,
              " is not closed (its last operation must have linked = false)"));
        }
        break;
      }
      if (end - i + 1 > kLinkedGroupOpsMax) {
        for (size_t k = i; k <= end; ++k) {
          results[k].status = absl::InvalidArgumentError(absl::StrCat(
              "operations[", k, "].linked: the chain starting at operation ", i, " has ",
              end - i + 1, " operations, at most ", kLinkedGroupOpsMax, " allowed"));
        }
        i = end + 1;
        continue;
      }
      const size_t mark = journal->Mark();
      const size_t pending_mark = pending->values.size();
      size_t failed_at = SIZE_MAX;
      for (size_t k = i; k <= end; ++k) {
        if (k + 2 < ops.size()) state_.PrefetchClientId(ops[k + 2].client_id);
        results[k] = ApplyOne(ops[k], lookup, journal, pending);
        if (!results[k].status.ok()) {
          failed_at = k;
          break;
        }
      }
      if (failed_at != SIZE_MAX && end > i) {
        state_.UndoTo(journal, mark);
        pending->values.resize(pending_mark);
        for (size_t k = i; k <= end; ++k) {
          if (k == failed_at) continue;
          results[k] = OpResult{absl::AbortedError(absl::StrCat(
              "linked operation failed: operation ", failed_at, " of the chain: ",
              results[failed_at].status.message()))};
        }
      }
      ops_since_yield += end - i + 1;
      i = end + 1;
    }
    return results;
  }

  OpResult ApplyOne(Operation& op, const EntryLookup& lookup, Journal* journal,
                    Group* pending) ABSL_EXCLUSIVE_LOCKS_REQUIRED(state_mu_) {
    OpResult result;
    if (const auto* open = std::get_if<OpenAccountOp>(&op.body); open && op.if_absent) {
      auto existing = state_.GetAccount(open->account);
      if (existing.ok() && existing->kind == open->kind && existing->asset == open->asset) {
        result.seq = existing->opened_seq;
        result.duplicate = true;
        return result;
      }
    }
    if (std::optional<std::string> natural = NaturalClientId(op.body)) {
      if (op.client_id.empty()) {
        op.client_id = std::move(*natural);
      } else if (op.client_id != *natural) {
        result.status = absl::InvalidArgumentError(absl::StrCat(
            "client_id: a ", EntryTypeName(TypeOf(op.body)),
            " is identified by its own keys; leave client_id empty (or send '", *natural,
            "')"));
        return result;
      }
    }
    if (auto seq = state_.FindClientId(op.client_id)) {
      auto original = lookup(*seq);
      if (!original.ok()) {
        result.status = original.status();
        return result;
      }
      if (auto diff = FirstDifference(original->body, op.body)) {
        result.status = absl::AlreadyExistsError(
            absl::StrCat("client_id: '", op.client_id, "' was used by entry ", *seq,
                         " with a different ", *diff));
        return result;
      }
      result.seq = *seq;
      result.time_us = original->time_us;
      result.duplicate = true;
      state_.FillDetails(*original, &result);
      return result;
    }
    // The body is not needed after this; the state keeps what it records.
    auto applied =
        state_.Apply(op.client_id, std::move(op.body), clock_->NowMicros(), lookup, journal);
    if (!applied.ok()) {
      result.status = applied.status();
      return result;
    }
    WL_CHECK(applied->seq == pending->first_seq + pending->values.size());
    pending->values.push_back(std::move(applied->stored_value));
    result.seq = applied->seq;
    result.time_us = applied->time_us;
    if (state_.LastEntry().type() >= EntryType::kPurchase) {
      state_.FillDetails(state_.LastEntry(), &result);
    }
    return result;
  }

  const LedgerOptions options_;
  Clock* const clock_;
  std::unique_ptr<rocksdb::DB> db_;
  // Checks stored checkpoints' signatures; set when a signer is configured.
  const std::optional<NoteVerifier> verifier_;
  // Complete nodes of the Merkle tree, read from the stored tiles.
  const merkle::NodeSource nodes_;
  // The right edge of the Merkle tree; owned by the sync stage after Recover.
  merkle::TileBuilder tree_;

  // Held by the apply stage for a whole group, so that whoever takes it
  // (Backup) finds the state at a group boundary. Taken before state_mu_.
  mutable std::mutex group_mu_;
  // The apply stage holds it exclusively, releasing it between linked chains
  // (ApplyRequest); readers share it.
  mutable std::shared_mutex state_mu_;
  LedgerState state_ ABSL_GUARDED_BY(state_mu_);
  uint64_t last_snapshot_seq_ ABSL_GUARDED_BY(state_mu_) = 0;
  // Entries with seq <= durable_seq_ are on disk and readable. Stored under
  // durable_mu_ so that waiters wake up; read without it.
  std::atomic<uint64_t> durable_seq_{0};
  mutable Monitor durable_mu_;
  Hash durable_hash_ ABSL_GUARDED_BY(durable_mu_){};
  WriteStats write_stats_ ABSL_GUARDED_BY(durable_mu_);
  // Set (under durable_mu_) when a durable write failed: every later
  // operation and read answers kUnavailable until the ledger is reopened.
  std::atomic<bool> failed_{false};
  // The newest signed checkpoint, and the highest seq a caller waits to see
  // covered.
  std::optional<CheckpointRecord> latest_checkpoint_ ABSL_GUARDED_BY(durable_mu_);
  mutable uint64_t checkpoint_wanted_ ABSL_GUARDED_BY(durable_mu_) = 0;
  struct CheckpointWaiter {
    uint64_t seq;
    absl::Time deadline;
    CheckpointCallback done;
  };
  mutable std::vector<CheckpointWaiter> checkpoint_waiters_ ABSL_GUARDED_BY(durable_mu_);
  mutable uint64_t checkpoint_waiters_added_ ABSL_GUARDED_BY(durable_mu_) = 0;
  bool checkpointer_stop_ ABSL_GUARDED_BY(durable_mu_) = false;

  Monitor queue_mu_;
  std::deque<Request> queue_ ABSL_GUARDED_BY(queue_mu_);
  size_t queued_ops_ ABSL_GUARDED_BY(queue_mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(queue_mu_) = false;

  // Groups applied and not yet answered, oldest first: the first `synced_`
  // are durable and wait for (or are in) the answer stage; the next one is
  // being written. Popped once its callers are answered.
  mutable Monitor sync_mu_;
  std::deque<std::shared_ptr<Group>> in_flight_ ABSL_GUARDED_BY(sync_mu_);
  size_t synced_ ABSL_GUARDED_BY(sync_mu_) = 0;
  bool apply_done_ ABSL_GUARDED_BY(sync_mu_) = false;
  bool sync_done_ ABSL_GUARDED_BY(sync_mu_) = false;

  // Serialises the running ledger's writes (SerialWrite).
  std::mutex write_mu_;

  std::thread sequencer_;  // apply stage
  std::thread syncer_;     // sync stage
  std::thread answerer_;   // answer stage
  std::thread checkpointer_;
};

absl::StatusOr<std::unique_ptr<Ledger>> Ledger::Open(const LedgerOptions& options) {
  if (options.path.empty()) return absl::InvalidArgumentError("path: required");
  rocksdb::Options db_options;
  db_options.create_if_missing = true;
  if (options.env != nullptr) db_options.env = options.env;
  db_options.max_background_jobs = 2;
  db_options.write_buffer_size = 64 << 20;
  rocksdb::BlockBasedTableOptions table;
  table.block_cache = rocksdb::NewLRUCache(options.block_cache_bytes);
  table.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
  db_options.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
  rocksdb::DB* raw = nullptr;
  WL_RETURN_IF_ERROR(FromRocks(rocksdb::DB::Open(db_options, options.path, &raw),
                               absl::StrCat("opening ", options.path)));
  std::unique_ptr<rocksdb::DB> db(raw);

  std::string format;
  rocksdb::Status s = db->Get(rocksdb::ReadOptions(), std::string(kFormatKey), &format);
  uint32_t version = kFormatVersion;
  const bool created = s.IsNotFound();
  if (!created) {
    WL_RETURN_IF_ERROR(FromRocks(s, "reading format"));
    if (format.size() != 4 || format[1] != 0 || format[2] != 0 || format[3] != 0 ||
        (static_cast<uint8_t>(format[0]) != 1 &&
         static_cast<uint8_t>(format[0]) != kFormatVersion)) {
      return absl::DataLossError("format: unknown ledger format version");
    }
    version = static_cast<uint8_t>(format[0]);
  }
  std::optional<NoteVerifier> verifier;
  if (options.checkpoint_signer != nullptr) {
    auto parsed = NoteVerifier::Parse(options.checkpoint_signer->VerifierKey());
    WL_RETURN_IF_ERROR(parsed.status());
    verifier = std::move(*parsed);
  }
  auto impl = std::make_unique<Impl>(options, std::move(db), std::move(verifier));
  // A version 1 ledger has no tree yet: build it from the entries.
  WL_RETURN_IF_ERROR(impl->Recover(/*upgrade=*/version == 1));
  if (created || version != kFormatVersion) {
    std::string v(4, '\0');
    for (int i = 0; i < 4; ++i) v[i] = static_cast<char>((kFormatVersion >> (8 * i)) & 0xff);
    WL_RETURN_IF_ERROR(impl->WriteFormat(v));
  }
  impl->Start();
  return std::unique_ptr<Ledger>(new Ledger(std::move(impl)));
}

Ledger::Ledger(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Ledger::~Ledger() = default;

void Ledger::SubmitAsync(std::vector<Operation> ops, Callback done) {
  impl_->SubmitAsync(std::move(ops), std::move(done));
}

std::vector<OpResult> Ledger::Submit(std::vector<Operation> ops) {
  Notification notified;
  std::vector<OpResult> out;
  impl_->SubmitAsync(std::move(ops), [&](std::vector<OpResult> results) {
    out = std::move(results);
    notified.Notify();
  });
  notified.Wait();
  return out;
}

OpResult Ledger::SubmitOne(Operation op) {
  std::vector<Operation> ops;
  ops.push_back(std::move(op));
  return std::move(Submit(std::move(ops))[0]);
}

LedgerHead Ledger::Head() const { return impl_->Head(); }
WriteStats Ledger::GetWriteStats() const { return impl_->GetWriteStats(); }
absl::StatusOr<StoredEntry> Ledger::ReadEntry(uint64_t seq) const {
  return impl_->ReadEntry(seq);
}
absl::StatusOr<std::vector<StoredEntry>> Ledger::ReadEntries(uint64_t from_seq,
                                                             uint64_t count_max) const {
  return impl_->ReadEntries(from_seq, count_max);
}
absl::StatusOr<AccountInfo> Ledger::GetAccount(const std::string& account) const {
  return impl_->GetAccount(account);
}
absl::StatusOr<HoldingsPage> Ledger::GetHoldings(const std::string& account, uint64_t offset,
                                                 uint64_t limit) const {
  return impl_->GetHoldings(account, offset, limit);
}
absl::StatusOr<LotInfo> Ledger::GetLot(uint64_t lot) const { return impl_->GetLot(lot); }
absl::StatusOr<LotTrace> Ledger::TraceLot(uint64_t lot) const { return impl_->TraceLot(lot); }
absl::StatusOr<EntryTracePage> Ledger::TraceEntry(uint64_t seq, uint64_t offset,
                                                  uint64_t limit) const {
  return impl_->TraceEntry(seq, offset, limit);
}
absl::StatusOr<DonorStatementPage> Ledger::DonorStatement(const std::string& donor,
                                                          uint64_t offset,
                                                          uint64_t limit) const {
  return impl_->DonorStatement(donor, offset, limit);
}
absl::StatusOr<StatementPage> Ledger::Statement(const std::string& account,
                                                int64_t from_time_us, int64_t to_time_us,
                                                uint64_t offset, uint64_t limit) const {
  return impl_->Statement(account, from_time_us, to_time_us, offset, limit);
}
std::vector<std::string> Ledger::ListAccounts(std::optional<AccountKind> kind, uint64_t offset,
                                              uint64_t limit, uint64_t* total) const {
  return impl_->ListAccounts(kind, offset, limit, total);
}
absl::StatusOr<uint64_t> Ledger::FindLotByTraceHash(const std::string& trace_hash) const {
  return impl_->FindLotByTraceHash(trace_hash);
}
absl::StatusOr<std::vector<Balance>> Ledger::TotalsPerAsset() const {
  return impl_->TotalsPerAsset();
}

absl::StatusOr<std::vector<AidRuleInfo>> Ledger::ListAidRules() const {
  return impl_->ListAidRules();
}
absl::StatusOr<AidReport> Ledger::GetAidReport(int64_t from_time_us, int64_t to_time_us,
                                               bool public_view) const {
  return impl_->GetAidReport(from_time_us, to_time_us, public_view);
}
absl::StatusOr<std::vector<ItemInfo>> Ledger::ListItems() const {
  return impl_->ListItems();
}
absl::StatusOr<ItemInfo> Ledger::GetItem(const std::string& item) const {
  return impl_->GetItem(item);
}
absl::StatusOr<VoucherInfo> Ledger::GetVoucher(uint64_t voucher) const {
  return impl_->GetVoucher(voucher);
}

absl::StatusOr<VoucherInfo> Ledger::FindVoucherByCodeHash(const std::string& code_hash) const {
  return impl_->FindVoucherByCodeHash(code_hash);
}

absl::StatusOr<VoucherReport> Ledger::GetVoucherReport() const {
  return impl_->GetVoucherReport();
}

absl::StatusOr<std::vector<StoreSettlement>> Ledger::Settlement(const std::string& store,
                                                                int64_t from_time_us,
                                                                int64_t to_time_us) const {
  return impl_->Settlement(store, from_time_us, to_time_us);
}

absl::StatusOr<std::vector<std::pair<std::string, OpResult>>> Ledger::ExpireDueVouchers(
    size_t max) {
  WL_ASSIGN_OR_RETURN(std::vector<std::string> due,
                      impl_->DueVouchers(std::min(max, kBatchOpsMax)));
  std::vector<std::pair<std::string, OpResult>> out;
  if (due.empty()) return out;
  std::vector<Operation> ops;
  for (const std::string& voucher : due) {
    Operation op;  // the client id is the expiry's natural id
    op.body = VoucherCloseOp{voucher, VoucherCloseMode::kExpire, ""};
    ops.push_back(std::move(op));
  }
  std::vector<OpResult> results = Submit(std::move(ops));
  for (size_t i = 0; i < due.size(); ++i) out.emplace_back(due[i], std::move(results[i]));
  return out;
}
bool Ledger::WaitForSeq(uint64_t seq, int64_t timeout_ms) const {
  return impl_->WaitForSeq(seq, timeout_ms);
}
absl::StatusOr<uint64_t> Ledger::Backup(const std::string& dir) const {
  return impl_->Backup(dir);
}
absl::Status Ledger::VerifyChain() const { return impl_->VerifyChain(); }
absl::StatusOr<Hash> Ledger::TreeRoot(uint64_t tree_size) const {
  return impl_->TreeRoot(tree_size);
}
absl::StatusOr<std::vector<Hash>> Ledger::InclusionProof(uint64_t seq,
                                                         uint64_t tree_size) const {
  return impl_->InclusionProof(seq, tree_size);
}
absl::StatusOr<std::vector<Hash>> Ledger::ConsistencyProof(uint64_t old_size,
                                                           uint64_t new_size) const {
  return impl_->ConsistencyProof(old_size, new_size);
}
absl::StatusOr<std::string> Ledger::LatestCheckpoint() const {
  return impl_->LatestCheckpoint();
}
absl::StatusOr<std::string> Ledger::CheckpointAt(uint64_t tree_size) const {
  return impl_->CheckpointAt(tree_size);
}
void Ledger::WhenCheckpointCovers(uint64_t seq, int64_t timeout_ms,
                                  CheckpointCallback done) const {
  impl_->WhenCheckpointCovers(seq, timeout_ms, std::move(done));
}
absl::StatusOr<std::string> Ledger::WaitForCheckpoint(uint64_t seq, int64_t timeout_ms) const {
  return impl_->WaitForCheckpoint(seq, timeout_ms);
}
absl::StatusOr<Receipt> Ledger::MakeReceipt(uint64_t seq) const {
  return impl_->MakeReceipt(seq);
}
std::string Ledger::VerifierKey() const { return impl_->VerifierKey(); }
std::string Ledger::StateDigest() const {
  auto digest = impl_->StateDigest();
  return digest.ok() ? *digest : std::string(digest.status().message());
}
absl::StatusOr<std::string> Ledger::RebuildStateDigest() const {
  return impl_->RebuildStateDigest();
}

}  // namespace warmledger
