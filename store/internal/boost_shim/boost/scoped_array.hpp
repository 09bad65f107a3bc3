// Stand-in for Boost's scoped_array (see ../README.md): same layout, one T*.
#pragma once

#include <cstddef>

namespace boost {

template <class T>
class scoped_array {
 public:
  explicit scoped_array(T* p = nullptr) noexcept : px(p) {}
  ~scoped_array() { delete[] px; }
  scoped_array(const scoped_array&) = delete;
  scoped_array& operator=(const scoped_array&) = delete;
  void reset(T* p = nullptr) noexcept {
    T* old = px;
    px = p;
    delete[] old;
  }
  T& operator[](std::ptrdiff_t i) const noexcept { return px[i]; }
  T* get() const noexcept { return px; }
  explicit operator bool() const noexcept { return px != nullptr; }
  void swap(scoped_array& b) noexcept {
    T* tmp = b.px;
    b.px = px;
    px = tmp;
  }

 private:
  T* px;
};

}  // namespace boost
