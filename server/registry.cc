#include "server/registry.h"

#include <cstdio>
#include <fstream>

#include "absl/strings/str_cat.h"

namespace warmledger::server {

void Registry::AddCategory(std::string code, std::string name) {
  category_set_.insert(code);
  categories_.emplace_back(std::move(code), std::move(name));
}

void Registry::AddCommunity(std::string code, std::string name) {
  community_set_.insert(code);
  communities_.emplace_back(std::move(code), std::move(name));
}

Registry Registry::Default() {
  Registry r;
  r.AddCategory("dibao", "Subsistence allowance (低保)");
  r.AddCategory("dibao-marginal", "Near the subsistence line (低保边缘)");
  r.AddCategory("youfu", "Special care for veterans' families (优抚)");
  r.AddCategory("elderly-poverty", "Elderly in poverty");
  r.AddCategory("disabled", "People with disabilities");
  r.AddCategory("women-hardship", "Women in hardship");
  r.AddCategory("workers-hardship", "Workers in hardship");
  r.AddCategory("serious-illness", "Serious illness");
  r.AddCategory("children-distress", "Children in distress");
  r.AddCategory("family-planning-hardship", "Family-planning special hardship");
  r.AddCategory("disaster-victims", "Disaster victims");
  for (int i = 1; i <= 175; ++i) {
    char code[16];
    std::snprintf(code, sizeof code, "c%03d", i);
    r.AddCommunity(code, absl::StrCat("Erqi community ", i));
  }
  return r;
}

absl::StatusOr<Registry> Registry::FromFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return absl::NotFoundError(absl::StrCat("registry_file: cannot read ", path));
  Registry r;
  std::string line;
  int line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (line.empty() || line[0] == '#') continue;
    size_t sp1 = line.find(' ');
    size_t sp2 = sp1 == std::string::npos ? sp1 : line.find(' ', sp1 + 1);
    if (sp2 == std::string::npos) {
      return absl::InvalidArgumentError(absl::StrCat(
          "registry_file: ", path, ":", line_no, ": expected '<category|community> <code> <name>'"));
    }
    std::string kind = line.substr(0, sp1);
    std::string code = line.substr(sp1 + 1, sp2 - sp1 - 1);
    std::string name = line.substr(sp2 + 1);
    bool code_ok = !code.empty() && code.size() <= 64;
    for (char c : code) {
      code_ok &= (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 c == '.' || c == '_' || c == '-';
    }
    if (!code_ok) {
      return absl::InvalidArgumentError(
          absl::StrCat("registry_file: ", path, ":", line_no, ": bad code '", code, "'"));
    }
    if (kind == "category") {
      if (r.HasCategory(code)) {
        return absl::InvalidArgumentError(absl::StrCat("registry_file: ", path, ":", line_no,
                                                       ": category '", code, "' repeated"));
      }
      r.AddCategory(code, name);
    } else if (kind == "community") {
      if (r.HasCommunity(code)) {
        return absl::InvalidArgumentError(absl::StrCat("registry_file: ", path, ":", line_no,
                                                       ": community '", code, "' repeated"));
      }
      r.AddCommunity(code, name);
    } else {
      return absl::InvalidArgumentError(absl::StrCat("registry_file: ", path, ":", line_no,
                                                     ": unknown table '", kind, "'"));
    }
  }
  if (r.categories_.empty() || r.communities_.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("registry_file: ", path, ": needs at least one category and one community"));
  }
  return r;
}

}  // namespace warmledger::server
