// Plots of a run, drawn with gnuplot from the run's own files, as PNG and SVG in <run>/plots/:
//   loss.{png,svg}                 train loss per logged step, validation loss per epoch and at
//                                  a max_steps stop (log y)
//   predictions_<feature>.{png,svg}  actual against predicted next-minute values for the first
//                                  test windows, one panel per window (USD, volume in BTC)
//   window0_all.{png,svg}          all five features of the first test window
// Inputs: <run>/metrics.jsonl (training/run_log.h) and <run>/predictions.csv (written by the
// evaluation: window, t, actual_<feature>..., predicted_<feature>...). A plot whose input is
// missing is skipped and said so. gnuplot missing: nothing is drawn, and the message says how to
// install it; training never fails over plots. The scripts (plots/*.gp) and their data files lie
// side by side and name each other relatively: `cd plots && gnuplot loss.gp` redraws a plot, in
// any copy of the run folder.
#pragma once

#include <string>
#include <vector>

namespace mt::training {

struct PlotResult {
  std::vector<std::string> files;  // images written
  std::vector<std::string> notes;  // what was skipped and why
};

PlotResult make_plots(const std::string& run_dir);
bool gnuplot_available();

}  // namespace mt::training
