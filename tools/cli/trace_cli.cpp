// tools/cli/trace_cli.cpp — see trace_cli.h.
#include "tools/cli/trace_cli.h"

#include <ostream>
#include <stdexcept>

#include "tools/cli/mlp_demo.h"
#include "train/trace.h"

namespace sg {

int run_trace_command(const TraceCommand& cmd, std::ostream& out) {
  if (cmd.config.empty()) {
    if (!cmd.to.empty() || cmd.from_checkpoint)
      throw std::runtime_error("[trace] --to and --checkpoint need --config FILE (the run whose step is traced)");
    return demo::trace_chapter1(cmd.dot, out);
  }
  if (!cmd.chapter.empty())
    throw std::runtime_error("[trace] give either a chapter (" + cmd.chapter + ") or --config, not both");
  if (cmd.to.empty()) throw std::runtime_error("[trace] --config needs --to PARAM (e.g. layers.0.attn.wkv_a.weight)");
  TraceRun run = prepare_trace(cmd.config, cmd.stage, out, cmd.from_checkpoint);
  return run_trace(*run.model, *run.stage, cmd.to, out, cmd.dot, run.step);
}

}  // namespace sg
