#include "training/plots.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "base/error.h"
#include "training/files.h"
#include "training/run_log.h"

namespace mt::training {

namespace fs = std::filesystem;

namespace {

// The CSV's header names the features; the units follow the original's five columns.
const char* unit_of(const std::string& feature) { return feature == "volume" ? "BTC" : "USD"; }

// Each plot is drawn twice from one body: PNG for a quick look, SVG for docs.
std::string both_terminals(const std::string& body, const std::string& out_stem, int w, int h) {
  std::string s;
  s += fmt::format("set terminal pngcairo size {},{} noenhanced\nset output '{}.png'\n", w, h,
                   out_stem);
  s += body;
  s += fmt::format("set terminal svg size {},{} noenhanced\nset output '{}.svg'\n", w, h, out_stem);
  s += body + "unset output\n";
  return s;
}

// A path as one single-quoted shell word.
std::string shell_quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

// Runs plot_dir/<script> with plot_dir as the working directory: the scripts name their data
// files relative to it, so a run folder can be moved or copied and its scripts still work.
bool run_gnuplot(const std::string& plot_dir, const std::string& script) {
  const std::string cmd =
      "cd " + shell_quote(plot_dir) + " && gnuplot " + script + " 2>" + script + ".log";
  return std::system(cmd.c_str()) == 0;
}

// loss.{png,svg} from metrics.jsonl; false when the log has no train records.
bool loss_plot(const std::string& run_dir, const std::string& plot_dir) {
  const std::string log = (fs::path(run_dir) / "metrics.jsonl").string();
  if (!path_exists(log)) return false;
  std::string train, val;
  for (const auto& r : read_run_log(log)) {
    const std::string kind = r.value("kind", "");
    if (kind == "train" && r.contains("loss") && r["loss"].is_number()) {
      train += fmt::format("{} {}\n", r["step"].get<int64_t>(), r["loss"].get<double>());
    } else if ((kind == "epoch" || kind == "val") && r.contains("val_loss") &&
               r["val_loss"].is_number()) {
      val += fmt::format("{} {} {}\n", r["step"].get<int64_t>(), r["val_loss"].get<double>(),
                         r["epoch"].get<int>() + 1);
    }
  }
  if (train.empty()) return false;
  write_file_atomic(plot_dir + "/loss_train.dat", train);
  write_file_atomic(plot_dir + "/loss_val.dat", val.empty() ? "# no validation yet\n" : val);
  // The loss is the weighted smooth-L1 of normalized (z-scored) values: it has no unit.
  std::string body =
      "set title 'Loss'\nset xlabel 'optimizer step'\n"
      "set ylabel 'loss (weighted smooth L1 of z-scores, log scale)'\nset logscale y\n"
      "set grid\nset autoscale xfix\nset key below horizontal\n"
      "plot 'loss_train.dat' using 1:2 with lines lw 1 title 'train (mean over each log line)'";
  if (!val.empty())
    body += ", 'loss_val.dat' using 1:2 with linespoints pt 7 lw 2 title 'validation'";
  body += "\n";
  write_file_atomic(plot_dir + "/loss.gp", both_terminals(body, "loss", 1000, 600));
  return run_gnuplot(plot_dir, "loss.gp");
}

// Parses the header of predictions.csv: "window,t,actual_open,...,predicted_open,...".
std::vector<std::string> prediction_features(const std::string& csv) {
  std::ifstream in(csv);
  std::string header;
  std::getline(in, header);
  std::vector<std::string> features;
  std::stringstream ss(header);
  std::string col;
  while (std::getline(ss, col, ',')) {
    if (col.rfind("actual_", 0) == 0) features.push_back(col.substr(7));
  }
  return features;
}

bool prediction_plots(const std::string& plot_dir, const std::string& csv_name, int windows) {
  const std::vector<std::string> features = prediction_features(plot_dir + "/" + csv_name);
  if (features.empty()) return false;
  const int F = static_cast<int>(features.size());
  std::string script;
  // x: the forecast minute within the window, fitted to the data (no padding to the next tic);
  // the key right of the panel, off the curves.
  const std::string common =
      "set datafile separator ','\nset grid\nset autoscale xfix\n"
      "set key outside right top vertical\nset xlabel 'minute of the test window'\n";
  for (int f = 0; f < F; ++f) {
    const int actual_col = 3 + f, pred_col = 3 + F + f;  // window, t, actual..., predicted...
    std::string body = common + fmt::format(
                                    "set multiplot layout {},1 title '{}: next minute, "
                                    "actual vs predicted ({})'\n",
                                    windows, features[f], unit_of(features[f]));
    body += fmt::format("set ylabel '{} ({})'\n", features[f], unit_of(features[f]));
    for (int w = 0; w < windows; ++w) {
      body += fmt::format(
          "set title 'test window {}'\nplot '{}' using ($1=={} ? $2 : NaN):{} with lines lw 1.5 "
          "title 'actual', '' using ($1=={} ? $2 : NaN):{} with lines lw 1 title 'predicted'\n",
          w, csv_name, w, actual_col, w, pred_col);
    }
    body += "unset multiplot\n";
    script += both_terminals(body, "predictions_" + features[f], 1100, 300 * windows);
  }
  std::string body = common + fmt::format(
                                  "set multiplot layout {},1 title 'test window 0, all "
                                  "features'\n",
                                  F);
  for (int f = 0; f < F; ++f) {
    body += fmt::format(
        "set title '{}'\nset ylabel '{}'\nplot '{}' using ($1==0 ? $2 : NaN):{} with lines lw 1.5 "
        "title 'actual', '' using ($1==0 ? $2 : NaN):{} with lines lw 1 title 'predicted'\n",
        features[f], unit_of(features[f]), csv_name, 3 + f, 3 + F + f);
  }
  body += "unset multiplot\n";
  script += both_terminals(body, "window0_all", 1100, 260 * F);
  write_file_atomic(plot_dir + "/predictions.gp", script);
  return run_gnuplot(plot_dir, "predictions.gp");
}

int count_windows(const std::string& csv) {
  std::ifstream in(csv);
  std::string line;
  std::getline(in, line);
  int max_w = -1;
  while (std::getline(in, line)) max_w = std::max(max_w, std::atoi(line.c_str()));
  return max_w + 1;
}

}  // namespace

bool gnuplot_available() {
  return std::system("gnuplot -e 'set terminal pngcairo' >/dev/null 2>&1") == 0;
}

PlotResult make_plots(const std::string& run_dir) {
  PlotResult result;
  CHECK(fs::is_directory(run_dir), "plots: run folder '{}' does not exist", run_dir);
  if (!gnuplot_available()) {
    result.notes.push_back(
        "gnuplot (with the pngcairo terminal) not found: plots skipped; `make deps` installs it");
    return result;
  }
  const std::string run = run_dir;
  const std::string plot_dir = run + "/plots";
  make_dirs(plot_dir);
  if (loss_plot(run, plot_dir)) {
    result.files.push_back(plot_dir + "/loss.png");
    result.files.push_back(plot_dir + "/loss.svg");
  } else {
    result.notes.push_back("loss plot skipped: no train records in metrics.jsonl");
  }
  const std::string csv = run + "/predictions.csv";
  if (!path_exists(csv)) {
    result.notes.push_back("prediction plots skipped: no predictions.csv (run evaluate first)");
    return result;
  }
  fs::copy_file(csv, plot_dir + "/predictions.csv", fs::copy_options::overwrite_existing);
  const int windows = std::max(1, std::min(count_windows(csv), 4));
  if (!prediction_plots(plot_dir, "predictions.csv", windows)) {
    result.notes.push_back("prediction plots failed: see plots/predictions.gp.log");
    return result;
  }
  for (const auto& f : prediction_features(csv)) {
    result.files.push_back(plot_dir + "/predictions_" + f + ".png");
    result.files.push_back(plot_dir + "/predictions_" + f + ".svg");
  }
  result.files.push_back(plot_dir + "/window0_all.png");
  result.files.push_back(plot_dir + "/window0_all.svg");
  return result;
}

}  // namespace mt::training
