// check_known_keys: the one check every JSON config section makes (model, optimizer, scheduler,
// data, trainer), in base/ because models/ and optim/ both need it and neither may include the
// other.
#pragma once

#include <initializer_list>
#include <nlohmann/json.hpp>
#include <string>

#include "base/error.h"

namespace mt {

// Checks that every key of object `j` is in `allowed`; else an Error "<where>.<key>: unknown key
// (allowed: a, b, c)".
inline void check_known_keys(const nlohmann::json& j, const std::string& where,
                             std::initializer_list<const char*> allowed) {
  MT_CHECK(j.is_object(), "{}: expected a JSON object, got {}", where, j.type_name());
  for (auto it = j.begin(); it != j.end(); ++it) {
    bool known = false;
    for (const char* a : allowed) known = known || it.key() == a;
    if (!known) {
      std::string list;
      for (const char* a : allowed) list += (list.empty() ? "" : ", ") + std::string(a);
      MT_FAIL("{}.{}: unknown key (allowed: {})", where, it.key(), list);
    }
  }
}

}  // namespace mt
