// A small, strict command-line flag parser for the warmledger CLI. Unlike
// gflags it keeps no global registry: each subcommand builds its own FlagSet,
// so a flag that belongs to another subcommand is an error, and so is a flag
// given twice (with money, "last one wins" hides typos).
//
// Accepted forms: --name=value, --name value (not for booleans), --name and
// --name=true|false for booleans, --help / -h. Positional arguments are
// refused: every input of every subcommand is a named flag. The one exception
// to "given twice is an error" is a list flag (AddStringList), which is meant
// to repeat.
//
// Not thread-safe; a FlagSet lives for one parse.
#ifndef WARMLEDGER_CLIENT_FLAG_PARSER_H_
#define WARMLEDGER_CLIENT_FLAG_PARSER_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace warmledger::client {

enum class FlagRequirement { kOptional, kRequired };
// Global flags (server, token, ...) are accepted by every subcommand and listed
// separately in usage texts.
enum class FlagScope { kCommand, kGlobal };

class FlagSet {
 public:
  // `usage_line` follows "usage: " (e.g. "warmledger donate [flags]");
  // `description` is a paragraph printed under it.
  FlagSet(std::string usage_line, std::string description);

  FlagSet(const FlagSet&) = delete;
  FlagSet& operator=(const FlagSet&) = delete;

  // Registers a flag writing into *value; the current *value is the default
  // shown in the usage text. `value` must outlive the FlagSet.
  void AddString(std::string name, std::string* value, std::string help,
                 FlagRequirement requirement = FlagRequirement::kOptional,
                 FlagScope scope = FlagScope::kCommand);
  void AddInt64(std::string name, int64_t* value, std::string help,
                FlagRequirement requirement = FlagRequirement::kOptional,
                FlagScope scope = FlagScope::kCommand);
  void AddUint64(std::string name, uint64_t* value, std::string help,
                 FlagRequirement requirement = FlagRequirement::kOptional,
                 FlagScope scope = FlagScope::kCommand);
  void AddBool(std::string name, bool* value, std::string help,
               FlagScope scope = FlagScope::kCommand);
  // A list: the flag may be repeated, and each value may be a comma-separated
  // list (--store=a --store=b,c gives a, b, c). Empty items are refused.
  void AddStringList(std::string name, std::vector<std::string>* values, std::string help);

  // Parses every argument. kInvalidArgument naming the flag for an unknown
  // flag, a missing or malformed value, a repeated flag, a positional
  // argument, or (unless --help was given) a missing required flag.
  absl::Status Parse(const std::vector<std::string>& args);

  // Parses leading flags and stops at the first positional argument; returns
  // its index (args.size() if none). Required flags are not checked. Used for
  // the global flags before the subcommand name.
  absl::StatusOr<size_t> ParseUntilPositional(const std::vector<std::string>& args);

  bool help_requested() const { return help_requested_; }
  // Whether the flag appeared on the command line (not just defaulted).
  bool Seen(std::string_view name) const;

  std::string Usage() const;

 private:
  enum class Type { kString, kInt64, kUint64, kBool, kStringList };
  struct Flag {
    std::string name;
    Type type;
    void* value;
    std::string help;
    std::string default_text;
    FlagRequirement requirement;
    FlagScope scope;
    bool seen = false;
  };

  void Add(Flag flag);
  Flag* Find(std::string_view name);
  absl::Status Set(Flag& flag, std::string_view text);
  // Parses args[*index] (and maybe the next one); advances *index.
  absl::Status ParseOne(const std::vector<std::string>& args, size_t* index);

  std::string usage_line_;
  std::string description_;
  std::vector<Flag> flags_;
  bool help_requested_ = false;
};

}  // namespace warmledger::client

#endif  // WARMLEDGER_CLIENT_FLAG_PARSER_H_
