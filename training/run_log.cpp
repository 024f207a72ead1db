#include "training/run_log.h"

#include <fstream>
#include <sstream>

#include "base/error.h"
#include "training/files.h"

namespace mt::training {

void RunLog::append(const nlohmann::json& record) const {
  if (path_.empty()) return;
  std::ofstream out(path_, std::ios::app);
  CHECK(out.good(), "cannot append to '{}'", path_);
  out << record.dump() << '\n';
  out.flush();
}

void RunLog::truncate_after(int64_t step) const {
  if (path_.empty() || !path_exists(path_)) return;
  std::string kept;
  for (const nlohmann::json& r : read_run_log(path_)) {
    if (r.value("step", int64_t{0}) <= step) kept += r.dump() + "\n";
  }
  write_file_atomic(path_, kept);
}

std::vector<nlohmann::json> read_run_log(const std::string& path) {
  std::istringstream in(read_file(path));
  std::vector<nlohmann::json> records;
  std::string line;
  int line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (line.empty()) continue;
    nlohmann::json r = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    // A run killed mid-write can leave a partial last line: it is the only one forgiven.
    if (r.is_discarded() && in.peek() == EOF) break;
    CHECK(!r.is_discarded() && r.is_object(), "{}:{}: not a JSON object: '{}'", path, line_no,
          line.substr(0, 80));
    records.push_back(std::move(r));
  }
  return records;
}

}  // namespace mt::training
