// warmledger-audit: re-verifies a warmledger ledger from its stored bytes
// alone, independently of the engine (tools/audit.h lists the checks).
//
// Usage:
//   warmledger-audit (--data_dir=DIR | --export=FILE) [--key=VERIFIER_KEY | --key=@PATH]
//                    [--checkpoint=FILE ...] [--json]
//
// Exit status: 0 every check holds; 1 a check failed ("FAILED at entry N:
// ..." or "FAILED: ..."); 2 usage error or the source cannot be read.

#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "tools/audit.h"

namespace {

constexpr char kUsage[] =
    "usage: warmledger-audit (--data_dir=DIR | --export=FILE) [--key=VERIFIER_KEY | --key=@PATH]\n"
    "                        [--checkpoint=FILE ...] [--json]\n"
    "\n"
    "Re-verifies a ledger from its stored bytes alone: every entry's hash and chain link,\n"
    "a replay of every entry (re-deriving each allocation under its policy), the Merkle\n"
    "tree and every checkpoint, the balance snapshot, and conservation of value.\n"
    "\n"
    "  --data_dir=DIR      a server data folder (its database DIR/db, or DIR itself), opened\n"
    "                      read-only; audit a copy, or while no server runs\n"
    "  --export=FILE       an export file written by `warmledger entries --out=FILE`\n"
    "  --key=KEY|@PATH     the checkpoint verifier key (signed-note form), or a file holding\n"
    "                      it; without it checkpoint signatures are NOT checked\n"
    "  --checkpoint=FILE   a signed checkpoint you have seen (repeatable); it must verify and\n"
    "                      match the ledger\n"
    "  --json              print one JSON object instead of text\n"
    "\n"
    "Exit status: 0 all checks hold, 1 a check failed, 2 usage error or unreadable input.\n";

int UsageError(const std::string& message) {
  std::cerr << "warmledger-audit: " << message << "\n\n" << kUsage;
  return 2;
}

std::string Trim(std::string s) {
  const size_t end = s.find_last_not_of(" \t\r\n");
  s.erase(end == std::string::npos ? 0 : end + 1);
  const size_t begin = s.find_first_not_of(" \t\r\n");
  return begin == std::string::npos ? std::string() : s.substr(begin);
}

}  // namespace

int main(int argc, char** argv) {
  warmledger::audit::AuditOptions options;
  bool json = false;
  bool have_key = false;
  std::string key_arg;
  const std::vector<std::string> args(argv + 1, argv + argc);
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg == "--help" || arg == "-h") {
      std::cout << kUsage;
      return 0;
    }
    if (arg == "--json") {
      json = true;
      continue;
    }
    if (arg.rfind("--", 0) != 0) return UsageError("unexpected argument '" + arg + "'");
    const size_t eq = arg.find('=');
    const std::string name = arg.substr(2, eq == std::string::npos ? std::string::npos : eq - 2);
    std::string value;
    if (eq != std::string::npos) {
      value = arg.substr(eq + 1);
    } else if (name == "data_dir" || name == "export" || name == "key" || name == "checkpoint") {
      if (i + 1 >= args.size()) return UsageError("--" + name + " needs a value");
      value = args[++i];
    } else {
      return UsageError("unknown flag '" + arg + "'");
    }
    if (value.empty()) return UsageError("--" + name + " needs a value");
    if (name == "data_dir") {
      if (!options.data_dir.empty()) return UsageError("--data_dir given twice");
      options.data_dir = value;
    } else if (name == "export") {
      if (!options.export_path.empty()) return UsageError("--export given twice");
      options.export_path = value;
    } else if (name == "key") {
      if (have_key) return UsageError("--key given twice");
      have_key = true;
      key_arg = value;
    } else if (name == "checkpoint") {
      options.checkpoint_files.push_back(value);
    } else if (name == "json") {
      if (value != "true" && value != "false") return UsageError("--json takes no value");
      json = value == "true";
    } else {
      return UsageError("unknown flag '--" + name + "'");
    }
  }
  if (options.data_dir.empty() == options.export_path.empty()) {
    return UsageError("give exactly one of --data_dir and --export");
  }
  if (have_key) {
    if (key_arg[0] == '@') {
      std::ifstream in(key_arg.substr(1));
      if (!in) return UsageError("--key: cannot read " + key_arg.substr(1));
      std::ostringstream s;
      s << in.rdbuf();
      options.verifier_key = Trim(s.str());
    } else {
      options.verifier_key = Trim(key_arg);
    }
    if (options.verifier_key.empty()) return UsageError("--key: the key is empty");
  }

  absl::StatusOr<warmledger::audit::AuditReport> report = warmledger::audit::RunAudit(options);
  if (!report.ok()) {
    std::cerr << "warmledger-audit: " << report.status().message() << "\n";
    return 2;
  }
  if (!report->signatures_checked && !json) {
    std::cerr << "warmledger-audit: WARNING: no --key given; checkpoint signatures are NOT "
                 "checked\n";
  }
  std::cout << (json ? warmledger::audit::FormatJson(*report)
                     : warmledger::audit::FormatText(*report));
  std::cout.flush();
  return report->ok ? 0 : 1;
}
