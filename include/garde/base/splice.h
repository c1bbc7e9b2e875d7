// Removes and inserts entries of a vector in one go, in place: the removed ones are closed up
// in a pass forwards, then the new ones moved in from the back. A vector of a million entries
// so changed is not copied, as building the result beside it would (the audience index's
// columns: tens of megabytes a refresh).
//
//   std::vector<int> v = {1, 3, 5, 7}, in = {2, 8};
//   SpliceInPlace(v, /*removed=*/{1}, in, /*at=*/{1, 4});  // v == {1, 2, 5, 7, 8}
#pragma once

#include <cstddef>
#include <utility>
#include <vector>

namespace garde {

// Removes v's entries at the indexes `removed` (ascending, each < v.size()) and moves the
// entries of `added` in, added[j] to index at[j] of the result (`at` ascending, each less
// than the result's size); the others keep their order. v grows only when its capacity is
// short (reserve first to choose how much).
template <typename T>
void SpliceInPlace(std::vector<T>& v, const std::vector<size_t>& removed, std::vector<T>& added,
                   const std::vector<size_t>& at) {
  if (!removed.empty()) {
    size_t write = removed.front(), next = 0;
    for (size_t read = removed.front(); read < v.size(); ++read) {
      if (next < removed.size() && removed[next] == read) {
        ++next;
        continue;
      }
      v[write++] = std::move(v[read]);
    }
    v.resize(write);
  }
  if (added.empty()) return;
  const size_t total = v.size() + added.size();
  size_t kept = v.size(), j = added.size();
  v.resize(total);
  // From the back, the write position is never below the next kept entry to move.
  for (size_t write = total; j > 0;) {
    --write;
    if (write == at[j - 1]) {
      v[write] = std::move(added[--j]);
    } else {
      v[write] = std::move(v[--kept]);
    }
  }
}

}  // namespace garde
