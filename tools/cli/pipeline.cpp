// tools/cli/pipeline.cpp — see pipeline.h. The stages run top to bottom in run_reasoning_pipeline.
#include "tools/cli/pipeline.h"

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <sstream>
#include <vector>

#include "autograd/runtime.h"
#include "data/reasoning.h"
#include "models/json.h"
#include "tools/cli/commands.h"
#include "train/config_yaml.h"
#include "train/distill.h"
#include "train/dpo.h"
#include "train/grpo.h"
#include "train/pretrain.h"
#include "train/reasoning_eval.h"
#include "train/sft.h"

namespace sg {
namespace fs = std::filesystem;

namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// DIR/stage.json: written last by a finished stage (tmp + rename), read to skip it on a rerun.
void write_stage_done(const std::string& dir, const Json& summary) {
  const fs::path tmp = fs::path(dir) / "stage.json.tmp";
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    f << summary.dump(2) << "\n";
    if (!f) throw std::runtime_error("[pipeline] " + tmp.string() + ": write failed");
  }
  fs::rename(tmp, fs::path(dir) / "stage.json");
}
std::optional<Json> read_stage_done(const std::string& dir) {
  const fs::path p = fs::path(dir) / "stage.json";
  if (!fs::is_regular_file(p) || !fs::is_regular_file(fs::path(dir) / "model" / "model.safetensors")) return std::nullopt;
  std::ifstream f(p, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return Json::parse(ss.str(), p.string());
}

struct StageRow {
  std::string stage, model_dir;
  std::string tag;             // names its eval file: eval_<tag>.jsonl (the stage, or its out_dir's name when custom)
  double train_seconds = NAN;  // NaN: skipped (done before)
  ProblemEvalResult eval;    // K samples at reasoning.eval_temperature
  ProblemEvalResult greedy;  // one greedy answer per problem
  double eval_seconds = 0;
  std::string compare_to;      // the stage it started from: the paired differences are against that row
};

std::vector<double> per_problem_accuracy(const ProblemEvalResult& r) {
  std::vector<double> a;
  for (const ProblemResult& p : r.problems) a.push_back((double)p.n_correct / (double)std::max<int64_t>(1, r.samples));
  return a;
}

// Paired difference of two evaluations of the same problems: mean and standard error of d_i = b_i − a_i.
void paired_difference(const ProblemEvalResult& a, const ProblemEvalResult& b, double& mean, double& stderr_) {
  std::vector<double> x = per_problem_accuracy(a), y = per_problem_accuracy(b);
  const size_t n = std::min(x.size(), y.size());
  mean = 0;
  for (size_t i = 0; i < n; i++) mean += (y[i] - x[i]) / (double)n;
  double var = 0;
  for (size_t i = 0; i < n; i++) var += (y[i] - x[i] - mean) * (y[i] - x[i] - mean) / (double)std::max<size_t>(1, n - 1);
  stderr_ = std::sqrt(var / (double)std::max<size_t>(1, n));
}

}  // namespace

int run_reasoning_pipeline(const std::string& config_path, std::ostream& out, const std::string& device_override) {
  try {
    const auto t_all = Clock::now();
    PretrainConfig cfg = load_pretrain_config(config_path);
    if (!device_override.empty()) cfg.train.device = device_override;
    const Device device = parse_device(cfg.train.device, cfg.source + ": train.device");
    const std::string root = cfg.train.out_dir;
    const ReasoningConfig& rc = cfg.reasoning;
    const int n_stages = 2 + (cfg.sft.enabled ? 1 : 0) + (cfg.dpo.enabled ? 1 : 0) + (cfg.grpo.enabled ? 1 : 0) + (cfg.distill.enabled ? 1 : 0);
    int stage_no = 0;
    auto banner = [&](const std::string& what) { out << "\n== stage " << ++stage_no << "/" << n_stages << ": " << what << " ==\n"; };
    std::vector<StageRow> rows;

    // The held-out problems every stage is measured on: TEST split, never trained on.
    const std::vector<data::ReasoningProblem> test =
        data::reasoning_split(data::Split::test, rc.seed, (int)rc.eval_problems, (int)rc.level);
    ProblemEvalOptions eo;
    eo.samples = rc.eval_samples;
    eo.temperature = rc.eval_temperature;
    eo.max_new_tokens = rc.max_new_tokens;
    eo.seed = rc.seed;
    eo.system = rc.system_prompt();
    auto evaluate_stage = [&](StageRow& row) {
      const auto t = Clock::now();
      data::Tokenizer tok = data::Tokenizer::load((fs::path(root) / "data" / "tokenizer.bpe").string());
      Transformer model = load_model_dir(row.model_dir);
      model.to(device);
      row.eval = evaluate_problems(model, tok, test, eo);
      ProblemEvalOptions go = eo;
      go.samples = 1;
      go.temperature = 0;
      row.greedy = evaluate_problems(model, tok, test, go);
      row.eval_seconds = seconds_since(t);
      const std::string path = (fs::path(root) / ("eval_" + (row.tag.empty() ? row.stage : row.tag) + ".jsonl")).string();
      write_problem_results_jsonl(row.eval, path);
      out << std::fixed << std::setprecision(1) << "eval (" << row.stage << "): accuracy " << 100 * row.eval.accuracy << "% ± "
          << 100 * row.eval.stderr_accuracy << " on " << test.size() << " test problems x " << eo.samples << " samples (T = "
          << eo.temperature << "), format " << 100 * row.eval.format_rate << "%, mean length " << row.eval.mean_length
          << " tokens; greedy " << std::setprecision(1) << 100 * row.greedy.accuracy << "% ± " << 100 * row.greedy.stderr_accuracy
          << "; " << std::setprecision(0) << row.eval.rollout_tokens_per_s << " tokens/s -> " << path << "\n"
          << std::defaultfloat;
    };
    const std::string tokenizer_path = (fs::path(root) / "data" / "tokenizer.bpe").string();

    // ---- DATA_PREP + PRETRAIN ----
    banner("DATA_PREP + PRETRAIN (stories + worked arithmetic; MLA + DeepSeekMoE + MTP)");
    StageRow pre{"pretrain", (fs::path(root) / "model").string()};
    if (auto done = read_stage_done(root)) {
      out << "done before (" << root << "/stage.json): skipped\n";
    } else {
      const auto t = Clock::now();
      PretrainResult r = pretrain(cfg, out);
      if (r.steps_done < cfg.train.steps) throw std::runtime_error("[pipeline] pretraining stopped at step " + std::to_string(r.steps_done));
      pre.train_seconds = seconds_since(t);
      Json s = Json::object();
      s.set("stage", "pretrain");
      s.set("steps", r.steps_done);
      s.set("final_val_loss", r.final_val_loss);
      s.set("seconds", pre.train_seconds);
      copy_tokenizer_into(tokenizer_path, pre.model_dir);
      write_stage_done(root, s);
    }
    evaluate_stage(pre);
    rows.push_back(pre);

    // ---- SFT ----
    std::string last_model = pre.model_dir;
    if (cfg.sft.enabled) {
      banner("SFT (cold start: worked solutions in the chat template, loss on the assistant's tokens)");
      const std::string dir = cfg.sft.out_dir.empty() ? (fs::path(root) / "sft").string() : cfg.sft.out_dir;
      StageRow row{"sft", (fs::path(dir) / "model").string()};
      row.compare_to = "pretrain";
      if (read_stage_done(dir)) {
        out << "done before (" << dir << "/stage.json): skipped\n";
      } else {
        const auto t = Clock::now();
        SftResult r = run_sft(cfg, pre.model_dir, tokenizer_path, out);
        if (r.steps_done < cfg.sft.steps) throw std::runtime_error("[pipeline] SFT stopped at step " + std::to_string(r.steps_done));
        row.train_seconds = seconds_since(t);
        Json s = Json::object();
        s.set("stage", "sft");
        s.set("steps", r.steps_done);
        s.set("final_val_loss", r.final_val_loss);
        s.set("final_val_accuracy", r.final_val_accuracy);
        s.set("seconds", row.train_seconds);
        write_stage_done(dir, s);
      }
      evaluate_stage(row);
      rows.push_back(row);
      last_model = row.model_dir;
    }

    // ---- DPO (a branch from SFT or the base model: GRPO still starts from SFT) ----
    std::string dpo_model;
    if (cfg.dpo.enabled) {
      banner("DPO (pairs from the model's own samples, ranked by the accuracy + format reward)");
      const std::string dir = cfg.dpo.out_dir.empty() ? (fs::path(root) / "dpo").string() : cfg.dpo.out_dir;
      const std::string init = cfg.dpo.init == "pretrain" ? pre.model_dir : last_model;
      StageRow row{"dpo", (fs::path(dir) / "model").string()};
      row.compare_to = cfg.dpo.init == "pretrain" ? "pretrain" : (cfg.sft.enabled ? "sft" : "pretrain");
      if (read_stage_done(dir)) {
        out << "done before (" << dir << "/stage.json): skipped\n";
      } else {
        const auto t = Clock::now();
        DpoResult r = run_dpo(cfg, init, tokenizer_path, out);
        if (r.steps_done < cfg.dpo.steps) throw std::runtime_error("[pipeline] DPO stopped at step " + std::to_string(r.steps_done));
        row.train_seconds = seconds_since(t);
        Json s = Json::object();
        s.set("stage", "dpo");
        s.set("steps", r.steps_done);
        s.set("pairs", r.n_pairs);
        s.set("sampled_completions", r.sampling.completions);
        s.set("final_loss", r.final_loss);
        s.set("final_reward_accuracy", r.final_reward_accuracy);
        s.set("final_val_accuracy", r.final_val_accuracy);
        s.set("seconds", row.train_seconds);
        write_stage_done(dir, s);
        out << std::fixed << std::setprecision(3) << "dpo: " << r.n_pairs << " pairs from " << r.sampling.completions
            << " sampled completions; loss " << r.first_loss << " -> " << r.final_loss << ", last batch's reward accuracy "
            << r.final_reward_accuracy << ", margin " << r.final_reward_margin << "\n" << std::defaultfloat;
      }
      evaluate_stage(row);
      rows.push_back(row);
      dpo_model = row.model_dir;
    }

    // ---- GRPO ----
    std::string grpo_dir;
    if (cfg.grpo.enabled) {
      banner(cfg.grpo.init == "pretrain" ? "GRPO from the base model (R1-Zero)" : "GRPO (R1: accuracy + format rewards)");
      const std::string dir = cfg.grpo.out_dir.empty() ? (fs::path(root) / "grpo").string() : cfg.grpo.out_dir;
      const std::string init = cfg.grpo.init == "pretrain" ? pre.model_dir : last_model;
      StageRow row{"grpo", (fs::path(dir) / "model").string()};
      row.compare_to = cfg.grpo.init == "pretrain" || !cfg.sft.enabled ? "pretrain" : "sft";
      if (!cfg.grpo.out_dir.empty()) row.tag = fs::path(cfg.grpo.out_dir).filename().string();  // e.g. r1zero
      grpo_dir = dir;
      if (read_stage_done(dir)) {
        out << "done before (" << dir << "/stage.json): skipped\n";
      } else {
        const auto t = Clock::now();
        GrpoResult r = run_grpo(cfg, init, tokenizer_path, out);
        if (r.steps_done < cfg.grpo.steps) throw std::runtime_error("[pipeline] GRPO stopped at step " + std::to_string(r.steps_done));
        row.train_seconds = seconds_since(t);
        Json s = Json::object();
        s.set("stage", "grpo");
        s.set("steps", r.steps_done);
        s.set("first_reward", r.first_reward);
        s.set("final_reward", r.final_reward);
        s.set("final_val_accuracy", r.final_val_accuracy);
        s.set("rollout_tokens_per_s", r.mean_rollout_tokens_per_s);
        s.set("seconds", row.train_seconds);
        write_stage_done(dir, s);
        out << std::fixed << std::setprecision(3) << "grpo: rollout reward " << r.first_reward << " -> " << r.final_reward
            << ", batched sampling " << std::setprecision(0) << r.mean_rollout_tokens_per_s << " new tokens/s\n" << std::defaultfloat;
      }
      evaluate_stage(row);
      rows.push_back(row);
      last_model = row.model_dir;
    }

    // ---- DISTILL (the teacher — the GRPO model, else the model EXPORT takes — into a smaller student, three ways) ----
    if (!cfg.grpo.enabled && !dpo_model.empty()) last_model = dpo_model;  // a DPO-only config exports DPO's model
    std::vector<std::string> distill_lines;  // printed under the table
    if (cfg.distill.enabled) {
      banner("DISTILL (a smaller student: logit KD, SFT on the teacher's reward-filtered traces, and alone)");
      const std::string dir = cfg.distill.out_dir.empty() ? (fs::path(root) / "distill").string() : cfg.distill.out_dir;
      const std::string teacher_stage = rows.back().stage;  // GRPO's row when it ran (DPO's when it is the export)
      const std::string teacher_dir = last_model;
      // Done before: stage.json lists the students it trained, and each one's model is there.
      std::optional<Json> done;
      if (fs::is_regular_file(fs::path(dir) / "stage.json")) {
        std::ifstream f(fs::path(dir) / "stage.json", std::ios::binary);
        std::stringstream ss;
        ss << f.rdbuf();
        done = Json::parse(ss.str(), (fs::path(dir) / "stage.json").string());
        for (const Json& st : done->at("students").elements())
          if (st.at("trained").get_bool() && !fs::is_regular_file(fs::path(st.at("model_dir").get_string()) / "model.safetensors"))
            done.reset();
        if (done && done->at("teacher").get_string() != teacher_dir)  // its students' checkpoints belong to that teacher
          throw std::runtime_error("[pipeline] " + (fs::path(dir) / "stage.json").string() + " was distilled from " +
                                   done->at("teacher").get_string() + ", this run's teacher is " + teacher_dir +
                                   ": remove " + dir + " to distill again");
      }
      const auto t = Clock::now();
      const bool ran = !done;
      if (done) {
        out << "done before (" << dir << "/stage.json): skipped\n";
      } else {
        DistillResult r = run_distill(cfg, teacher_dir, tokenizer_path, out);
        Json s = Json::object();
        s.set("stage", "distill");
        s.set("teacher", teacher_dir);
        s.set("teacher_parameters", r.teacher_parameters);
        s.set("student_parameters", r.student_parameters);
        s.set("teacher_tokens_per_s", r.teacher_tokens_per_s);
        s.set("student_tokens_per_s", r.student_tokens_per_s);
        s.set("trace_samples", r.traces.samples);
        s.set("traces_correct", r.traces.correct);
        s.set("traces_kept", r.traces.kept);
        s.set("trace_accuracy", r.traces.sampled_accuracy);
        Json students = Json::array();
        for (const StudentResult& sr : r.students) {
          if (sr.trained && sr.steps_done < cfg.distill.steps)
            throw std::runtime_error("[pipeline] DISTILL: " + sr.name + " stopped at step " + std::to_string(sr.steps_done));
          Json j = Json::object();
          j.set("name", sr.name);
          j.set("trained", sr.trained);
          j.set("model_dir", sr.model_dir);
          j.set("examples", sr.examples);
          j.set("target_tokens", sr.target_tokens);
          j.set("final_val_ce", sr.final_val_ce);
          j.set("final_val_kl", sr.final_val_kl);
          j.set("final_val_accuracy", sr.final_val_accuracy);
          j.set("train_seconds", sr.train_seconds);
          students.push_back(j);
        }
        s.set("students", students);
        s.set("seconds", seconds_since(t));
        write_stage_done(dir, s);
        done = s;
      }
      const Json& d = *done;
      for (const Json& st : d.at("students").elements()) {
        const std::string name = st.at("name").get_string();
        if (!st.at("trained").get_bool()) {
          distill_lines.push_back(name + ": not trained (no trace of the teacher's was correct and complete)");
          continue;
        }
        StageRow row;
        row.stage = name;
        row.model_dir = st.at("model_dir").get_string();
        row.compare_to = name == student_name(StudentKind::alone) ? teacher_stage : student_name(StudentKind::alone);
        row.train_seconds = ran ? st.at("train_seconds").get_double() : NAN;
        evaluate_stage(row);
        rows.push_back(row);
        std::ostringstream l;
        l << std::fixed << std::setprecision(3) << name << ": " << st.at("examples").get_int() << " training examples, "
          << st.at("target_tokens").get_int() << " assistant tokens trained on; val CE " << st.at("final_val_ce").get_double()
          << ", val KL(teacher || student) " << st.at("final_val_kl").get_double();
        distill_lines.push_back(l.str());
      }
      const double tp = (double)d.at("teacher_parameters").get_int(), sp = (double)d.at("student_parameters").get_int();
      const double tt = d.at("teacher_tokens_per_s").get_double(), stps = d.at("student_tokens_per_s").get_double();
      std::ostringstream l;
      l << std::fixed << std::setprecision(1) << "distill: teacher (" << teacher_stage << ") " << (int64_t)tp << " parameters, "
        << std::setprecision(0) << tt << " tokens/s; student " << (int64_t)sp << " parameters (" << std::setprecision(1) << tp / std::max(1.0, sp)
        << "x fewer), " << std::setprecision(0) << stps << " tokens/s (" << std::setprecision(1) << stps / std::max(1e-9, tt)
        << "x; greedy generation, the same prompts and lengths); traces: " << d.at("traces_kept").get_int() << " kept of "
        << d.at("trace_samples").get_int() << " teacher samples (" << 100 * d.at("trace_accuracy").get_double() << "% correct)";
      distill_lines.insert(distill_lines.begin(), l.str());
    }

    // ---- EXPORT ----
    banner("EXPORT (HuggingFace layout)");
    // root/export, or a custom GRPO out_dir's own export/ (two configs may share one pretraining root)
    const std::string hf = (!grpo_dir.empty() && !cfg.grpo.out_dir.empty() ? fs::path(grpo_dir) / "export" : fs::path(root) / "export").string();
    cli::ExportResult ex = cli::export_hf_model(last_model, hf, tokenizer_path, nullptr);
    out << "exported " << last_model << " -> " << hf << " (" << ex.n_parameters << " parameters, " << ex.bytes << " bytes)\n";

    // ---- the table ----
    out << "\n== held-out accuracy (" << test.size() << " test-split problems of level " << rc.level << ", " << eo.samples
        << " samples each at T = " << eo.temperature << ", never seen in training) ==\n";
    out << "stage           accuracy (T=" << std::setprecision(2) << eo.temperature << ")  greedy            pass@" << eo.samples
        << "   format   mean length   train time   model\n" << std::defaultfloat;
    for (const StageRow& r : rows) {
      std::ostringstream acc, gr, tt;
      acc << std::fixed << std::setprecision(1) << 100 * r.eval.accuracy << "% ± " << 100 * r.eval.stderr_accuracy;
      gr << std::fixed << std::setprecision(1) << 100 * r.greedy.accuracy << "% ± " << 100 * r.greedy.stderr_accuracy;
      if (std::isnan(r.train_seconds)) tt << "(done before)";
      else tt << std::fixed << std::setprecision(0) << r.train_seconds << " s";
      out << std::left << std::setw(16) << r.stage << std::setw(19) << acc.str() << std::setw(18) << gr.str() << std::right << std::fixed << std::setprecision(1)
          << std::setw(6) << 100 * r.eval.pass_at_k << "%" << std::setw(8) << 100 * r.eval.format_rate << "%" << std::setw(14)
          << r.eval.mean_length << std::setw(15) << tt.str() << "   " << r.model_dir << "\n";
    }
    out << std::defaultfloat;
    for (size_t i = 1; i < rows.size(); i++) {
      size_t base = i - 1;  // the row of the stage it started from
      for (size_t j = 0; j < i; j++)
        if (rows[j].stage == rows[i].compare_to) base = j;
      for (int g = 0; g < 2; g++) {
        double d = 0, se = 0;
        if (g == 0) paired_difference(rows[base].eval, rows[i].eval, d, se);
        else paired_difference(rows[base].greedy, rows[i].greedy, d, se);
        const double z = se > 0 ? d / se : (d == 0 ? 0 : INFINITY);
        out << std::fixed << std::setprecision(1) << rows[i].stage << " - " << rows[base].stage << (g == 0 ? " (sampled): " : " (greedy):  ")
            << std::showpos << 100 * d << std::noshowpos << " points, paired std error " << 100 * se << ", z = " << std::setprecision(2) << z
            << (std::fabs(z) > 2 ? "  (beyond the noise)" : "  (within the noise)") << "\n" << std::defaultfloat;
      }
    }
    for (const std::string& l : distill_lines) out << l << "\n";
    out << "files: " << root << "/{metrics.csv, loss.png, model/, eval_*.jsonl, export/}"
        << (cfg.sft.enabled ? ", " + root + "/sft/{metrics.csv, loss.png, model/}" : "")
        << (cfg.dpo.enabled ? ", " + root + "/dpo/{metrics.csv, pairs.jsonl, loss.png, rewards.png, model/}" : "")
        << (cfg.grpo.enabled ? ", " + root + "/grpo/{metrics.csv, reward.png, length.png, model/}" : "")
        << (cfg.distill.enabled ? ", " + (cfg.distill.out_dir.empty() ? root + "/distill" : cfg.distill.out_dir) +
                                      "/{traces.jsonl, loss.png, distill-kd/, distill-traces/, student-alone/}"
                                : "") << "\n"
        << std::fixed << std::setprecision(1) << "pipeline wall time " << seconds_since(t_all) << " s\n" << std::defaultfloat;
    return 0;
  } catch (const std::exception& e) {
    std::cerr << e.what() << "\n";
    return 1;
  }
}

}  // namespace sg
