// tools/cli/trace_cli.h — `seekgrad trace`: the path of one training step's gradient from the loss to a parameter
// (train/trace.h), or, with no --config, chapter 1's traced backward sweep (tools/cli/mlp_demo.h).
//
//   seekgrad trace --config configs/tiny.yaml --stage pretrain --to layers.0.attn.wkv_a.weight [--dot tape.dot]
//                  [--checkpoint]          the model and data position of out_dir/checkpoint instead of step 0
//   seekgrad trace [ch01] [--dot tape.dot]
#pragma once
#include <iosfwd>
#include <string>

namespace sg {

struct TraceCommand {
  std::string chapter;          // "" or "ch01"
  std::string config, stage = "pretrain", to, dot;
  bool from_checkpoint = false;
};

// Prints to `out`; returns the exit status. Errors are thrown ("[trace] ...", "[config] ...").
int run_trace_command(const TraceCommand& cmd, std::ostream& out);

}  // namespace sg
