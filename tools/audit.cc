#include "tools/audit.h"

#include <fcntl.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <chrono>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <sstream>
#include <system_error>
#include <thread>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "ledger/entry_codec.h"
#include "ledger/merkle.h"
#include "ledger/monitor.h"
#include "ledger/note.h"
#include "ledger/rocks_status.h"
#include "ledger/sha256.h"
#include "ledger/state.h"
#include "ledger/status_macros.h"
#include "rocksdb/db.h"
#include "rocksdb/env.h"
#include "rocksdb/options.h"
#include "warmledger/v1/ledger.pb.h"

namespace warmledger::audit {
namespace {

// ---- Small helpers. ----

constexpr size_t kHashBytes = 32;
// version:u8 type:u8 seq:u64 time_us:i64 prev_hash:hash
constexpr size_t kSeqOffset = 2;
constexpr size_t kPrevHashOffset = 18;
constexpr size_t kEntryHeaderBytes = kPrevHashOffset + kHashBytes;
// The export file's record limit (client/cli.cc, ExportFile).
constexpr uint32_t kExportRecordBytesMax = 16u << 20;
// Records per chunk handed from the reader to both checkers, and the bytes
// after which a chunk is closed early; chunks in flight between them.
// Small chunks keep what one thread decoded in cache until the other
// applies it.
constexpr size_t kChunkEntriesMax = 256;
constexpr size_t kChunkBytesMax = 1u << 20;
constexpr size_t kChunksInFlightMax = 4;
// Stored tiles are compared every this many entries (and at the end).
constexpr uint64_t kTileCheckEntries = 4096;

std::string_view Bytes(const Hash& h) {
  return std::string_view(reinterpret_cast<const char*>(h.data()), h.size());
}

Hash HashAt(std::string_view bytes, size_t offset) {
  Hash h;
  std::memcpy(h.data(), bytes.data() + offset, kHashBytes);
  return h;
}

uint64_t Le64At(std::string_view bytes, size_t offset) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | static_cast<uint8_t>(bytes[offset + i]);
  return v;
}

std::string Short(const Hash& h) { return HashToHex(h).substr(0, 16); }

absl::StatusOr<std::string> ReadWholeFile(const std::string& path, absl::string_view what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::NotFoundError(
        absl::StrCat("cannot read ", what, " ", path, ": ", std::strerror(errno)));
  }
  std::ostringstream s;
  s << in.rdbuf();
  if (in.bad()) return absl::UnavailableError(absl::StrCat("cannot read ", what, " ", path));
  return s.str();
}

// A RocksDB logger that writes nothing: the auditor leaves no file behind in
// the folder it checks.
class SilentLogger : public rocksdb::Logger {
 public:
  using rocksdb::Logger::Logv;
  void Logv(const char*, va_list) override {}
};

// ---- The first failure. ----

// Failures are ordered by seq, then by rank: an entry's own bytes (hash,
// chain) before its replay, before what the tree says about it.
enum Rank { kRankEntry = 0, kRankReplay = 1, kRankTree = 2, kRankFinal = 3 };

struct Failure {
  uint64_t seq = UINT64_MAX;  // what it is ordered by
  int rank = kRankFinal;
  bool about_entry = true;  // reported as "at entry seq"
  std::string message;
};

// Collects failures from both threads and keeps the first; tells each
// thread where to stop (nothing at or after the first failing seq matters).
class FailureBoard {
 public:
  void Report(Failure f) {
    std::lock_guard<std::mutex> lock(mu_);
    const uint64_t key = Key(f.seq, f.rank);
    if (!first_ || key < stop_at_.load(std::memory_order_relaxed)) {
      stop_at_.store(key, std::memory_order_relaxed);
      first_ = std::move(f);
    }
  }
  void ReportEntry(uint64_t seq, Rank rank, std::string message) {
    Report(Failure{seq, rank, true, std::move(message)});
  }
  // Whether a check of entry `seq` of this rank is pointless: a failure at an
  // earlier entry, or at this one of the same or a lower rank, is known.
  bool Stopped(uint64_t seq, Rank rank) const {
    return Key(seq, rank) >= stop_at_.load(std::memory_order_relaxed);
  }
  std::optional<Failure> First() const {
    std::lock_guard<std::mutex> lock(mu_);
    return first_;
  }

 private:
  static uint64_t Key(uint64_t seq, int rank) {
    return seq >= (uint64_t{1} << 61) ? UINT64_MAX : (seq << 2) | static_cast<uint64_t>(rank);
  }
  // Key() of the first failure.
  std::atomic<uint64_t> stop_at_{UINT64_MAX};
  mutable std::mutex mu_;
  std::optional<Failure> first_ ABSL_GUARDED_BY(mu_);
};

// ---- Chunks of stored values, shared by both threads. ----

struct Chunk {
  uint64_t first_seq = 0;
  std::string arena;          // stored values (entry_bytes || entry_hash), back to back
  std::vector<uint32_t> ends;  // end offset of each value in `arena`
  // The values decoded by the reading thread, before the chunk is handed to
  // the replay thread. Decoding stops at the first value that does not
  // decode: entry `decoded` then fails with `decode_error`. The entries are
  // kept when the chunk is reused, so that decoding into them reuses their
  // strings' buffers.
  std::vector<Entry> entries;
  size_t decoded = 0;
  absl::Status decode_error;

  size_t size() const { return ends.size(); }
  std::string_view Value(size_t i) const {
    const uint32_t begin = i == 0 ? 0 : ends[i - 1];
    return std::string_view(arena).substr(begin, ends[i] - begin);
  }
  void Add(std::string_view a, std::string_view b = {}) {
    arena.append(a.data(), a.size());
    arena.append(b.data(), b.size());
    ends.push_back(static_cast<uint32_t>(arena.size()));
  }
  bool Full() const { return ends.size() >= kChunkEntriesMax || arena.size() >= kChunkBytesMax; }
  // Empties the chunk for reuse, keeping the memory of its buffers (a new
  // chunk's arena would grow by doubling, copying what it holds each time).
  void Reset() {
    first_seq = 0;
    arena.clear();
    ends.clear();
    decoded = 0;
    decode_error = absl::OkStatus();
  }
};

// A bounded queue from the reading thread to the replay thread.
class ChunkQueue {
 public:
  // Blocks while full; drops the chunk once the consumer gave up.
  void Push(std::shared_ptr<Chunk> chunk) {
    Monitor::Lock lock(&mu_);
    lock.Await([this] { return abandoned_ || chunks_.size() < kChunksInFlightMax; });
    if (!abandoned_) chunks_.push_back(std::move(chunk));
  }
  void Close() {
    Monitor::Lock lock(&mu_);
    closed_ = true;
  }
  // The next chunk, or null once closed and drained.
  std::shared_ptr<Chunk> Pop() {
    Monitor::Lock lock(&mu_);
    lock.Await([this] { return closed_ || !chunks_.empty(); });
    if (chunks_.empty()) return nullptr;
    std::shared_ptr<Chunk> c = std::move(chunks_.front());
    chunks_.pop_front();
    return c;
  }
  // The consumer is done with `chunk`: the producer takes it back with
  // TakeRetired, and frees the entries it decoded on the thread that
  // allocated them.
  void Retire(std::shared_ptr<Chunk> chunk) {
    Monitor::Lock lock(&mu_);
    retired_.push_back(std::move(chunk));
  }
  // Appends the retired chunks to `out`.
  void TakeRetired(std::vector<std::shared_ptr<Chunk>>* out) {
    Monitor::Lock lock(&mu_);
    for (auto& chunk : retired_) out->push_back(std::move(chunk));
    retired_.clear();
  }

  // The consumer stops: pending and future chunks are dropped.
  void Abandon() {
    Monitor::Lock lock(&mu_);
    abandoned_ = true;
    chunks_.clear();
  }

 private:
  Monitor mu_;
  std::deque<std::shared_ptr<Chunk>> chunks_ ABSL_GUARDED_BY(mu_);
  std::vector<std::shared_ptr<Chunk>> retired_ ABSL_GUARDED_BY(mu_);
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  bool abandoned_ ABSL_GUARDED_BY(mu_) = false;
};

// ---- Sources: where the stored values come from. ----

class Source {
 public:
  virtual ~Source() = default;
  // Fills `chunk` (first_seq set by the caller) with the next stored values
  // in seq order. Returns false once nothing more is left. A gap or damage in
  // the source itself is reported to `board` and ends the source.
  virtual bool Next(Chunk* chunk, FailureBoard* board) = 0;
  // The decoded entry `seq` (already read by Next), for replaying reversals.
  // Thread-safe with respect to Next.
  virtual absl::StatusOr<Entry> Lookup(uint64_t seq) const = 0;
  // About how many entries the source holds (sizes the replay's indexes
  // once; a wrong value costs only time or memory).
  virtual uint64_t EntryCountHint() const = 0;
};

absl::Status DecodeStoredInto(std::string_view value, uint64_t seq, Entry* entry) {
  if (value.size() < kHashBytes + kEntryHeaderBytes) {
    return absl::DataLossError(absl::StrCat("entry ", seq, ": too short"));
  }
  return DecodeEntryInto(EntryBytesOf(value), entry);
}

absl::StatusOr<Entry> DecodeStored(std::string_view value, uint64_t seq) {
  Entry entry;
  WL_RETURN_IF_ERROR(DecodeStoredInto(value, seq, &entry));
  return entry;
}

// Entries of a RocksDB database opened read-only: keys 'E' + seq big-endian.
class DbSource : public Source {
 public:
  explicit DbSource(rocksdb::DB* db) : db_(db), upper_bound_("F"), bound_(upper_bound_) {
    rocksdb::ReadOptions ro;
    ro.fill_cache = false;
    ro.readahead_size = 4 << 20;
    ro.iterate_upper_bound = &bound_;
    it_.reset(db_->NewIterator(ro));
    it_->Seek(std::string(1, kEntryKeyPrefix));
  }

  bool Next(Chunk* chunk, FailureBoard* board) override {
    if (done_) return false;
    uint64_t expected = chunk->first_seq;
    for (; it_->Valid() && !chunk->Full(); it_->Next(), ++expected) {
      const rocksdb::Slice key = it_->key();
      const uint64_t seq = SeqFromEntryKey(std::string_view(key.data(), key.size()));
      if (seq != expected) {
        board->ReportEntry(
            expected, kRankEntry,
            seq == 0 ? absl::StrCat("missing (the next stored key, ", key.ToString(true),
                                    ", is not an entry key)")
                     : absl::StrCat("missing (the next stored entry is ", seq, ")"));
        done_ = true;
        return chunk->size() > 0;
      }
      const rocksdb::Slice value = it_->value();
      chunk->Add(std::string_view(value.data(), value.size()));
    }
    if (!it_->Valid()) {
      done_ = true;
      const absl::Status s = FromRocks(it_->status(), "reading entries");
      if (!s.ok()) {
        board->ReportEntry(expected, kRankEntry, std::string(s.message()));
      }
    }
    return chunk->size() > 0;
  }

  absl::StatusOr<Entry> Lookup(uint64_t seq) const override {
    std::string value;
    WL_RETURN_IF_ERROR(FromRocks(db_->Get(rocksdb::ReadOptions(), EntryKey(seq), &value),
                                 absl::StrCat("entry ", seq)));
    return DecodeStored(value, seq);
  }

  // The seq of the last stored entry key.
  uint64_t EntryCountHint() const override {
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions()));
    it->SeekForPrev(EntryKey(UINT64_MAX));
    if (!it->Valid()) return 0;
    return SeqFromEntryKey(std::string_view(it->key().data(), it->key().size()));
  }

 private:
  rocksdb::DB* db_;
  std::string upper_bound_;
  rocksdb::Slice bound_;
  std::unique_ptr<rocksdb::Iterator> it_;
  bool done_ = false;
};

// An export file (client/cli.cc, ExportFile): records of a 4-byte
// little-endian length and one serialized warmledger.v1.Entry, no header.
// Mapped once; the records are indexed up front so that reversals can look
// earlier entries up. Only entry_bytes and hash are used.
class ExportSource : public Source {
 public:
  static absl::StatusOr<std::unique_ptr<ExportSource>> Open(const std::string& path) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      return absl::NotFoundError(
          absl::StrCat("cannot open export file ", path, ": ", std::strerror(errno)));
    }
    struct stat st;
    if (::fstat(fd, &st) != 0) {
      const int err = errno;
      ::close(fd);
      return absl::UnavailableError(absl::StrCat("cannot stat ", path, ": ", std::strerror(err)));
    }
    auto source = std::unique_ptr<ExportSource>(new ExportSource());
    source->size_ = static_cast<size_t>(st.st_size);
    if (source->size_ > 0) {
      void* p = ::mmap(nullptr, source->size_, PROT_READ, MAP_PRIVATE, fd, 0);
      if (p == MAP_FAILED) {
        const int err = errno;
        ::close(fd);
        return absl::UnavailableError(
            absl::StrCat("cannot map ", path, ": ", std::strerror(err)));
      }
      ::madvise(p, source->size_, MADV_SEQUENTIAL);
      source->data_ = static_cast<const char*>(p);
    }
    ::close(fd);
    source->Index();
    return source;
  }

  ~ExportSource() override {
    if (data_ != nullptr) ::munmap(const_cast<char*>(data_), size_);
  }

  // A damaged record framing (found while indexing): reported once the
  // reading reaches it, like a gap in a database.
  const std::optional<Failure>& framing_failure() const { return framing_failure_; }

  bool Next(Chunk* chunk, FailureBoard* board) override {
    uint64_t seq = chunk->first_seq;
    for (; seq - 1 < records_.size() && !chunk->Full(); ++seq) {
      const auto [offset, length] = records_[seq - 1];
      if (!message_.ParseFromArray(data_ + offset, static_cast<int>(length))) {
        board->ReportEntry(seq, kRankEntry,
                           absl::StrCat("export record ", seq, " (at byte ", offset - 4,
                                        ") is not a serialized warmledger.v1.Entry"));
        records_.resize(seq - 1);  // nothing after it is read
        break;
      }
      if (message_.hash().size() != kHashBytes) {
        board->ReportEntry(seq, kRankEntry,
                           absl::StrCat("export record ", seq, ": its hash field has ",
                                        message_.hash().size(), " bytes, not 32"));
        records_.resize(seq - 1);
        break;
      }
      chunk->Add(message_.entry_bytes(), message_.hash());
    }
    if (seq - 1 >= records_.size() && framing_failure_ && !framing_reported_) {
      framing_reported_ = true;
      board->Report(*framing_failure_);
    }
    return chunk->size() > 0;
  }

  absl::StatusOr<Entry> Lookup(uint64_t seq) const override {
    if (seq == 0 || seq > index_size_) {
      return absl::NotFoundError(absl::StrCat("entry ", seq, ": not in the export"));
    }
    const auto [offset, length] = index_copy_[seq - 1];
    v1::Entry message;
    if (!message.ParseFromArray(data_ + offset, static_cast<int>(length))) {
      return absl::DataLossError(absl::StrCat("entry ", seq, ": record does not parse"));
    }
    return DecodeEntry(message.entry_bytes());
  }

  uint64_t EntryCountHint() const override { return index_copy_.size(); }

 private:
  ExportSource() = default;

  void Index() {
    size_t pos = 0;
    while (pos < size_) {
      const uint64_t seq = records_.size() + 1;
      if (size_ - pos < 4) {
        framing_failure_ = Failure{seq, kRankEntry, true,
                                   absl::StrCat("the export file ends inside the length of "
                                                "record ", seq, " (at byte ", pos, ")")};
        break;
      }
      const auto* p = reinterpret_cast<const uint8_t*>(data_ + pos);
      const uint32_t length = p[0] | (p[1] << 8) | (p[2] << 16) | (static_cast<uint32_t>(p[3]) << 24);
      if (length > kExportRecordBytesMax) {
        framing_failure_ = Failure{
            seq, kRankEntry, true,
            absl::StrCat("export record ", seq, " (at byte ", pos, ") claims ", length,
                         " bytes, more than the 16 MiB limit: the file is damaged")};
        break;
      }
      if (size_ - pos - 4 < length) {
        framing_failure_ = Failure{
            seq, kRankEntry, true,
            absl::StrCat("the export file ends inside record ", seq, " (", size_ - pos - 4,
                         " of ", length, " bytes; a truncated copy?)")};
        break;
      }
      records_.push_back({pos + 4, length});
      pos += 4 + length;
    }
    index_copy_ = records_;
    index_size_ = index_copy_.size();
  }

  const char* data_ = nullptr;
  size_t size_ = 0;
  // Read by Next (which may shorten it); index_copy_ is never changed after
  // Index() and serves Lookup from the other thread.
  std::vector<std::pair<size_t, uint32_t>> records_;
  std::vector<std::pair<size_t, uint32_t>> index_copy_;
  size_t index_size_ = 0;
  std::optional<Failure> framing_failure_;
  bool framing_reported_ = false;
  v1::Entry message_;
};

// ---- Checkpoints. ----

struct CheckpointClaim {
  std::string label;  // "checkpoint of N entries" or "checkpoint file PATH"
  Checkpoint checkpoint;
  bool stored = false;  // in the database (else a --checkpoint file)
};

// Verifies (with a key) or reads (without) one signed checkpoint note.
absl::StatusOr<Checkpoint> OpenCheckpoint(std::string_view note, const NoteVerifier* verifier) {
  std::string text;
  if (verifier != nullptr) {
    auto opened = verifier->Open(note);
    if (!opened.ok()) {
      return absl::Status(opened.status().code(),
                          absl::StrCat("signature: ", opened.status().message()));
    }
    text = std::move(*opened);
  } else {
    return ParseCheckpointUnverified(note);
  }
  return ParseCheckpoint(text);
}

// ---- The stored Merkle tree. ----


// Compares the tiles the builder made with the stored ones.
class TileChecker {
 public:
  explicit TileChecker(rocksdb::DB* db) : db_(db) {}

  // Checks every tile that changed since the last call. A full tile must
  // equal the stored one; a partial one must be a prefix of it (the stored
  // tile grew with later entries) or, when `final`, equal it.
  void Check(merkle::TileBuilder* tree, bool final, FailureBoard* board) {
    constexpr size_t kTileBytes = kHashBytes << merkle::kTileHeight;
    for (auto& [id, built] : tree->TakeChanged()) {
      std::string stored;
      const rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), TileKey(id.level, id.index), &stored);
      const uint64_t first_leaf = (id.index << merkle::kTileHeight)
                                  << (merkle::kTileHeight * id.level);
      if (s.IsNotFound()) {
        board->ReportEntry(first_leaf + 1, kRankTree,
                           absl::StrCat("the stored Merkle tree lacks ", merkle::TileName(id),
                                        ", which the entries from here make"));
        return;
      }
      if (!s.ok()) {
        board->ReportEntry(first_leaf + 1, kRankTree,
                           std::string(FromRocks(s, merkle::TileName(id)).message()));
        return;
      }
      ++checked_;
      const bool exact = built.size() == kTileBytes || final;
      if (stored.size() >= built.size() && stored.compare(0, built.size(), built) == 0 &&
          (!exact || stored.size() == built.size()) && stored.size() % kHashBytes == 0) {
        continue;
      }
      size_t i = 0;
      while (i + kHashBytes <= std::min(stored.size(), built.size()) &&
             stored.compare(i, kHashBytes, built, i, kHashBytes) == 0) {
        i += kHashBytes;
      }
      const uint64_t hash_index = i / kHashBytes;
      const uint64_t leaf = ((id.index << merkle::kTileHeight) + hash_index)
                            << (merkle::kTileHeight * id.level);
      std::string what;
      if (i < std::min(stored.size(), built.size())) {
        what = absl::StrCat("hash ", hash_index, " differs");
      } else if (stored.size() < built.size()) {
        what = absl::StrCat("it holds ", stored.size() / kHashBytes, " hashes, the entries make ",
                            built.size() / kHashBytes);
      } else {
        what = absl::StrCat("it holds ", stored.size() / kHashBytes,
                            " hashes, the entries make only ", built.size() / kHashBytes,
                            " (entries removed?)");
      }
      board->ReportEntry(leaf + 1, kRankTree,
                         absl::StrCat("the stored Merkle tree does not match the entries (",
                                      merkle::TileName(id), ": ", what, ")"));
      return;
    }
  }

  uint64_t checked() const { return checked_; }

 private:
  rocksdb::DB* db_;
  uint64_t checked_ = 0;
};

// Counts the stored tiles ('T' keys).
absl::StatusOr<uint64_t> CountTiles(rocksdb::DB* db) {
  const std::string upper(1, kTileKeyPrefix + 1);
  rocksdb::Slice bound(upper);
  rocksdb::ReadOptions ro;
  ro.iterate_upper_bound = &bound;
  std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(ro));
  uint64_t count = 0;
  for (it->Seek(std::string(1, kTileKeyPrefix)); it->Valid(); it->Next()) ++count;
  WL_RETURN_IF_ERROR(FromRocks(it->status(), "reading the Merkle tree"));
  return count;
}

// ---- The audit. ----

class Auditor {
 public:
  explicit Auditor(const AuditOptions& options) : options_(options) {}

  absl::StatusOr<AuditReport> Run() {
    start_ = std::chrono::steady_clock::now();
    WL_RETURN_IF_ERROR(Prepare());
    if (!board_.First()) Scan();
    if (!board_.First()) FinalChecks();
    return Finish();
  }

 private:
  // Everything before the entries: the source, the key, the checkpoints,
  // the format and the balance snapshot.
  absl::Status Prepare() {
    if (options_.data_dir.empty() == options_.export_path.empty()) {
      return absl::InvalidArgumentError("give exactly one of --data_dir and --export");
    }
    if (!options_.verifier_key.empty()) {
      auto verifier = NoteVerifier::Parse(options_.verifier_key);
      if (!verifier.ok()) {
        return absl::InvalidArgumentError(
            absl::StrCat("--key: ", verifier.status().message()));
      }
      verifier_ = std::move(*verifier);
      report_.signatures_checked = true;
      report_.key_name = verifier_->name();
    }
    // Read the given checkpoint files first: they are usage, not findings.
    std::vector<std::pair<std::string, std::string>> files;
    for (const std::string& path : options_.checkpoint_files) {
      WL_ASSIGN_OR_RETURN(std::string note, ReadWholeFile(path, "checkpoint file"));
      files.emplace_back(path, std::move(note));
    }

    if (!options_.data_dir.empty()) {
      WL_RETURN_IF_ERROR(OpenDb());
      if (board_.First()) return absl::OkStatus();
      ReadStoredCheckpoints();
      if (board_.First()) return absl::OkStatus();
      ReadFormat();
      if (board_.First()) return absl::OkStatus();
      ReadSnapshot();
      if (board_.First()) return absl::OkStatus();
      source_ = std::make_unique<DbSource>(db_.get());
      if (tiles_stored_) tiles_ = std::make_unique<TileChecker>(db_.get());
    } else {
      report_.source = absl::StrCat("export ", options_.export_path);
      WL_ASSIGN_OR_RETURN(std::unique_ptr<ExportSource> source,
                          ExportSource::Open(options_.export_path));
      source_ = std::move(source);
    }

    for (auto& [path, note] : files) {
      const std::string label = absl::StrCat("checkpoint file ", path);
      auto checkpoint = OpenCheckpoint(note, verifier_ ? &*verifier_ : nullptr);
      if (!checkpoint.ok()) {
        Fail(absl::StrCat(label, ": ", checkpoint.status().message()));
        return absl::OkStatus();
      }
      AddClaim({label, std::move(*checkpoint)});
      if (board_.First()) return absl::OkStatus();
    }
    for (const CheckpointClaim& c : claims_) {
      report_.newest_checkpoint_size =
          std::max(report_.newest_checkpoint_size, c.checkpoint.size);
    }
    std::stable_sort(claims_.begin(), claims_.end(), [](const auto& a, const auto& b) {
      return a.checkpoint.size < b.checkpoint.size;
    });
    return absl::OkStatus();
  }

  absl::Status OpenDb() {
    std::error_code ec;
    std::string path = options_.data_dir;
    if (std::filesystem::is_directory(options_.data_dir + "/db", ec)) path += "/db";
    if (!std::filesystem::is_directory(path, ec)) {
      return absl::NotFoundError(absl::StrCat("--data_dir: ", path, " is not a folder"));
    }
    if (!std::filesystem::exists(path + "/CURRENT", ec)) {
      return absl::NotFoundError(
          absl::StrCat("--data_dir: ", path, " holds no RocksDB database (no CURRENT file)"));
    }
    report_.source = absl::StrCat("data_dir ", path, " (read-only)");
    rocksdb::Options db_options;
    db_options.create_if_missing = false;
    db_options.info_log = std::make_shared<SilentLogger>();
    db_options.max_open_files = 256;
    rocksdb::DB* raw = nullptr;
    const rocksdb::Status s = rocksdb::DB::OpenForReadOnly(db_options, path, &raw);
    if (!s.ok()) {
      if (s.IsCorruption()) {
        Fail(absl::StrCat("the database does not open: ", s.ToString()));
        return absl::OkStatus();
      }
      return FromRocks(s, absl::StrCat("opening ", path, " read-only"));
    }
    db_.reset(raw);
    return absl::OkStatus();
  }

  void ReadStoredCheckpoints() {
    const std::string upper(1, kCheckpointKeyPrefix + 1);
    rocksdb::Slice bound(upper);
    rocksdb::ReadOptions ro;
    ro.iterate_upper_bound = &bound;
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro));
    for (it->Seek(std::string(1, kCheckpointKeyPrefix)); it->Valid(); it->Next()) {
      const std::string_view key(it->key().data(), it->key().size());
      const uint64_t size = SizeFromCheckpointKey(key);
      if (size == 0) {
        Fail(absl::StrCat("a stored checkpoint key is malformed (",
                          it->key().ToString(true), ")"));
        return;
      }
      const std::string label = absl::StrCat("checkpoint of ", size, " entries");
      auto checkpoint = OpenCheckpoint(std::string_view(it->value().data(), it->value().size()),
                                       verifier_ ? &*verifier_ : nullptr);
      if (!checkpoint.ok()) {
        Fail(absl::StrCat(label, ": ", checkpoint.status().message()));
        return;
      }
      if (checkpoint->size != size) {
        Fail(absl::StrCat(label, ": stored under the wrong key (the note says ",
                          checkpoint->size, " entries)"));
        return;
      }
      AddClaim({label, std::move(*checkpoint), /*stored=*/true});
      if (board_.First()) return;
    }
    const absl::Status s = FromRocks(it->status(), "reading checkpoints");
    if (!s.ok()) Fail(std::string(s.message()));
  }

  void AddClaim(CheckpointClaim claim) {
    if (claims_.empty()) {
      report_.origin = claim.checkpoint.origin;
    } else if (claim.checkpoint.origin != report_.origin) {
      Fail(absl::StrCat(claim.label, ": origin '", claim.checkpoint.origin,
                        "' differs from '", report_.origin, "' of ", claims_.front().label));
      return;
    }
    claims_.push_back(std::move(claim));
  }

  void ReadFormat() {
    std::string format;
    const rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), std::string(kFormatKey), &format);
    if (s.IsNotFound()) {
      // Only a database the engine created but never finished opening lacks
      // the key; hold it to the current format (its tiles must match).
      tiles_stored_ = true;
      return;
    }
    if (!s.ok()) {
      Fail(std::string(FromRocks(s, "reading the format key").message()));
      return;
    }
    if (format.size() != 4 || format[1] != 0 || format[2] != 0 || format[3] != 0 ||
        (format[0] != 1 && format[0] != static_cast<char>(kFormatVersion))) {
      Fail("format: unknown ledger format version");
      return;
    }
    tiles_stored_ = format[0] == static_cast<char>(kFormatVersion);
  }

  void ReadSnapshot() {
    std::string value;
    const rocksdb::Status s =
        db_->Get(rocksdb::ReadOptions(), std::string(kSnapshotKey), &value);
    if (s.IsNotFound()) return;
    if (!s.ok()) {
      Fail(std::string(FromRocks(s, "reading the balance snapshot").message()));
      return;
    }
    auto snapshot = DecodeSnapshot(value);
    if (!snapshot.ok()) {
      Fail(std::string(snapshot.status().message()));
      return;
    }
    snapshot_ = std::move(*snapshot);
  }

  void Fail(std::string message) {
    board_.Report(Failure{UINT64_MAX, kRankFinal, false, std::move(message)});
  }

  // Reads the source once, in chunks; this thread hashes and checks the chain
  // and the tree while a second thread replays the same chunks.
  void Scan() {
    ChunkQueue queue;
    state_.Reserve(source_->EntryCountHint());
    std::thread replayer([&] {
      pthread_setname_np(pthread_self(), "audit-replay");
      Replay(&queue);
    });

    Sha256Hasher hasher;
    Hash prev{};
    size_t next_claim = 0;
    // A checkpoint of 0 entries commits to the empty tree.
    next_claim = CheckClaims(next_claim, 0);
    uint64_t next_seq = 1;
    // Chunks the replay is done with, for reuse. At most
    // kChunksInFlightMax + 2 chunks ever exist: those queued, the one being
    // replayed and the one being filled.
    std::vector<std::shared_ptr<Chunk>> spare;
    while (!board_.Stopped(next_seq, kRankEntry)) {
      queue.TakeRetired(&spare);
      std::shared_ptr<Chunk> chunk;
      if (spare.empty()) {
        chunk = std::make_shared<Chunk>();
      } else {
        chunk = std::move(spare.back());
        spare.pop_back();
        chunk->Reset();
      }
      chunk->first_seq = next_seq;
      if (!source_->Next(chunk.get(), &board_)) break;
      // Decoding here, not in the replay thread, balances the two threads.
      if (chunk->entries.size() < chunk->size()) chunk->entries.resize(chunk->size());
      for (size_t i = 0; i < chunk->size(); ++i) {
        absl::Status decoded =
            DecodeStoredInto(chunk->Value(i), chunk->first_seq + i, &chunk->entries[i]);
        if (!decoded.ok()) {
          chunk->decode_error = std::move(decoded);
          break;
        }
        chunk->decoded = i + 1;
      }
      queue.Push(chunk);
      for (size_t i = 0; i < chunk->size(); ++i) {
        const uint64_t seq = chunk->first_seq + i;
        if (board_.Stopped(seq, kRankEntry)) break;
        const std::string_view value = chunk->Value(i);
        if (value.size() < kHashBytes + kEntryHeaderBytes) {
          board_.ReportEntry(seq, kRankEntry,
                             absl::StrCat("too short to be an entry (", value.size(), " bytes)"));
          break;
        }
        const std::string_view bytes = value.substr(0, value.size() - kHashBytes);
        const Hash stored = HashAt(value, bytes.size());
        hasher.Update(kEntryHashDomain);
        hasher.Update(bytes);
        const Hash computed = hasher.Finish();
        if (computed != stored) {
          board_.ReportEntry(seq, kRankEntry,
                             absl::StrCat("entry_hash does not match the entry's bytes (stored ",
                                          Short(stored), "…, computed ", Short(computed), "…)"));
          break;
        }
        const uint64_t said = Le64At(bytes, kSeqOffset);
        if (said != seq) {
          board_.ReportEntry(
              seq, kRankEntry,
              options_.data_dir.empty()
                  ? absl::StrCat("record ", seq, " of the export holds entry ", said,
                                 seq == 1 ? " (an export must start at entry 1)" : "",
                                 " (entries out of order or missing)")
                  : absl::StrCat("stored under key ", seq, " but its bytes are entry ", said,
                                 " (entries swapped or moved)"));
          break;
        }
        if (HashAt(bytes, kPrevHashOffset) != prev) {
          board_.ReportEntry(seq, kRankEntry,
                             seq == 1 ? std::string("prev_hash of entry 1 is not zeros")
                                      : absl::StrCat("prev_hash is not the hash of entry ",
                                                     seq - 1, " (the chain is broken)"));
          break;
        }
        prev = computed;
        tree_.Append(merkle::LeafHash(bytes));
        next_claim = CheckClaims(next_claim, seq);
        head_hash_ = computed;
      }
      next_seq = chunk->first_seq + chunk->size();
      if (tiles_ && next_seq / kTileCheckEntries != chunk->first_seq / kTileCheckEntries) {
        tiles_->Check(&tree_, /*final=*/false, &board_);
      }
      chunk.reset();
    }
    queue.Close();
    replayer.join();
  }

  // Checks the claims whose size is `size` (the tree has just reached it).
  size_t CheckClaims(size_t next, uint64_t size) {
    if (next >= claims_.size() || claims_[next].checkpoint.size != size) return next;
    const Hash root = tree_.Root();
    for (; next < claims_.size() && claims_[next].checkpoint.size == size; ++next) {
      const CheckpointClaim& c = claims_[next];
      if (c.checkpoint.root != root) {
        std::string since;
        if (matched_size_ > 0) since = absl::StrCat(" and after entry ", matched_size_);
        board_.Report(Failure{
            size, kRankTree, false,
            absl::StrCat(c.label, ": its root is not the root of entries 1..", size,
                         ": history rewritten at or before entry ", size, since,
                         " (signed root ", Base64Encode(Bytes(c.checkpoint.root)),
                         ", the entries give ", Base64Encode(Bytes(root)), ")")});
        return claims_.size();
      }
      ++checkpoints_matched_;
    }
    matched_size_ = size;
    return next;
  }

  // The replay thread: re-applies every entry to a fresh state and requires
  // the exact stored bytes back.
  void Replay(ChunkQueue* queue) {
    const EntryLookup lookup = [this](uint64_t seq) { return source_->Lookup(seq); };
    Journal journal = Journal::NotRecording();
    if (snapshot_ && snapshot_->seq == 0) CompareSnapshot(0);
    while (std::shared_ptr<Chunk> chunk = queue->Pop()) {
      for (size_t i = 0; i < chunk->size(); ++i) {
        const uint64_t seq = chunk->first_seq + i;
        // The id lookup misses the cache on a large ledger: start it ahead.
        if (i + 2 < chunk->decoded) state_.PrefetchClientId(chunk->entries[i + 2].client_id);
        if (!board_.Stopped(seq, kRankReplay) && i >= chunk->decoded) {
          board_.ReportEntry(seq, kRankReplay, absl::StrCat("does not decode: ",
                                                            chunk->decode_error.message()));
        }
        if (board_.Stopped(seq, kRankReplay) ||
            !ReplayOne(seq, chunk->Value(i), &chunk->entries[i], lookup, &journal)) {
          queue->Abandon();
          return;
        }
      }
      queue->Retire(std::move(chunk));
    }
  }

  bool ReplayOne(uint64_t seq, std::string_view value, Entry* decoded,
                 const EntryLookup& lookup, Journal* journal) {
    Entry& entry = *decoded;
    if (entry.prev_hash != state_.head_hash()) {
      board_.ReportEntry(seq, kRankReplay,
                         absl::StrCat("prev_hash is not the hash of entry ", seq - 1));
      return false;
    }
    if (std::optional<uint64_t> first = state_.FindClientId(entry.client_id)) {
      board_.ReportEntry(seq, kRankReplay,
                         absl::StrCat("client_id '", entry.client_id,
                                      "' was already used by entry ", *first));
      return false;
    }
    const Hash stored_hash = HashAt(value, value.size() - kHashBytes);
    auto replayed = state_.Replay(entry.client_id, entry.body, entry.time_us, lookup, journal,
                                  stored_hash, entry.version);
    journal->Clear();
    if (!replayed.ok()) {
      board_.ReportEntry(seq, kRankReplay, absl::StrCat("replaying it breaks the rules: ",
                                                        replayed.status().message()));
      return false;
    }
    if (*replayed != EntryBytesOf(value)) {
      board_.ReportEntry(
          seq, kRankReplay,
          absl::StrCat("replaying it produces different bytes: its recorded ",
                       FirstDifferentField(EntryBytesOf(value), *replayed),
                       " disagree with what the rules and its policy '", entry.policy,
                       "' give"));
      return false;
    }
    if (snapshot_ && snapshot_->seq == seq) return CompareSnapshot(seq);
    return true;
  }

  // Names what differs between the stored and the replayed bytes of an entry.
  static std::string FirstDifferentField(std::string_view stored, std::string_view replayed) {
    auto a = DecodeEntry(stored);
    auto b = DecodeEntry(replayed);
    if (!a.ok() || !b.ok()) return "bytes";
    if (a->time_us != b->time_us) return "time (it goes back in time)";
    if (a->policy != b->policy) return "policy";
    if (a->postings != b->postings) return "postings (allocation)";
    if (a->version != b->version) return "version";
    return "bytes";
  }

  bool CompareSnapshot(uint64_t seq) {
    BalanceSnapshot replayed = state_.Snapshot();
    const absl::Status s = CompareSnapshots(*snapshot_, replayed);
    if (!s.ok()) {
      board_.ReportEntry(seq, kRankReplay, std::string(s.message()));
      return false;
    }
    // Usually the snapshot is of the last entry: the report reuses it.
    replayed_snapshot_ = std::move(replayed);
    return true;
  }

  // What can only be judged once every entry is read.
  void FinalChecks() {
    const uint64_t head = tree_.size();
    if (state_.head_seq() != head) {
      // Cannot happen without a failure above: both threads read the same
      // chunks.
      Fail(absl::StrCat("the replay reached entry ", state_.head_seq(),
                        " but the tree has ", head, " entries"));
      return;
    }
    for (const CheckpointClaim& c : claims_) {
      if (c.checkpoint.size > head) {
        Fail(absl::StrCat(c.stored ? "" : absl::StrCat(c.label, ": "), "checkpoint of ",
                          c.checkpoint.size, " entries but the ledger has ", head,
                          ": entries removed"));
        return;
      }
    }
    if (snapshot_ && !replayed_snapshot_) {
      Fail(absl::StrCat("the balance snapshot is of entry ", snapshot_->seq,
                        " but the ledger has ", head, ": entries removed"));
      return;
    }
    if (tiles_) {
      // The tree's final right edge must now equal the stored partial tiles.
      tiles_->Check(&tree_, /*final=*/true, &board_);
      if (board_.First()) return;
    }
    if (db_ != nullptr) {
      auto stored_tiles = CountTiles(db_.get());
      if (!stored_tiles.ok()) {
        Fail(std::string(stored_tiles.status().message()));
        return;
      }
      const uint64_t expected = tiles_stored_ ? merkle::TileCount(head) : 0;
      if (*stored_tiles != expected) {
        board_.ReportEntry(head + 1, kRankFinal,
                           absl::StrCat("missing, but the stored Merkle tree has ",
                                        *stored_tiles, " tiles where the ", head,
                                        " entries make ", expected, " (entries removed?)"));
        return;
      }
    }
    for (const Balance& b : state_.TotalsPerAsset()) {
      if (b.amount != 0) {
        Fail(absl::StrCat("value is not conserved: the balances of ", b.asset, " sum to ",
                          b.amount, ", not 0"));
        return;
      }
    }
  }

  AuditReport Finish() {
    const std::optional<Failure> first = board_.First();
    report_.ok = !first.has_value();
    if (first) {
      report_.failed_seq = first->about_entry ? first->seq : 0;
      report_.failure = first->message;
      report_.entries_verified =
          first->seq == UINT64_MAX ? tree_.size() : std::min(tree_.size(), first->seq - 1);
    } else {
      report_.entries_verified = tree_.size();
    }
    report_.head_seq = tree_.size();
    report_.head_hash = head_hash_;
    report_.tree_root = tree_.Root();
    report_.tiles_stored = tiles_ != nullptr;
    report_.tiles_checked = tiles_ ? tiles_->checked() : 0;
    report_.checkpoints_verified = report_.ok ? claims_.size() : checkpoints_matched_;
    if (replayed_snapshot_) {
      report_.snapshot_seq = snapshot_->seq;
      report_.snapshot_accounts = snapshot_->accounts.size();
    }
    if (report_.ok) {
      const BalanceSnapshot now =
          replayed_snapshot_ && replayed_snapshot_->seq == state_.head_seq()
              ? std::move(*replayed_snapshot_)
              : state_.Snapshot();
      report_.account_count = now.accounts.size();
      std::map<std::string, int64_t> held;
      for (size_t i = 0; i < now.accounts.size(); ++i) {
        const AccountSnapshot& a = now.accounts[i];
        const AccountKind kind = state_.KindAt(i);
        if (!IsHolding(kind)) continue;
        report_.holdings.push_back({a.account, kind, a.balances});
        for (const Balance& b : a.balances) held[b.asset] += b.amount;
      }
      for (const auto& [asset, amount] : held) report_.held_totals.push_back({asset, amount});
      report_.all_totals = state_.TotalsPerAsset();
    }
    report_.elapsed_seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    return std::move(report_);
  }

  const AuditOptions& options_;
  std::chrono::steady_clock::time_point start_;
  AuditReport report_;
  FailureBoard board_;

  std::optional<NoteVerifier> verifier_;
  std::unique_ptr<rocksdb::DB> db_;
  std::unique_ptr<Source> source_;
  bool tiles_stored_ = false;
  std::unique_ptr<TileChecker> tiles_;  // data_dir of format 2

  std::vector<CheckpointClaim> claims_;  // sorted by size before the scan
  uint64_t checkpoints_matched_ = 0;
  uint64_t matched_size_ = 0;
  std::optional<BalanceSnapshot> snapshot_;
  // The state's own snapshot at snapshot_->seq, once it matched: set means
  // the stored snapshot was checked.
  std::optional<BalanceSnapshot> replayed_snapshot_;

  // Owned by the scanning thread.
  merkle::TileBuilder tree_;
  Hash head_hash_{};
  // Owned by the replay thread until it is joined.
  LedgerState state_{LedgerState::Keep::kVerify};
};

// ---- Output. ----

std::string JsonString(std::string_view s) {
  std::string out = "\"";
  for (const char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof(buf), "\\u%04x", c);
          out += buf;
        } else {
          out += c;
        }
    }
  }
  out += '"';
  return out;
}

std::string JsonBalances(const std::vector<Balance>& balances) {
  std::string out = "[";
  for (size_t i = 0; i < balances.size(); ++i) {
    absl::StrAppend(&out, i ? "," : "", "{\"asset\":", JsonString(balances[i].asset),
                    ",\"amount\":", balances[i].amount, "}");
  }
  return out + "]";
}

std::string TextBalances(const std::vector<Balance>& balances) {
  if (balances.empty()) return "0";
  std::string out;
  for (size_t i = 0; i < balances.size(); ++i) {
    absl::StrAppend(&out, i ? ", " : "", balances[i].amount, " ", balances[i].asset);
  }
  return out;
}

double Rate(const AuditReport& r) {
  return r.elapsed_seconds > 0 ? r.entries_verified / r.elapsed_seconds : 0;
}

}  // namespace

absl::StatusOr<AuditReport> RunAudit(const AuditOptions& options) {
  Auditor auditor(options);
  return auditor.Run();
}

std::string FormatText(const AuditReport& r) {
  std::string out;
  if (r.ok) {
    out = "warmledger-audit: OK\n";
  } else if (r.failed_seq != 0) {
    out = absl::StrCat("FAILED at entry ", r.failed_seq, ": ", r.failure, "\n");
  } else {
    out = absl::StrCat("FAILED: ", r.failure, "\n");
  }
  absl::StrAppend(&out, "source: ", r.source, "\n");
  absl::StrAppend(&out, "entries verified: ", r.entries_verified,
                  r.ok ? " (hash, chain, replay, tree)" : " (before the failure)", "\n");
  if (!r.ok) {
    absl::StrAppend(&out, "signatures: ",
                    r.signatures_checked ? absl::StrCat("checked (key ", r.key_name, ")")
                                         : std::string("NOT CHECKED (no --key)"),
                    "\n");
    absl::StrAppend(&out, "elapsed: ", absl::StrFormat("%.2f", r.elapsed_seconds), " s\n");
    return out;
  }
  absl::StrAppend(&out, "head: seq ", r.head_seq, ", hash ", HashToHex(r.head_hash), "\n");
  absl::StrAppend(&out, "tree root: ", Base64Encode(Bytes(r.tree_root)), " (", r.head_seq,
                  " entries)\n");
  if (r.tiles_stored) {
    absl::StrAppend(&out, "merkle tiles: ", r.tiles_checked,
                    " checks, every stored tile equals the rebuilt tree\n");
  } else if (r.source.rfind("data_dir", 0) == 0) {
    absl::StrAppend(&out, "merkle tiles: none stored (format 1 ledger)\n");
  }
  if (r.checkpoints_verified == 0) {
    absl::StrAppend(&out, "checkpoints: none\n");
  } else {
    absl::StrAppend(&out, "checkpoints: ", r.checkpoints_verified, " verified, newest of ",
                    r.newest_checkpoint_size, " entries, origin \"", r.origin, "\"\n");
  }
  absl::StrAppend(&out, "signatures: ",
                  !r.signatures_checked ? std::string("NOT CHECKED (no --key)")
                  : r.checkpoints_verified == 0
                      ? absl::StrCat("key ", r.key_name, " given, but no checkpoint to check")
                      : absl::StrCat("checked (key ", r.key_name, ")"),
                  "\n");
  if (r.snapshot_seq) {
    absl::StrAppend(&out, "balance snapshot: checked at entry ", *r.snapshot_seq, " (",
                    r.snapshot_accounts, " accounts)\n");
  } else if (r.source.rfind("export", 0) == 0) {
    absl::StrAppend(&out, "balance snapshot: none (an export holds entries only)\n");
  } else {
    absl::StrAppend(&out, "balance snapshot: none stored\n");
  }
  absl::StrAppend(&out, "value conserved: yes (", r.account_count,
                  " accounts; every asset's balances sum to 0)\n");
  absl::StrAppend(&out, "holding accounts (", r.holdings.size(),
                  ", amounts in minor units or goods units):\n");
  for (const HoldingReport& h : r.holdings) {
    absl::StrAppend(&out, "  ", h.account, " (", AccountKindName(h.kind),
                    "): ", TextBalances(h.balances), "\n");
  }
  absl::StrAppend(&out, "held in total: ", TextBalances(r.held_totals), "\n");
  absl::StrAppend(&out, "elapsed: ", absl::StrFormat("%.2f", r.elapsed_seconds), " s (",
                  absl::StrFormat("%.0f", Rate(r)), " entries/s)\n");
  return out;
}

std::string FormatJson(const AuditReport& r) {
  std::string out = "{";
  absl::StrAppend(&out, "\"ok\":", r.ok ? "true" : "false");
  if (!r.ok) {
    absl::StrAppend(&out, ",\"failed_seq\":",
                    r.failed_seq ? absl::StrCat(r.failed_seq) : std::string("null"),
                    ",\"error\":", JsonString(r.failure));
  }
  absl::StrAppend(&out, ",\"source\":", JsonString(r.source),
                  ",\"entries_verified\":", r.entries_verified);
  if (r.ok) {
    absl::StrAppend(&out, ",\"head_seq\":", r.head_seq,
                    ",\"head_hash\":", JsonString(HashToHex(r.head_hash)),
                    ",\"tree_root\":", JsonString(Base64Encode(Bytes(r.tree_root))),
                    ",\"tiles_stored\":", r.tiles_stored ? "true" : "false",
                    ",\"tiles_checked\":", r.tiles_checked,
                    ",\"checkpoints_verified\":", r.checkpoints_verified,
                    ",\"newest_checkpoint_size\":", r.newest_checkpoint_size,
                    ",\"origin\":", JsonString(r.origin));
  }
  absl::StrAppend(&out, ",\"signatures_checked\":", r.signatures_checked ? "true" : "false");
  if (r.signatures_checked) absl::StrAppend(&out, ",\"key_name\":", JsonString(r.key_name));
  if (r.ok) {
    absl::StrAppend(&out, ",\"balance_snapshot_seq\":",
                    r.snapshot_seq ? absl::StrCat(*r.snapshot_seq) : std::string("null"),
                    ",\"account_count\":", r.account_count, ",\"holdings\":[");
    for (size_t i = 0; i < r.holdings.size(); ++i) {
      const HoldingReport& h = r.holdings[i];
      absl::StrAppend(&out, i ? "," : "", "{\"account\":", JsonString(h.account),
                      ",\"kind\":", JsonString(AccountKindName(h.kind)),
                      ",\"balances\":", JsonBalances(h.balances), "}");
    }
    absl::StrAppend(&out, "],\"held_totals\":", JsonBalances(r.held_totals),
                    ",\"totals\":", JsonBalances(r.all_totals), ",\"value_conserved\":true");
  }
  absl::StrAppend(&out, ",\"elapsed_seconds\":", absl::StrFormat("%.3f", r.elapsed_seconds),
                  ",\"entries_per_second\":", absl::StrFormat("%.0f", Rate(r)), "}\n");
  return out;
}

}  // namespace warmledger::audit
