// The configured tables a recipient registration is checked against: the
// categories of people in need and the communities of the district.
//
// File grammar (UTF-8, '#' starts a comment):
//   line := ("category" | "community") SP code SP name
//   code := [A-Za-z0-9._-]{1,64}
#ifndef WARMLEDGER_SERVER_REGISTRY_H_
#define WARMLEDGER_SERVER_REGISTRY_H_

#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"

namespace warmledger::server {

class Registry {
 public:
  // The district of DOMAIN.md: 11 categories and 175 communities.
  static Registry Default();
  static absl::StatusOr<Registry> FromFile(const std::string& path);

  bool HasCategory(const std::string& code) const { return category_set_.contains(code); }
  bool HasCommunity(const std::string& code) const { return community_set_.contains(code); }
  const std::vector<std::pair<std::string, std::string>>& categories() const {
    return categories_;
  }
  const std::vector<std::pair<std::string, std::string>>& communities() const {
    return communities_;
  }

 private:
  void AddCategory(std::string code, std::string name);
  void AddCommunity(std::string code, std::string name);

  std::vector<std::pair<std::string, std::string>> categories_;
  std::vector<std::pair<std::string, std::string>> communities_;
  absl::flat_hash_set<std::string> category_set_;
  absl::flat_hash_set<std::string> community_set_;
};

}  // namespace warmledger::server

#endif  // WARMLEDGER_SERVER_REGISTRY_H_
