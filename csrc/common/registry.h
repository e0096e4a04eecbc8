// Self-registration of per-operation bindings into vsum._core.
//
// A csrc/<op>/<op>_bindings.cpp file defines `void bind_<op>(pybind11::module_&)`
// and registers it at namespace scope with
//
//     VSUM_REGISTER_BINDINGS(<op>, bind_<op>);
//
// PYBIND11_MODULE in bindings.cpp calls every registered function, sorted by
// name, so adding an operation never edits a shared file (CMakeLists.txt
// picks up csrc/<op>/*.cpp by itself).
#pragma once

#include <pybind11/pybind11.h>

#include <vector>

namespace vsum {

using BindFunction = void (*)(pybind11::module_&);

struct BindingEntry {
  const char* name;
  BindFunction bind;
};

// Function-local static: safe whatever the static initialisation order.
std::vector<BindingEntry>& binding_registry();

struct BindingRegistrar {
  BindingRegistrar(const char* name, BindFunction bind) { binding_registry().push_back({name, bind}); }
};

}  // namespace vsum

#define VSUM_REGISTER_BINDINGS(op, function) \
  static const ::vsum::BindingRegistrar vsum_binding_registrar_##op(#op, function)
