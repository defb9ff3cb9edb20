// Conversions between the engine's types and the warmledger.v1 messages, and
// the one place absl statuses become gRPC statuses.
#ifndef WARMLEDGER_SERVER_CONVERT_H_
#define WARMLEDGER_SERVER_CONVERT_H_

#include <grpcpp/grpcpp.h>

#include "absl/status/status.h"
#include "ledger/types.h"
#include "warmledger/v1/ledger.pb.h"

namespace warmledger::server {

namespace pb = ::warmledger::v1;

grpc::Status ToGrpc(const absl::Status& status);
const char* CodeName(absl::StatusCode code);

void ToProto(const StoredEntry& stored, pb::Entry* out);
// The seq, time and duplicate flag of a successful result.
void ToProto(const OpResult& result, pb::WriteResult* out);
// One human-readable line describing an entry's operation.
std::string EntrySummary(const Entry& entry);
void ToProto(const AccountInfo& info, pb::Account* out);
void ToProto(const StatementPage& page, pb::Statement* out);
void ToProto(const EntryTracePage& page, pb::EntryTrace* out);
// Every field, the donor included (callers blank it for public views).
void ToProto(const LotParent& parent, pb::LotParent* out);
void ToProto(const ItemInfo& info, pb::Item* out);
// Fills a fund or project summary from its account info.
void ToFundSummary(const AccountInfo& info, pb::FundSummary* out);
// Every field, the recipient included (callers blank it for the mall).
void ToProto(const VoucherInfo& info, pb::Voucher* out);
void ToProto(const VoucherReport& report, pb::VoucherReport* out);
// Also net_contribution = contributions - reversals.
void ToProto(const StoreSettlement& row, pb::StoreSettlement* out);
void ToProto(const AidRuleInfo& info, pb::AidRule* out);
// A public report never carries a cell of fewer than kAidReportMinPeople
// people: should one reach here, it is left out and counted as suppressed.
void ToProto(const AidReport& report, pb::AidReport* out);

}  // namespace warmledger::server

#endif  // WARMLEDGER_SERVER_CONVERT_H_
