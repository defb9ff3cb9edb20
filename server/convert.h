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
// One human-readable line describing an entry's operation.
std::string EntrySummary(const Entry& entry);
void ToProto(const AccountInfo& info, pb::Account* out);
void ToProto(const StatementPage& page, pb::Statement* out);
void ToProto(const EntryTracePage& page, pb::EntryTrace* out);
// Fills a fund or project summary from its account info.
void ToFundSummary(const AccountInfo& info, pb::FundSummary* out);

}  // namespace warmledger::server

#endif  // WARMLEDGER_SERVER_CONVERT_H_
