// Ctrl-C during training: the first SIGINT (or SIGTERM) asks the loop to stop after the current
// step, save the last checkpoint and exit cleanly; a second one ends the process at once (the
// default action is restored by the first), for a run stuck somewhere the loop never checks.
#pragma once

namespace mt::training {

void install_interrupt_handler();
bool interrupt_requested();
// Sets or clears the flag by hand (tests; a programmatic stop).
void request_interrupt(bool on = true);

}  // namespace mt::training
