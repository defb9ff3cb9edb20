#include "client/flag_parser.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "client/client.h"
#include "ledger/status_macros.h"

namespace warmledger::client {
namespace {

constexpr size_t kHelpColumn = 30;

const char* TypePlaceholder(bool is_bool, bool is_number) {
  if (is_bool) return "";
  return is_number ? "=N" : "=S";
}

}  // namespace

FlagSet::FlagSet(std::string usage_line, std::string description)
    : usage_line_(std::move(usage_line)), description_(std::move(description)) {}

void FlagSet::Add(Flag flag) {
  // Registering a name twice is a programming error in the CLI itself.
  WL_CHECK(Find(flag.name) == nullptr);
  flags_.push_back(std::move(flag));
}

void FlagSet::AddString(std::string name, std::string* value, std::string help,
                        FlagRequirement requirement, FlagScope scope) {
  std::string default_text = value->empty() ? "" : absl::StrCat("\"", *value, "\"");
  Add({std::move(name), Type::kString, value, std::move(help), std::move(default_text), requirement,
       scope});
}

void FlagSet::AddInt64(std::string name, int64_t* value, std::string help,
                       FlagRequirement requirement, FlagScope scope) {
  Add({std::move(name), Type::kInt64, value, std::move(help),
       *value == 0 ? "" : absl::StrCat(*value), requirement, scope});
}

void FlagSet::AddUint64(std::string name, uint64_t* value, std::string help,
                        FlagRequirement requirement, FlagScope scope) {
  Add({std::move(name), Type::kUint64, value, std::move(help),
       *value == 0 ? "" : absl::StrCat(*value), requirement, scope});
}

void FlagSet::AddBool(std::string name, bool* value, std::string help, FlagScope scope) {
  Add({std::move(name), Type::kBool, value, std::move(help), *value ? "true" : "",
       FlagRequirement::kOptional, scope});
}

void FlagSet::AddStringList(std::string name, std::vector<std::string>* values,
                            std::string help) {
  Add({std::move(name), Type::kStringList, values, std::move(help), "",
       FlagRequirement::kOptional, FlagScope::kCommand});
}

FlagSet::Flag* FlagSet::Find(std::string_view name) {
  for (Flag& f : flags_) {
    if (f.name == name) return &f;
  }
  return nullptr;
}

bool FlagSet::Seen(std::string_view name) const {
  for (const Flag& f : flags_) {
    if (f.name == name) return f.seen;
  }
  return false;
}

absl::Status FlagSet::Set(Flag& flag, std::string_view text) {
  const auto bad = [&](const absl::Status& s) {
    return absl::InvalidArgumentError(absl::StrCat("--", flag.name, ": ", s.message()));
  };
  switch (flag.type) {
    case Type::kString:
      *static_cast<std::string*>(flag.value) = std::string(text);
      return absl::OkStatus();
    case Type::kInt64: {
      auto v = ParseInt64(text);
      if (!v.ok()) return bad(v.status());
      *static_cast<int64_t*>(flag.value) = *v;
      return absl::OkStatus();
    }
    case Type::kUint64: {
      auto v = ParseUint64(text);
      if (!v.ok()) return bad(v.status());
      *static_cast<uint64_t*>(flag.value) = *v;
      return absl::OkStatus();
    }
    case Type::kBool:
      if (text == "true" || text == "1") {
        *static_cast<bool*>(flag.value) = true;
      } else if (text == "false" || text == "0") {
        *static_cast<bool*>(flag.value) = false;
      } else {
        return absl::InvalidArgumentError(
            absl::StrCat("--", flag.name, ": expected true or false, not \"", ToAbsl(text), "\""));
      }
      return absl::OkStatus();
    case Type::kStringList:
      for (absl::string_view item : absl::StrSplit(ToAbsl(text), ',')) {
        if (item.empty()) {
          return absl::InvalidArgumentError(
              absl::StrCat("--", flag.name, ": empty item in \"", ToAbsl(text), "\""));
        }
        static_cast<std::vector<std::string>*>(flag.value)->emplace_back(item);
      }
      return absl::OkStatus();
  }
  return absl::InternalError("unknown flag type");
}

absl::Status FlagSet::ParseOne(const std::vector<std::string>& args, size_t* index) {
  const std::string& arg = args[*index];
  ++*index;
  if (arg == "--help" || arg == "-h" || arg == "-help") {
    help_requested_ = true;
    return absl::OkStatus();
  }
  std::string_view body = arg;
  body.remove_prefix(2);  // the caller checked for "--"
  const size_t eq = body.find('=');
  const std::string_view name = body.substr(0, eq);
  Flag* flag = Find(name);
  if (flag == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat("unknown flag --", ToAbsl(name)));
  }
  if (flag->seen && flag->type != Type::kStringList) {
    return absl::InvalidArgumentError(absl::StrCat("flag --", ToAbsl(name), " given twice"));
  }
  flag->seen = true;
  if (eq != std::string_view::npos) return Set(*flag, body.substr(eq + 1));
  if (flag->type == Type::kBool) return Set(*flag, "true");
  if (*index >= args.size()) {
    return absl::InvalidArgumentError(absl::StrCat("flag --", ToAbsl(name), " needs a value"));
  }
  const std::string& value = args[*index];
  ++*index;
  return Set(*flag, value);
}

absl::StatusOr<size_t> FlagSet::ParseUntilPositional(const std::vector<std::string>& args) {
  size_t i = 0;
  while (i < args.size()) {
    const std::string& arg = args[i];
    if (arg == "--") return i + 1 < args.size() ? i + 1 : args.size();
    const bool is_flag = (arg.size() > 2 && arg.compare(0, 2, "--") == 0) || arg == "-h";
    if (!is_flag) return i;
    WL_RETURN_IF_ERROR(ParseOne(args, &i));
  }
  return i;
}

absl::Status FlagSet::Parse(const std::vector<std::string>& args) {
  size_t i = 0;
  while (i < args.size()) {
    const std::string& arg = args[i];
    const bool is_flag = (arg.size() > 2 && arg.compare(0, 2, "--") == 0) || arg == "-h";
    if (!is_flag) {
      return absl::InvalidArgumentError(
          absl::StrCat("unexpected argument \"", arg, "\" (all inputs are --flags)"));
    }
    WL_RETURN_IF_ERROR(ParseOne(args, &i));
  }
  if (help_requested_) return absl::OkStatus();
  for (const Flag& f : flags_) {
    if (f.requirement == FlagRequirement::kRequired && !f.seen) {
      return absl::InvalidArgumentError(absl::StrCat("missing required flag --", f.name));
    }
  }
  return absl::OkStatus();
}

std::string FlagSet::Usage() const {
  std::string out = absl::StrCat("usage: ", usage_line_, "\n");
  if (!description_.empty()) absl::StrAppend(&out, "\n", description_, "\n");
  for (FlagScope scope : {FlagScope::kCommand, FlagScope::kGlobal}) {
    bool header = false;
    for (const Flag& f : flags_) {
      if (f.scope != scope) continue;
      if (!header) {
        absl::StrAppend(&out, "\n",
                        scope == FlagScope::kCommand ? "flags:" : "global flags:", "\n");
        header = true;
      }
      std::string left =
          absl::StrCat("  --", f.name,
                       TypePlaceholder(f.type == Type::kBool,
                                       f.type == Type::kInt64 || f.type == Type::kUint64));
      if (left.size() + 2 > kHelpColumn) {
        absl::StrAppend(&out, left, "\n", std::string(kHelpColumn, ' '));
      } else {
        absl::StrAppend(&out, left, std::string(kHelpColumn - left.size(), ' '));
      }
      absl::StrAppend(&out, f.help);
      if (f.type == Type::kStringList) absl::StrAppend(&out, " (repeatable; or a,b,c)");
      if (f.requirement == FlagRequirement::kRequired) absl::StrAppend(&out, " (required)");
      if (!f.default_text.empty()) absl::StrAppend(&out, " [default ", f.default_text, "]");
      absl::StrAppend(&out, "\n");
    }
  }
  return out;
}

}  // namespace warmledger::client
