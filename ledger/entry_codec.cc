#include "ledger/entry_codec.h"

#include <bit>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "ledger/limits.h"
#include "ledger/sha256.h"
#include "ledger/status_macros.h"

namespace warmledger {
namespace {

// Fixed-width little-endian integers (docs/format.md). On little-endian
// hosts these compile to one load or store instead of a loop over bytes.
template <typename T>
T LoadLittleEndian(const char* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  if constexpr (std::endian::native != std::endian::little) {
    T le = 0;
    for (size_t i = 0; i < sizeof(T); ++i) {
      le |= static_cast<T>(static_cast<uint8_t>(p[i])) << (8 * i);
    }
    v = le;
  }
  return v;
}

template <typename T>
char* StoreLittleEndian(T v, char* p) {
  if constexpr (std::endian::native == std::endian::little) {
    std::memcpy(p, &v, sizeof(T));
  } else {
    for (size_t i = 0; i < sizeof(T); ++i) p[i] = static_cast<char>((v >> (8 * i)) & 0xff);
  }
  return p + sizeof(T);
}

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
    std::string s;
    Str(field, &s);
    return s;
  }
  // Like Str(), into `out` (unchanged on failure): decoding straight into
  // the entry's fields saves a temporary and a move per string.
  void Str(const char* field, std::string* out) {
    uint16_t len = U16(field);
    if (!Need(len, field)) return;
    if (out->capacity() >= len) {
      // A reused entry's string: its buffer holds the new value.
      out->assign(in_.data() + pos_, len);
    } else {
      // Constructed at its exact size: assign() into an empty string would
      // round the capacity up (to 30 for 16..30 bytes), costing memory in
      // every decoded entry that is kept.
      *out = std::string(in_.data() + pos_, len);
    }
    pos_ += len;
  }
  // Consumes `n` bytes that the caller has checked are there.
  const char* Take(size_t n) {
    const char* p = in_.data() + pos_;
    pos_ += n;
    return p;
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
    T v = LoadLittleEndian<T>(in_.data() + pos_);
    pos_ += sizeof(T);
    return v;
  }

  std::string_view in_;
  size_t pos_ = 0;
  std::string error_;
};

// Counts the bytes a writer would write: EncodeEntry sizes its output with
// it first and then writes with plain stores (SpanWriter), instead of ~30
// appends that each check the capacity and may reallocate.
class SizeCounter {
 public:
  void U8(uint8_t) { n_ += 1; }
  void U16(uint16_t) { n_ += 2; }
  void U32(uint32_t) { n_ += 4; }
  void U64(uint64_t) { n_ += 8; }
  void I64(int64_t) { n_ += 8; }
  void Bytes(const void*, size_t n) { n_ += n; }
  void Str(std::string_view s) { n_ += 2 + s.size(); }
  size_t size() const { return n_; }

 private:
  size_t n_ = 0;
};

// Writes into memory already sized by SizeCounter.
class SpanWriter {
 public:
  explicit SpanWriter(char* p) : p_(p) {}
  void U8(uint8_t v) { *p_++ = static_cast<char>(v); }
  void U16(uint16_t v) { p_ = StoreLittleEndian(v, p_); }
  void U32(uint32_t v) { p_ = StoreLittleEndian(v, p_); }
  void U64(uint64_t v) { p_ = StoreLittleEndian(v, p_); }
  void I64(int64_t v) { p_ = StoreLittleEndian(static_cast<uint64_t>(v), p_); }
  void Bytes(const void* p, size_t n) {
    if (n != 0) std::memcpy(p_, p, n);
    p_ += n;
  }
  void Str(std::string_view s) {
    WL_CHECK(s.size() <= 0xffff);
    U16(static_cast<uint16_t>(s.size()));
    Bytes(s.data(), s.size());
  }
  char* pos() const { return p_; }

 private:
  char* p_;
};

// `version`: the entry's; version 1 bodies of DISBURSEMENT and
// VOUCHER_ISSUE have no override field.
template <typename W>
void EncodeBody(const OpBody& body, uint8_t version, W& w) {
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
          if (version >= 2) w.Str(op.override_reason);
        } else if constexpr (std::is_same_v<T, CorrectionOp>) {
          w.U64(op.ref_seq);
          w.U8(static_cast<uint8_t>(op.mode));
          w.Str(op.reason);
          w.Str(op.from);
          w.Str(op.to);
          w.Str(op.asset);
          w.I64(op.amount);
        } else if constexpr (std::is_same_v<T, PurchaseOp>) {
          w.Str(op.store);
          w.Str(op.order_id);
          w.Str(op.asset);
          w.I64(op.amount);
          w.Str(op.member);
          w.I64(op.sale_time_us);
          w.U32(op.rate_bp);
          w.Str(op.fund);
          w.Str(op.trace_hash);
        } else if constexpr (std::is_same_v<T, RefundOp>) {
          w.Str(op.store);
          w.Str(op.order_id);
          w.Str(op.refund_id);
          w.I64(op.amount);
        } else if constexpr (std::is_same_v<T, VoucherIssueOp>) {
          w.Str(op.from);
          w.Str(op.recipient);
          w.Str(op.asset);
          w.I64(op.amount);
          w.I64(op.expires_us);
          WL_CHECK(op.stores.size() <= 0xffff);
          w.U16(static_cast<uint16_t>(op.stores.size()));
          for (const std::string& store : op.stores) w.Str(store);
          w.Str(op.code_hash);
          w.Str(op.memo);
          if (version >= 2) w.Str(op.override_reason);
        } else if constexpr (std::is_same_v<T, RedemptionOp>) {
          w.Str(op.code_hash);
          w.Str(op.store);
          w.Str(op.order_id);
          w.I64(op.amount);
        } else if constexpr (std::is_same_v<T, VoucherCloseOp>) {
          w.Str(op.voucher);
          w.U8(static_cast<uint8_t>(op.mode));
          w.Str(op.reason);
        } else if constexpr (std::is_same_v<T, ItemOp>) {
          w.Str(op.item);
          w.Str(op.name);
          w.Str(op.unit);
        } else if constexpr (std::is_same_v<T, GoodsGiftOp>) {
          w.Str(op.donor);
          w.Str(op.to);
          w.Str(op.item);
          w.I64(op.quantity);
          w.Str(op.grade);
          w.I64(op.expires_us);
          w.Str(op.value_asset);
          w.I64(op.value);
          w.U8(static_cast<uint8_t>(op.channel));
          w.U32(op.flags);
          w.Str(op.memo);
          w.Str(op.trace_hash);
        } else if constexpr (std::is_same_v<T, GoodsPurchaseOp>) {
          w.Str(op.from);
          w.Str(op.supplier);
          w.Str(op.asset);
          w.I64(op.price);
          w.Str(op.to);
          w.Str(op.item);
          w.I64(op.quantity);
          w.Str(op.grade);
          w.I64(op.expires_us);
          w.Str(op.memo);
        } else if constexpr (std::is_same_v<T, HandoutOp>) {
          w.Str(op.from);
          w.Str(op.item);
          WL_CHECK(op.lines.size() <= 0xffffffffu);
          w.U32(static_cast<uint32_t>(op.lines.size()));
          for (const HandoutLine& line : op.lines) {
            w.Str(line.recipient);
            w.I64(line.quantity);
          }
          w.Str(op.purpose);
          w.Str(op.override_reason);
        } else if constexpr (std::is_same_v<T, WriteOffOp>) {
          w.Str(op.from);
          w.Str(op.to);
          w.Str(op.item);
          w.I64(op.quantity);
          w.U64(op.lot);
          w.Str(op.reason);
        } else if constexpr (std::is_same_v<T, GoodsSaleOp>) {
          w.Str(op.from);
          w.Str(op.buyer);
          w.Str(op.item);
          w.I64(op.quantity);
          w.Str(op.to);
          w.Str(op.asset);
          w.I64(op.proceeds);
          w.Str(op.memo);
        } else {
          static_assert(std::is_same_v<T, AidRuleOp>);
          w.Str(op.aid);
          w.U8(static_cast<uint8_t>(op.type));
          w.Str(op.source);
          w.Str(op.asset);
          w.U32(op.max_count);
          w.U8(static_cast<uint8_t>(op.period));
          w.Str(op.memo);
        }
      },
      body);
}

// `body` reset to a default T. A body that holds a T already is reset in
// place, so that its strings keep their buffers: a decoder that reuses its
// entries allocates nothing for bodies of the type it decoded last.
template <typename T>
T& Fresh(OpBody* body) {
  if (T* op = std::get_if<T>(body)) {
    *op = T{};
    return *op;
  }
  return body->emplace<T>();
}

// Decodes the body in place: setting the alternative and reading each
// string straight into its field avoids building a temporary op and moving
// it (and all its strings) into the variant.
void DecodeBody(EntryType type, uint8_t version, Reader& r, OpBody* body) {
  switch (type) {
    case EntryType::kOpenAccount: {
      auto& op = Fresh<OpenAccountOp>(body);
      r.Str("open_account.account", &op.account);
      op.kind = static_cast<AccountKind>(r.U8("open_account.kind"));
      r.Str("open_account.asset", &op.asset);
      op.flags = r.U32("open_account.flags");
      r.Str("open_account.name", &op.name);
      r.Str("open_account.category", &op.category);
      r.Str("open_account.community", &op.community);
      return;
    }
    case EntryType::kCloseAccount: {
      auto& op = Fresh<CloseAccountOp>(body);
      r.Str("close_account.account", &op.account);
      r.Str("close_account.reason", &op.reason);
      return;
    }
    case EntryType::kDonation: {
      auto& op = Fresh<DonationOp>(body);
      r.Str("donation.donor", &op.donor);
      r.Str("donation.to", &op.to);
      r.Str("donation.asset", &op.asset);
      op.amount = r.I64("donation.amount");
      op.channel = static_cast<DonationChannel>(r.U8("donation.channel"));
      op.flags = r.U32("donation.flags");
      r.Str("donation.memo", &op.memo);
      r.Str("donation.trace_hash", &op.trace_hash);
      return;
    }
    case EntryType::kAllocation: {
      auto& op = Fresh<AllocationOp>(body);
      r.Str("allocation.from", &op.from);
      r.Str("allocation.to", &op.to);
      r.Str("allocation.asset", &op.asset);
      op.amount = r.I64("allocation.amount");
      r.Str("allocation.reason", &op.reason);
      return;
    }
    case EntryType::kDisbursement: {
      auto& op = Fresh<DisbursementOp>(body);
      r.Str("disbursement.from", &op.from);
      r.Str("disbursement.to", &op.to);
      r.Str("disbursement.asset", &op.asset);
      op.amount = r.I64("disbursement.amount");
      r.Str("disbursement.purpose", &op.purpose);
      if (version >= 2) r.Str("disbursement.override", &op.override_reason);
      return;
    }
    case EntryType::kCorrection: {
      auto& op = Fresh<CorrectionOp>(body);
      op.ref_seq = r.U64("correction.ref_seq");
      op.mode = static_cast<CorrectionMode>(r.U8("correction.mode"));
      r.Str("correction.reason", &op.reason);
      r.Str("correction.from", &op.from);
      r.Str("correction.to", &op.to);
      r.Str("correction.asset", &op.asset);
      op.amount = r.I64("correction.amount");
      return;
    }
    case EntryType::kPurchase: {
      auto& op = Fresh<PurchaseOp>(body);
      r.Str("purchase.store", &op.store);
      r.Str("purchase.order_id", &op.order_id);
      r.Str("purchase.asset", &op.asset);
      op.amount = r.I64("purchase.amount");
      r.Str("purchase.member", &op.member);
      op.sale_time_us = r.I64("purchase.sale_time_us");
      op.rate_bp = r.U32("purchase.rate_bp");
      r.Str("purchase.fund", &op.fund);
      r.Str("purchase.trace_hash", &op.trace_hash);
      return;
    }
    case EntryType::kRefund: {
      auto& op = Fresh<RefundOp>(body);
      r.Str("refund.store", &op.store);
      r.Str("refund.order_id", &op.order_id);
      r.Str("refund.refund_id", &op.refund_id);
      op.amount = r.I64("refund.amount");
      return;
    }
    case EntryType::kVoucherIssue: {
      auto& op = Fresh<VoucherIssueOp>(body);
      r.Str("voucher_issue.from", &op.from);
      r.Str("voucher_issue.recipient", &op.recipient);
      r.Str("voucher_issue.asset", &op.asset);
      op.amount = r.I64("voucher_issue.amount");
      op.expires_us = r.I64("voucher_issue.expires_us");
      const uint16_t stores = r.U16("voucher_issue.store_count");
      // Each store takes at least its 2-byte length: a count the bytes
      // cannot hold is refused before anything is allocated for it.
      if (r.ok() && r.remaining() < 2u * stores) {
        r.Fail("voucher_issue.store_count: more stores than bytes left");
        return;
      }
      op.stores.resize(r.ok() ? stores : 0);
      for (std::string& store : op.stores) r.Str("voucher_issue.stores", &store);
      r.Str("voucher_issue.code_hash", &op.code_hash);
      r.Str("voucher_issue.memo", &op.memo);
      if (version >= 2) r.Str("voucher_issue.override", &op.override_reason);
      return;
    }
    case EntryType::kRedemption: {
      auto& op = Fresh<RedemptionOp>(body);
      r.Str("redemption.code_hash", &op.code_hash);
      r.Str("redemption.store", &op.store);
      r.Str("redemption.order_id", &op.order_id);
      op.amount = r.I64("redemption.amount");
      return;
    }
    case EntryType::kVoucherClose: {
      auto& op = Fresh<VoucherCloseOp>(body);
      r.Str("voucher_close.voucher", &op.voucher);
      op.mode = static_cast<VoucherCloseMode>(r.U8("voucher_close.mode"));
      r.Str("voucher_close.reason", &op.reason);
      return;
    }
    case EntryType::kItem: {
      auto& op = Fresh<ItemOp>(body);
      r.Str("item.item", &op.item);
      r.Str("item.name", &op.name);
      r.Str("item.unit", &op.unit);
      return;
    }
    case EntryType::kGoodsGift: {
      auto& op = Fresh<GoodsGiftOp>(body);
      r.Str("goods_gift.donor", &op.donor);
      r.Str("goods_gift.to", &op.to);
      r.Str("goods_gift.item", &op.item);
      op.quantity = r.I64("goods_gift.quantity");
      r.Str("goods_gift.grade", &op.grade);
      op.expires_us = r.I64("goods_gift.expires_us");
      r.Str("goods_gift.value_asset", &op.value_asset);
      op.value = r.I64("goods_gift.value");
      op.channel = static_cast<DonationChannel>(r.U8("goods_gift.channel"));
      op.flags = r.U32("goods_gift.flags");
      r.Str("goods_gift.memo", &op.memo);
      r.Str("goods_gift.trace_hash", &op.trace_hash);
      return;
    }
    case EntryType::kGoodsPurchase: {
      auto& op = Fresh<GoodsPurchaseOp>(body);
      r.Str("goods_purchase.from", &op.from);
      r.Str("goods_purchase.supplier", &op.supplier);
      r.Str("goods_purchase.asset", &op.asset);
      op.price = r.I64("goods_purchase.price");
      r.Str("goods_purchase.to", &op.to);
      r.Str("goods_purchase.item", &op.item);
      op.quantity = r.I64("goods_purchase.quantity");
      r.Str("goods_purchase.grade", &op.grade);
      op.expires_us = r.I64("goods_purchase.expires_us");
      r.Str("goods_purchase.memo", &op.memo);
      return;
    }
    case EntryType::kHandout: {
      auto& op = Fresh<HandoutOp>(body);
      r.Str("handout.from", &op.from);
      r.Str("handout.item", &op.item);
      const uint32_t lines = r.U32("handout.line_count");
      // Each line takes at least 10 bytes: a count the bytes cannot hold is
      // refused before anything is allocated for it.
      if (r.ok() && r.remaining() / 10 < lines) {
        r.Fail("handout.line_count: more lines than bytes left");
        return;
      }
      op.lines.resize(r.ok() ? lines : 0);
      for (HandoutLine& line : op.lines) {
        r.Str("handout.lines.recipient", &line.recipient);
        line.quantity = r.I64("handout.lines.quantity");
      }
      r.Str("handout.purpose", &op.purpose);
      r.Str("handout.override", &op.override_reason);
      return;
    }
    case EntryType::kWriteOff: {
      auto& op = Fresh<WriteOffOp>(body);
      r.Str("write_off.from", &op.from);
      r.Str("write_off.to", &op.to);
      r.Str("write_off.item", &op.item);
      op.quantity = r.I64("write_off.quantity");
      op.lot = r.U64("write_off.lot");
      r.Str("write_off.reason", &op.reason);
      return;
    }
    case EntryType::kGoodsSale: {
      auto& op = Fresh<GoodsSaleOp>(body);
      r.Str("goods_sale.from", &op.from);
      r.Str("goods_sale.buyer", &op.buyer);
      r.Str("goods_sale.item", &op.item);
      op.quantity = r.I64("goods_sale.quantity");
      r.Str("goods_sale.to", &op.to);
      r.Str("goods_sale.asset", &op.asset);
      op.proceeds = r.I64("goods_sale.proceeds");
      r.Str("goods_sale.memo", &op.memo);
      return;
    }
    case EntryType::kAidRule: {
      auto& op = Fresh<AidRuleOp>(body);
      r.Str("aid_rule.aid", &op.aid);
      op.type = static_cast<EntryType>(r.U8("aid_rule.type"));
      r.Str("aid_rule.source", &op.source);
      r.Str("aid_rule.asset", &op.asset);
      op.max_count = r.U32("aid_rule.max_count");
      op.period = static_cast<AidPeriod>(r.U8("aid_rule.period"));
      r.Str("aid_rule.memo", &op.memo);
      return;
    }
  }
  r.Fail(absl::StrCat("unknown entry type ", static_cast<int>(type)));
  body->emplace<OpenAccountOp>();
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

namespace {
template <typename W>
void WriteEntry(const Entry& entry, W& w) {
  w.U8(entry.version);
  w.U8(static_cast<uint8_t>(entry.type()));
  w.U64(entry.seq);
  w.I64(entry.time_us);
  w.Bytes(entry.prev_hash.data(), entry.prev_hash.size());
  w.Str(entry.client_id);
  w.Str(entry.policy);
  EncodeBody(entry.body, entry.version, w);
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
}  // namespace

void EncodeEntry(const Entry& entry, std::string* out) {
  SizeCounter counter;
  WriteEntry(entry, counter);
  const size_t start = out->size();
  out->resize(start + counter.size());
  SpanWriter w(out->data() + start);
  WriteEntry(entry, w);
  WL_CHECK(w.pos() == out->data() + out->size());
}

std::string EncodeEntry(const Entry& entry) {
  std::string out;
  EncodeEntry(entry, &out);
  return out;
}

absl::StatusOr<Entry> DecodeEntry(std::string_view bytes) {
  Entry e;
  WL_RETURN_IF_ERROR(DecodeEntryInto(bytes, &e));
  return e;
}

absl::Status DecodeEntryInto(std::string_view bytes, Entry* out) {
  Reader r(bytes);
  Entry& e = *out;
  e.version = r.U8("version");
  if (r.ok() && (e.version < 1 || e.version > kEntryVersion)) {
    return absl::DataLossError(absl::StrCat("unknown entry version ", e.version));
  }
  uint8_t type = r.U8("type");
  if (r.ok() && (type < 1 || type > kEntryTypeMax)) {
    return absl::DataLossError(absl::StrCat("unknown entry type ", type));
  }
  e.seq = r.U64("seq");
  e.time_us = r.I64("time_us");
  r.Bytes(e.prev_hash.data(), e.prev_hash.size(), "prev_hash");
  r.Str("client_id", &e.client_id);
  r.Str("policy", &e.policy);
  if (r.ok()) DecodeBody(static_cast<EntryType>(type), e.version, r, &e.body);
  uint32_t posting_count = r.U32("posting_count");
  // Each posting needs at least 3 string prefixes, an amount and a count.
  if (r.ok() && posting_count > r.remaining() / 18) {
    r.Fail(absl::StrCat("posting_count ", posting_count, " exceeds the entry size"));
  }
  // Filled in place, reusing a reused entry's postings (on failure the
  // whole entry is dropped).
  e.postings.resize(r.ok() ? posting_count : 0);
  for (uint32_t i = 0; r.ok() && i < posting_count; ++i) {
    Posting& p = e.postings[i];
    r.Str("posting.from", &p.from);
    r.Str("posting.to", &p.to);
    r.Str("posting.asset", &p.asset);
    p.amount = r.I64("posting.amount");
    uint32_t slice_count = r.U32("posting.slice_count");
    if (r.ok() && slice_count > r.remaining() / 16) {
      r.Fail(absl::StrCat("slice_count ", slice_count, " exceeds the entry size"));
    }
    if (!r.ok()) break;
    // The check above proved that all the slices are there: read them
    // without a bounds check each.
    p.slices.resize(slice_count);
    const char* in = r.Take(size_t{16} * slice_count);
    for (uint32_t j = 0; j < slice_count; ++j, in += 16) {
      p.slices[j].lot = LoadLittleEndian<uint64_t>(in);
      p.slices[j].amount = static_cast<int64_t>(LoadLittleEndian<uint64_t>(in + 8));
    }
  }
  if (r.ok() && r.remaining() != 0) {
    r.Fail(absl::StrCat(r.remaining(), " trailing bytes"));
  }
  if (!r.ok()) return absl::DataLossError(absl::StrCat("malformed entry: ", r.error()));
  return absl::OkStatus();
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
