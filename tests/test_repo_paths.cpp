// Every repository path that a comment or a doc names exists: a renamed or deleted file leaves
// no stale pointer behind. Scanned: the comments of C++/CUDA sources, the whole text of the
// Markdown files, shell and Python scripts, the Makefile and mk/*.mk. A path is a token that
// starts with a top-level folder of the repository and ends in a file name with an extension
// ("cuda/flash_attention_fwd.cu"); patterns ("ops/<op>.h", "cuda/flash_attention_*.cu") and
// folders ("dev/") are not checked. The test runs from the repository root, as `make test` does.
#include <doctest/doctest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

namespace {

namespace fs = std::filesystem;

bool path_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '.' || c == '/' || c == '-';
}

bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

// The folders at the root that hold the project's files (build outputs and hidden ones left out).
std::set<std::string> top_folders() {
  std::set<std::string> out;
  for (const auto& e : fs::directory_iterator(".")) {
    const std::string name = e.path().filename().string();
    if (!e.is_directory() || name[0] == '.' || name.rfind("build", 0) == 0 ||
        name == "data_prepared" || name == "runs") {
      continue;
    }
    out.insert(name);
  }
  return out;
}

// The tokens of text that look like repository paths: "<top folder>/<...>.<ext>" at a token
// boundary (so "../shared/x.md" and "https://host/cuda/x.cu" are not taken), a trailing '.' of
// a sentence dropped.
std::vector<std::string> path_tokens(const std::string& text, const std::set<std::string>& tops) {
  std::vector<std::string> out;
  for (size_t i = 0; i < text.size(); ++i) {
    if (i > 0 && path_char(text[i - 1])) continue;
    const std::string* top = nullptr;
    for (const std::string& t : tops) {
      if (text.compare(i, t.size() + 1, t + "/") == 0) top = &t;
    }
    if (top == nullptr) continue;
    size_t j = i;
    while (j < text.size() && path_char(text[j])) ++j;
    std::string token = text.substr(i, j - i);
    while (!token.empty() && (token.back() == '.' || token.back() == '-')) token.pop_back();
    const size_t slash = token.rfind('/');
    if (slash != std::string::npos && token.find('.', slash) != std::string::npos) {
      out.push_back(token);
    }
    i = j;
  }
  return out;
}

// The comments of a C++/CUDA source, other characters replaced by spaces (newlines kept, so
// that line numbers still count).
std::string cpp_comments(const std::string& src) {
  std::string out(src.size(), ' ');
  enum { kCode, kLine, kBlock, kString, kChar } state = kCode;
  for (size_t i = 0; i < src.size(); ++i) {
    const char c = src[i], next = i + 1 < src.size() ? src[i + 1] : '\0';
    if (c == '\n') out[i] = '\n';
    switch (state) {
      case kCode:
        if (c == '/' && next == '/')
          state = kLine, ++i;
        else if (c == '/' && next == '*')
          state = kBlock, ++i;
        else if (c == '"')
          state = kString;
        else if (c == '\'')
          state = kChar;
        break;
      case kLine:
        if (c == '\n')
          state = kCode;
        else
          out[i] = c;
        break;
      case kBlock:
        if (c == '*' && next == '/')
          state = kCode, ++i;
        else if (c != '\n')
          out[i] = c;
        break;
      case kString:
      case kChar:
        if (c == '\\')
          ++i;
        else if (c == (state == kString ? '"' : '\'') || c == '\n')
          state = kCode;
        break;
    }
  }
  return out;
}

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// "file:line: path" for every named path that does not exist.
std::vector<std::string> missing_paths() {
  const std::set<std::string> tops = top_folders();
  std::vector<fs::path> files = {"README.md", "Makefile"};
  for (const std::string& t : tops) {
    for (const auto& e : fs::recursive_directory_iterator(t)) {
      if (e.is_regular_file()) files.push_back(e.path());
    }
  }
  std::vector<std::string> missing;
  for (const fs::path& f : files) {
    const std::string name = f.generic_string();
    std::string text;
    if (ends_with(name, ".h") || ends_with(name, ".cpp") || ends_with(name, ".cu") ||
        ends_with(name, ".cuh")) {
      text = cpp_comments(read_file(f));
    } else if (ends_with(name, ".md") || ends_with(name, ".sh") || ends_with(name, ".py") ||
               ends_with(name, ".mk") || ends_with(name, ".txt") || name == "Makefile") {
      text = read_file(f);
    } else {
      continue;
    }
    for (const std::string& token : path_tokens(text, tops)) {
      if (fs::exists(token)) continue;
      const size_t at = text.find(token);
      const long line = 1 + std::count(text.begin(), text.begin() + static_cast<long>(at), '\n');
      missing.push_back(name + ":" + std::to_string(line) + ": " + token);
    }
  }
  std::sort(missing.begin(), missing.end());
  return missing;
}

}  // namespace

TEST_SUITE("repo") {
  TEST_CASE("repo: path tokens are the repository paths a text names, and nothing else") {
    const std::set<std::string> tops = {"cuda", "dev", "docs", "ops"};
    const std::string text =
        "see cuda/flash_attention_fwd.cu, docs/benchmarks.md. and ops/attention.{h,cpp}\n"
        "ops/<op>.h cuda/flash_attention_*.cu dev/ ../shared/design.md https://x.org/cuda/a.cu\n"
        "mycuda/x.cu (dev/README.md)";
    const std::vector<std::string> want = {"cuda/flash_attention_fwd.cu", "docs/benchmarks.md",
                                           "dev/README.md"};
    CHECK(path_tokens(text, tops) == want);
  }

  TEST_CASE("repo: only the comments of a C++ source are scanned") {
    const std::string src =
        "int x = 1;  // see cuda/a.cu\nconst char* s = \"ops/b.cpp\"; /* dev/c.py */";
    const std::string c = cpp_comments(src);
    CHECK(c.size() == src.size());
    CHECK(c.find("cuda/a.cu") != std::string::npos);
    CHECK(c.find("dev/c.py") != std::string::npos);
    CHECK(c.find("ops/b.cpp") == std::string::npos);
    CHECK(c.find("int") == std::string::npos);
  }

  TEST_CASE("repo: every path a comment or a doc names exists") {
    REQUIRE_MESSAGE(
        (fs::exists("Makefile") && fs::is_directory("cuda") && fs::is_directory("docs")),
        "run the tests from the repository root (make test does)");
    const std::vector<std::string> missing = missing_paths();
    std::string list;
    for (const std::string& m : missing) list += "\n  " + m;
    CHECK_MESSAGE(missing.empty(), "paths named in comments or docs that do not exist:" << list);
  }
}  // TEST_SUITE("repo")
