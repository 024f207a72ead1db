// The version of the parameters' values: a process-wide count of in-place parameter updates.
//
// A cache of values derived from parameters (bf16-mixed's bf16 copies of the weights,
// models/layers.h) remembers the version it was made at and is stale once the version moved.
// Code that writes parameter values in place calls parameters_changed() when it is done:
// Optimizer::step, Module::load_state_dict and Module::to do; so must anything else that does
// (a hand-written update loop), or a cache keeps serving the old values. One counter for every
// model: a step of one model makes the others' caches stale too, which costs a refresh, never a
// wrong value.
#pragma once

#include <cstdint>

namespace mt {

uint64_t parameters_version();
void parameters_changed();

}  // namespace mt
