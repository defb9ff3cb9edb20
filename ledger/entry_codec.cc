#include "ledger/entry_codec.h"

#include <cstring>

#include "absl/strings/str_cat.h"
#include "ledger/limits.h"
#include "ledger/sha256.h"
#include "ledger/status_macros.h"

namespace warmledger {
namespace {

class Writer {
 public:
  explicit Writer(std::string* out) : out_(out) {}
  void U8(uint8_t v) { out_->push_back(static_cast<char>(v)); }
  void U16(uint16_t v) { Fixed(v); }
  void U32(uint32_t v) { Fixed(v); }
  void U64(uint64_t v) { Fixed(v); }
  void I64(int64_t v) { Fixed(static_cast<uint64_t>(v)); }
  void Bytes(const void* p, size_t n) { out_->append(static_cast<const char*>(p), n); }
  void Str(std::string_view s) {
    WL_CHECK(s.size() <= 0xffff);
    U16(static_cast<uint16_t>(s.size()));
    out_->append(s.data(), s.size());
  }

 private:
  template <typename T>
  void Fixed(T v) {
    char buf[sizeof(T)];
    for (size_t i = 0; i < sizeof(T); ++i) buf[i] = static_cast<char>((v >> (8 * i)) & 0xff);
    out_->append(buf, sizeof(T));
  }
  std::string* out_;
};

// Reads fields in order; the first failure sticks and names the field.
class Reader {
 public:
  explicit Reader(std::string_view in) : in_(in) {}

  bool ok() const { return error_.empty(); }
  const std::string& error() const { return error_; }
  size_t remaining() const { return in_.size() - pos_; }

  uint8_t U8(const char* field) { return static_cast<uint8_t>(Fixed<uint8_t>(field)); }
  uint16_t U16(const char* field) { return Fixed<uint16_t>(field); }
  uint32_t U32(const char* field) { return Fixed<uint32_t>(field); }
  uint64_t U64(const char* field) { return Fixed<uint64_t>(field); }
  int64_t I64(const char* field) { return static_cast<int64_t>(Fixed<uint64_t>(field)); }
  void Bytes(void* out, size_t n, const char* field) {
    if (!Need(n, field)) return;
    std::memcpy(out, in_.data() + pos_, n);
    pos_ += n;
  }
  std::string Str(const char* field) {
    uint16_t len = U16(field);
    if (!Need(len, field)) return {};
    std::string s(in_.substr(pos_, len));
    pos_ += len;
    return s;
  }
  void Fail(std::string message) {
    if (error_.empty()) error_ = std::move(message);
  }

 private:
  bool Need(size_t n, const char* field) {
    if (!ok()) return false;
    if (remaining() < n) {
      Fail(absl::StrCat("truncated at ", field, " (offset ", pos_, ")"));
      return false;
    }
    return true;
  }
  template <typename T>
  T Fixed(const char* field) {
    if (!Need(sizeof(T), field)) return 0;
    T v = 0;
    for (size_t i = 0; i < sizeof(T); ++i) {
      v |= static_cast<T>(static_cast<uint8_t>(in_[pos_ + i])) << (8 * i);
    }
    pos_ += sizeof(T);
    return v;
  }

  std::string_view in_;
  size_t pos_ = 0;
  std::string error_;
};

void EncodeBody(const OpBody& body, Writer& w) {
  std::visit(
      [&](const auto& op) {
        using T = std::decay_t<decltype(op)>;
        if constexpr (std::is_same_v<T, OpenAccountOp>) {
          w.Str(op.account);
          w.U8(static_cast<uint8_t>(op.kind));
          w.Str(op.asset);
          w.U32(op.flags);
          w.Str(op.name);
          w.Str(op.category);
          w.Str(op.community);
        } else if constexpr (std::is_same_v<T, CloseAccountOp>) {
          w.Str(op.account);
          w.Str(op.reason);
        } else if constexpr (std::is_same_v<T, DonationOp>) {
          w.Str(op.donor);
          w.Str(op.to);
          w.Str(op.asset);
          w.I64(op.amount);
          w.U8(static_cast<uint8_t>(op.channel));
          w.U32(op.flags);
          w.Str(op.memo);
          w.Str(op.trace_hash);
        } else if constexpr (std::is_same_v<T, AllocationOp>) {
          w.Str(op.from);
          w.Str(op.to);
          w.Str(op.asset);
          w.I64(op.amount);
          w.Str(op.reason);
        } else if constexpr (std::is_same_v<T, DisbursementOp>) {
          w.Str(op.from);
          w.Str(op.to);
          w.Str(op.asset);
          w.I64(op.amount);
          w.Str(op.purpose);
        } else if constexpr (std::is_same_v<T, CorrectionOp>) {
          w.U64(op.ref_seq);
          w.U8(static_cast<uint8_t>(op.mode));
          w.Str(op.reason);
          w.Str(op.from);
          w.Str(op.to);
          w.Str(op.asset);
          w.I64(op.amount);
        }
      },
      body);
}

OpBody DecodeBody(EntryType type, Reader& r) {
  switch (type) {
    case EntryType::kOpenAccount: {
      OpenAccountOp op;
      op.account = r.Str("open_account.account");
      op.kind = static_cast<AccountKind>(r.U8("open_account.kind"));
      op.asset = r.Str("open_account.asset");
      op.flags = r.U32("open_account.flags");
      op.name = r.Str("open_account.name");
      op.category = r.Str("open_account.category");
      op.community = r.Str("open_account.community");
      return op;
    }
    case EntryType::kCloseAccount: {
      CloseAccountOp op;
      op.account = r.Str("close_account.account");
      op.reason = r.Str("close_account.reason");
      return op;
    }
    case EntryType::kDonation: {
      DonationOp op;
      op.donor = r.Str("donation.donor");
      op.to = r.Str("donation.to");
      op.asset = r.Str("donation.asset");
      op.amount = r.I64("donation.amount");
      op.channel = static_cast<DonationChannel>(r.U8("donation.channel"));
      op.flags = r.U32("donation.flags");
      op.memo = r.Str("donation.memo");
      op.trace_hash = r.Str("donation.trace_hash");
      return op;
    }
    case EntryType::kAllocation: {
      AllocationOp op;
      op.from = r.Str("allocation.from");
      op.to = r.Str("allocation.to");
      op.asset = r.Str("allocation.asset");
      op.amount = r.I64("allocation.amount");
      op.reason = r.Str("allocation.reason");
      return op;
    }
    case EntryType::kDisbursement: {
      DisbursementOp op;
      op.from = r.Str("disbursement.from");
      op.to = r.Str("disbursement.to");
      op.asset = r.Str("disbursement.asset");
      op.amount = r.I64("disbursement.amount");
      op.purpose = r.Str("disbursement.purpose");
      return op;
    }
    case EntryType::kCorrection: {
      CorrectionOp op;
      op.ref_seq = r.U64("correction.ref_seq");
      op.mode = static_cast<CorrectionMode>(r.U8("correction.mode"));
      op.reason = r.Str("correction.reason");
      op.from = r.Str("correction.from");
      op.to = r.Str("correction.to");
      op.asset = r.Str("correction.asset");
      op.amount = r.I64("correction.amount");
      return op;
    }
  }
  r.Fail(absl::StrCat("unknown entry type ", static_cast<int>(type)));
  return OpenAccountOp{};
}

}  // namespace

std::string EntryKey(uint64_t seq) {
  std::string key(9, '\0');
  key[0] = kEntryKeyPrefix;
  for (int i = 0; i < 8; ++i) key[1 + i] = static_cast<char>((seq >> (56 - 8 * i)) & 0xff);
  return key;
}

uint64_t SeqFromEntryKey(std::string_view key) {
  if (key.size() != 9 || key[0] != kEntryKeyPrefix) return 0;
  uint64_t seq = 0;
  for (int i = 0; i < 8; ++i) seq = (seq << 8) | static_cast<uint8_t>(key[1 + i]);
  return seq;
}

namespace {
void AppendBigEndian(uint64_t v, std::string* out) {
  for (int i = 0; i < 8; ++i) out->push_back(static_cast<char>((v >> (56 - 8 * i)) & 0xff));
}
uint64_t ReadBigEndian(std::string_view bytes) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | static_cast<uint8_t>(bytes[i]);
  return v;
}
}  // namespace

std::string TileKey(int tile_level, uint64_t tile_index) {
  std::string key;
  key.reserve(10);
  key.push_back(kTileKeyPrefix);
  key.push_back(static_cast<char>(tile_level));
  AppendBigEndian(tile_index, &key);
  return key;
}

std::string CheckpointKey(uint64_t tree_size) {
  std::string key(1, kCheckpointKeyPrefix);
  AppendBigEndian(tree_size, &key);
  return key;
}

uint64_t SizeFromCheckpointKey(std::string_view key) {
  if (key.size() != 9 || key[0] != kCheckpointKeyPrefix) return 0;
  return ReadBigEndian(key.substr(1));
}

std::string EncodeSnapshot(const BalanceSnapshot& snapshot) {
  std::string out;
  Writer w(&out);
  w.U64(snapshot.seq);
  w.U32(static_cast<uint32_t>(snapshot.accounts.size()));
  for (const AccountSnapshot& a : snapshot.accounts) {
    w.Str(a.account);
    w.U16(static_cast<uint16_t>(a.balances.size()));
    for (const Balance& b : a.balances) {
      w.Str(b.asset);
      w.I64(b.amount);
    }
    w.U64(a.slice_count);
    w.Bytes(a.slices_hash.data(), a.slices_hash.size());
  }
  return out;
}

absl::StatusOr<BalanceSnapshot> DecodeSnapshot(std::string_view bytes) {
  Reader r(bytes);
  BalanceSnapshot snapshot;
  snapshot.seq = r.U64("snapshot.seq");
  const uint32_t count = r.U32("snapshot.account_count");
  // Each account takes at least 44 bytes; a count beyond that is damage.
  if (r.ok() && count > r.remaining() / 44) r.Fail("snapshot.account_count: too large");
  for (uint32_t i = 0; i < count && r.ok(); ++i) {
    AccountSnapshot a;
    a.account = r.Str("snapshot.account.id");
    const uint16_t balances = r.U16("snapshot.account.balance_count");
    for (uint16_t k = 0; k < balances && r.ok(); ++k) {
      Balance b;
      b.asset = r.Str("snapshot.account.asset");
      b.amount = r.I64("snapshot.account.amount");
      a.balances.push_back(std::move(b));
    }
    a.slice_count = r.U64("snapshot.account.slice_count");
    r.Bytes(a.slices_hash.data(), a.slices_hash.size(), "snapshot.account.slices_hash");
    snapshot.accounts.push_back(std::move(a));
  }
  if (r.ok() && r.remaining() != 0) r.Fail("snapshot: trailing bytes");
  if (!r.ok()) return absl::DataLossError(absl::StrCat("balance snapshot: ", r.error()));
  return snapshot;
}

std::string_view EntryBytesOf(std::string_view stored_value) {
  WL_CHECK(stored_value.size() >= 32);
  return stored_value.substr(0, stored_value.size() - 32);
}

void EncodeEntry(const Entry& entry, std::string* out) {
  Writer w(out);
  w.U8(entry.version);
  w.U8(static_cast<uint8_t>(entry.type()));
  w.U64(entry.seq);
  w.I64(entry.time_us);
  w.Bytes(entry.prev_hash.data(), entry.prev_hash.size());
  w.Str(entry.client_id);
  w.Str(entry.policy);
  EncodeBody(entry.body, w);
  w.U32(static_cast<uint32_t>(entry.postings.size()));
  for (const Posting& p : entry.postings) {
    w.Str(p.from);
    w.Str(p.to);
    w.Str(p.asset);
    w.I64(p.amount);
    w.U32(static_cast<uint32_t>(p.slices.size()));
    for (const Slice& s : p.slices) {
      w.U64(s.lot);
      w.I64(s.amount);
    }
  }
}

std::string EncodeEntry(const Entry& entry) {
  std::string out;
  out.reserve(256);
  EncodeEntry(entry, &out);
  return out;
}

absl::StatusOr<Entry> DecodeEntry(std::string_view bytes) {
  Reader r(bytes);
  Entry e;
  e.version = r.U8("version");
  if (r.ok() && e.version != kEntryVersion) {
    return absl::DataLossError(absl::StrCat("unknown entry version ", e.version));
  }
  uint8_t type = r.U8("type");
  if (r.ok() && (type < 1 || type > 6)) {
    return absl::DataLossError(absl::StrCat("unknown entry type ", type));
  }
  e.seq = r.U64("seq");
  e.time_us = r.I64("time_us");
  r.Bytes(e.prev_hash.data(), e.prev_hash.size(), "prev_hash");
  e.client_id = r.Str("client_id");
  e.policy = r.Str("policy");
  if (r.ok()) e.body = DecodeBody(static_cast<EntryType>(type), r);
  uint32_t posting_count = r.U32("posting_count");
  // Each posting needs at least 3 string prefixes, an amount and a count.
  if (r.ok() && posting_count > r.remaining() / 18) {
    r.Fail(absl::StrCat("posting_count ", posting_count, " exceeds the entry size"));
  }
  for (uint32_t i = 0; r.ok() && i < posting_count; ++i) {
    Posting p;
    p.from = r.Str("posting.from");
    p.to = r.Str("posting.to");
    p.asset = r.Str("posting.asset");
    p.amount = r.I64("posting.amount");
    uint32_t slice_count = r.U32("posting.slice_count");
    if (r.ok() && slice_count > r.remaining() / 16) {
      r.Fail(absl::StrCat("slice_count ", slice_count, " exceeds the entry size"));
    }
    if (!r.ok()) break;
    p.slices.resize(slice_count);
    for (uint32_t j = 0; j < slice_count; ++j) {
      p.slices[j].lot = r.U64("slice.lot");
      p.slices[j].amount = r.I64("slice.amount");
    }
    e.postings.push_back(std::move(p));
  }
  if (r.ok() && r.remaining() != 0) {
    r.Fail(absl::StrCat(r.remaining(), " trailing bytes"));
  }
  if (!r.ok()) return absl::DataLossError(absl::StrCat("malformed entry: ", r.error()));
  return e;
}

Hash EntryHash(std::string_view entry_bytes) {
  // One hashing context per thread, reset for each entry: allocating an
  // OpenSSL context per entry costs as much as hashing a small entry.
  thread_local Sha256Hasher hasher;
  hasher.Update(kEntryHashDomain);
  hasher.Update(entry_bytes);
  return hasher.Finish();
}

std::string MakeStoredValue(std::string_view entry_bytes, const Hash& hash) {
  std::string value;
  value.reserve(entry_bytes.size() + hash.size());
  value.append(entry_bytes);
  value.append(reinterpret_cast<const char*>(hash.data()), hash.size());
  return value;
}

absl::StatusOr<StoredEntry> ParseStoredValue(std::string_view value,
                                             uint64_t expected_seq) {
  if (value.size() < 32 + 1) {
    return absl::DataLossError(absl::StrCat("entry ", expected_seq, ": stored value of ",
                                            value.size(), " bytes is too short"));
  }
  StoredEntry out;
  std::string_view bytes = value.substr(0, value.size() - 32);
  std::memcpy(out.hash.data(), value.data() + bytes.size(), 32);
  if (EntryHash(bytes) != out.hash) {
    return absl::DataLossError(
        absl::StrCat("entry ", expected_seq, ": hash does not match the stored bytes"));
  }
  auto decoded = DecodeEntry(bytes);
  if (!decoded.ok()) {
    return absl::DataLossError(
        absl::StrCat("entry ", expected_seq, ": ", decoded.status().message()));
  }
  if (decoded->seq != expected_seq) {
    return absl::DataLossError(absl::StrCat("entry ", expected_seq,
                                            ": stored under seq ", expected_seq,
                                            " but records seq ", decoded->seq));
  }
  out.entry = std::move(decoded).value();
  out.bytes = std::string(bytes);
  return out;
}

}  // namespace warmledger
