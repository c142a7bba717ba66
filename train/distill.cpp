// train/distill.cpp — see distill.h. Reads top to bottom: the traces (sampled, filtered), size and speed, the
// stage, run_distill.
#include "train/distill.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <numeric>
#include <sstream>
#include <stdexcept>

#include "autograd/node.h"
#include "models/generate.h"
#include "models/json.h"
#include "ops/ops.h"
#include "train/checkpoint.h"
#include "train/metrics.h"
#include "train/plot.h"
#include "train/post_stage.h"
#include "train/reasoning_eval.h"
#include "train/rewards.h"
#include "train/schedule.h"

namespace sg {
namespace fs = std::filesystem;

namespace {

[[noreturn]] void fail(const std::string& msg) { throw std::runtime_error("[distill] " + msg); }

uint64_t mix(uint64_t a, uint64_t b) {
  uint64_t x = a * 0x9e3779b97f4a7c15ULL ^ (b + 0x632be59bd9b4e019ULL) * 0xbf58476d1ce4e5b9ULL;
  return x ^ (x >> 31);
}

int64_t eot_of(const data::Tokenizer& tok) {
  auto eot = tok.find_token("<|endoftext|>");
  if (!eot) fail("the tokenizer has no <|endoftext|> token");
  return *eot;
}

std::string decode64(const data::Tokenizer& tok, const std::vector<int64_t>& ids) {
  return tok.decode(std::vector<int32_t>(ids.begin(), ids.end()));
}

}  // namespace

const char* student_name(StudentKind kind) {
  switch (kind) {
    case StudentKind::kd: return "distill-kd";
    case StudentKind::traces: return "distill-traces";
    case StudentKind::alone: return "student-alone";
  }
  return "?";
}

// ---- the traces --------------------------------------------------------------------------------------------

std::vector<data::SftTokens> select_correct_traces(const data::Tokenizer& tok, const std::vector<std::vector<int64_t>>& prompts,
                                                   const std::vector<std::vector<int64_t>>& completions,
                                                   const std::vector<data::ReasoningProblem>& problems, int64_t eot,
                                                   TraceStats* stats) {
  if (completions.size() != prompts.size() || problems.size() != prompts.size())
    fail("select_correct_traces: " + std::to_string(prompts.size()) + " prompts need as many completions (" +
         std::to_string(completions.size()) + ") and problems (" + std::to_string(problems.size()) + ")");
  TraceStats st;
  st.samples = (int64_t)completions.size();
  std::vector<data::SftTokens> kept;
  int64_t kept_tokens = 0;
  for (size_t i = 0; i < completions.size(); i++) {
    const RewardTerms r = compute_rewards(decode64(tok, completions[i]), problems[i]);
    st.sampled_accuracy += r.accuracy;
    st.sampled_format += r.format;
    if (r.accuracy != 1.0) continue;
    st.correct++;
    if (completions[i].empty() || completions[i].back() != eot) continue;  // ran out of budget: it did not stop by itself
    data::SftTokens ex;
    for (int64_t id : prompts[i]) ex.ids.push_back((int32_t)id), ex.loss_mask.push_back(0);
    for (int64_t id : completions[i]) ex.ids.push_back((int32_t)id), ex.loss_mask.push_back(1);
    ex.prompt_tokens = prompts[i].size();
    kept_tokens += (int64_t)completions[i].size();
    kept.push_back(std::move(ex));
  }
  st.kept = (int64_t)kept.size();
  const double n = (double)std::max<int64_t>(1, st.samples);
  st.sampled_accuracy /= n;
  st.sampled_format /= n;
  st.kept_mean_tokens = st.kept ? (double)kept_tokens / (double)st.kept : 0.0;
  if (stats) *stats = st;
  return kept;
}

std::vector<data::SftTokens> sample_teacher_traces(Transformer& teacher, const data::Tokenizer& tok,
                                                   const std::vector<data::ReasoningProblem>& pool, int64_t n_prompts,
                                                   int64_t samples, double temperature, int64_t max_new_tokens,
                                                   const std::string& system, uint64_t seed, TraceStats* stats,
                                                   std::vector<data::ReasoningProblem>* problems_out) {
  if (pool.empty()) fail("no problems to sample traces from");
  if (samples < 1) fail("trace_samples must be >= 1, got " + std::to_string(samples));
  n_prompts = std::min<int64_t>(n_prompts, (int64_t)pool.size());
  NoGradGuard no_grad;
  const int64_t eot = eot_of(tok);
  std::vector<size_t> order(pool.size());  // n distinct problems: the first n of a seeded shuffle of the pool
  std::iota(order.begin(), order.end(), size_t{0});
  Rng rng(mix(seed, 1));
  for (size_t i = order.size(); i > 1; i--) std::swap(order[i - 1], order[(size_t)rng.randint(i)]);
  std::vector<std::vector<int64_t>> prompts;
  std::vector<data::ReasoningProblem> problems;
  std::vector<uint64_t> seeds;
  for (int64_t p = 0; p < n_prompts; p++) {
    const data::ReasoningProblem& q = pool[order[(size_t)p]];
    const std::vector<int32_t> ids = tok.encode(data::render_prompt(q, system));
    for (int64_t s = 0; s < samples; s++) {
      prompts.emplace_back(ids.begin(), ids.end());
      problems.push_back(q);
      seeds.push_back(mix(seed, (uint64_t)(p * samples + s) + 2));
    }
  }
  SamplingConfig sc;
  sc.temperature = temperature;
  BatchGenerateStats gs;
  const std::vector<std::vector<int64_t>> completions = generate_batch(teacher, prompts, max_new_tokens, sc, seeds, eot, &gs);
  TraceStats st;
  std::vector<data::SftTokens> kept = select_correct_traces(tok, prompts, completions, problems, eot, &st);
  if (problems_out) {
    problems_out->clear();
    for (size_t i = 0; i < completions.size(); i++)
      if (!completions[i].empty() && completions[i].back() == eot && accuracy_reward(decode64(tok, completions[i]), problems[i]) == 1.0)
        problems_out->push_back(problems[i]);
  }
  st.prompts = n_prompts;
  st.seconds = gs.seconds;
  st.tokens_per_s = gs.new_tokens_per_s;
  if (stats) *stats = st;
  return kept;
}

std::string describe_traces(const TraceStats& s, double temperature) {
  std::ostringstream o;
  o << std::fixed << std::setprecision(1) << s.prompts << " prompts x " << (s.prompts ? s.samples / s.prompts : 0)
    << " samples at T = " << temperature << " (accuracy " << 100 * s.sampled_accuracy << "%, format " << 100 * s.sampled_format
    << "%) -> " << s.correct << " correct, " << s.kept << " kept (stopped by themselves; " << s.kept_mean_tokens
    << " tokens each); " << std::setprecision(2) << s.seconds << " s of sampling (" << std::setprecision(0) << s.tokens_per_s
    << " tokens/s)";
  return o.str();
}

// ---- size and speed ----------------------------------------------------------------------------------------

int64_t generation_parameters(Transformer& model) {
  int64_t n = 0;
  for (auto& [name, t] : model.named_parameters())
    if (name.rfind("mtp.", 0) != 0) n += t->numel();
  return n;
}

double generation_tokens_per_s(Transformer& model, const std::vector<std::vector<int64_t>>& prompts, int64_t new_tokens,
                               int repeats) {
  if (prompts.empty() || new_tokens < 1) fail("generation_tokens_per_s: no prompts or no new tokens");
  SamplingConfig greedy;
  std::vector<uint64_t> seeds(prompts.size(), 0);
  double best = 0;
  for (int r = 0; r < std::max(1, repeats); r++) {
    BatchGenerateStats gs;
    generate_batch(model, prompts, new_tokens, greedy, seeds, /*stop_token=*/-1, &gs);
    best = std::max(best, gs.new_tokens_per_s);
  }
  return best;
}

// ---- DistillStage ------------------------------------------------------------------------------------------

DistillStage::DistillStage(Transformer& student, const Transformer* teacher, const data::Tokenizer& tok, const DistillConfig& cfg,
                           const ReasoningConfig& reasoning, StudentKind kind, std::vector<data::SftTokens> train,
                           std::vector<data::SftTokens> val, std::vector<data::ReasoningProblem> eval_problems, uint64_t seed)
    : student_(student), teacher_(teacher), tok_(tok), cfg_(cfg), reasoning_(reasoning), kind_(kind), train_(std::move(train)),
      val_(std::move(val)), eval_problems_(std::move(eval_problems)), seed_(seed) {
  if (train_.empty()) fail(std::string(student_name(kind_)) + ": no training examples");
  if (kind_ == StudentKind::kd && !teacher_) fail("distill-kd needs a teacher");
  if (teacher_ && teacher_->args.vocab_size != student_.args.vocab_size)
    fail("the teacher's vocab_size " + std::to_string(teacher_->args.vocab_size) + " differs from the student's " +
         std::to_string(student_.args.vocab_size) + " (a student keeps the teacher's tokenizer)");
  pad_id_ = eot_of(tok_);
  append_epoch();
}

std::vector<std::string> DistillStage::loss_terms() const {
  if (kind_ == StudentKind::kd) return {"kd", "ce", "balance"};
  return {"ce", "balance"};
}

std::vector<std::string> DistillStage::step_metrics() const {
  if (kind_ == StudentKind::kd) return {"examples", "target_tokens", "kl", "agreement"};
  return {"examples", "target_tokens"};
}

// Epoch e's order: Fisher–Yates with Rng(seed, e), appended after the epochs before it.
void DistillStage::append_epoch() {
  std::vector<size_t> o(train_.size());
  std::iota(o.begin(), o.end(), size_t{0});
  Rng rng(mix(seed_, (uint64_t)epochs_ + 1));
  for (size_t i = o.size(); i > 1; i--) std::swap(o[i - 1], o[(size_t)rng.randint(i)]);
  order_.insert(order_.end(), o.begin(), o.end());
  epochs_++;
}

void DistillStage::make_batch(int64_t step) {
  if (step != loads_step_) {
    step_loads_.clear();
    loads_step_ = step;
    step_examples_ = step_targets_ = 0;
  }
  // Enough examples ahead for a full batch: every row could hold B·T tokens' worth of the shortest example.
  size_t shortest = train_[0].ids.size();
  for (const data::SftTokens& e : train_) shortest = std::min(shortest, e.ids.size());
  const size_t need = (size_t)(cfg_.batch_size * cfg_.seq_len) / std::max<size_t>(1, shortest) + (size_t)cfg_.batch_size + 1;
  while (order_.size() - next_ < need) append_epoch();
  batch_ = pack_sft_rows(train_, order_, next_, cfg_.batch_size, cfg_.seq_len, pad_id_, /*wrap=*/false);
  step_examples_ += batch_.examples;
  step_targets_ += batch_.target_tokens;
  if (kind_ == StudentKind::kd) {
    NoGradGuard no_grad;  // the teacher's logits of the same rows: constants of the loss
    const Tensor z = teacher_->forward(batch_.tokens, 0, nullptr, batch_.segment_ids);  // [B,T,V]
    teacher_logits_ = reshape(z, {z.size(0) * z.size(1), z.size(2)});
  }
}

BatchLoss DistillStage::batch_loss(int64_t step) {
  (void)step;
  const Device dev = student_.device();
  std::vector<BlockAux> aux;
  const Tensor h = student_.hidden(batch_.tokens, 0, nullptr, nullptr, &aux, nullptr, batch_.segment_ids);
  const Tensor logits = student_.logits_from_hidden(h);  // [B,T,V]
  const Tensor targets = batch_.targets.to(dev);
  const Tensor ce = cross_entropy(logits, targets);
  Tensor total = ce;
  std::vector<double> terms;
  if (kind_ == StudentKind::kd) {
    Tensor mask;
    {
      NoGradGuard no_grad;
      const std::vector<int64_t> t = batch_.targets.to_i64_vector();
      std::vector<float> m(t.size());
      for (size_t i = 0; i < t.size(); i++) m[i] = t[i] != -100 ? 1.0f : 0.0f;
      mask = Tensor::from_vector(m, {(int64_t)m.size()});
    }
    last_kd_ = kd_loss(reshape(logits, {logits.size(0) * logits.size(1), logits.size(2)}), teacher_logits_, cfg_.temperature, mask);
    const double a = cfg_.kd_weight;
    total = add(mul(last_kd_.loss, a), mul(ce, 1.0 - a));
    terms.push_back(last_kd_.loss.item());
  }
  // The sequence-wise balance loss of every MoE block, as Transformer::loss adds it (mean over the blocks).
  std::vector<std::vector<int64_t>> loads;
  Tensor bal;
  int n_moe = 0;
  for (const BlockAux& a : aux) {
    if (!a.moe_ran) continue;
    loads.push_back(a.moe.stats.tokens_per_expert);
    n_moe++;
    if (cfg_.balance_alpha != 0.0) {
      Tensor b = mean(MoE::balance_loss(a.moe, cfg_.balance_alpha));
      bal = bal.defined() ? add(bal, b) : b;
    }
  }
  double bal_value = 0;
  if (bal.defined()) {
    bal = mul(bal, 1.0 / (double)n_moe);
    total = add(total, bal);
    bal_value = bal.item();
  }
  if (!loads.empty()) add_expert_loads(step_loads_, loads);
  terms.push_back(ce.item());
  terms.push_back(bal_value);
  return BatchLoss{total, terms};
}

void DistillStage::update_biases() {
  if (cfg_.bias_gamma > 0 && !step_loads_.empty()) student_.update_gate_biases(step_loads_, cfg_.bias_gamma);
}

std::vector<double> DistillStage::step_metric_values() {
  std::vector<double> v = {(double)step_examples_, (double)step_targets_};
  if (kind_ == StudentKind::kd) v.push_back(last_kd_.kl), v.push_back(last_kd_.agreement);
  return v;
}

std::vector<double> DistillStage::evaluate(int64_t step) {
  (void)step;
  double val_ce = NAN, val_kl = NAN;
  if (!val_.empty()) {
    NoGradGuard no_grad;
    std::vector<size_t> order(val_.size());
    std::iota(order.begin(), order.end(), size_t{0});
    size_t next = 0;
    double ce_sum = 0, kl_sum = 0;
    int64_t n = 0;
    while (next < order.size()) {  // every val example once; token-weighted means
      PackedBatch vb = pack_sft_rows(val_, order, next, cfg_.batch_size, cfg_.seq_len, pad_id_, false);
      if (vb.target_tokens == 0) break;
      const Tensor z = student_.forward(vb.tokens, 0, nullptr, vb.segment_ids);
      ce_sum += cross_entropy(z, vb.targets.to(z.device())).item() * (double)vb.target_tokens;
      if (teacher_) {
        const Tensor zt = teacher_->forward(vb.tokens, 0, nullptr, vb.segment_ids);
        const std::vector<int64_t> t = vb.targets.to_i64_vector();
        std::vector<float> m(t.size());
        for (size_t i = 0; i < t.size(); i++) m[i] = t[i] != -100 ? 1.0f : 0.0f;
        const int64_t BT = z.size(0) * z.size(1), V = z.size(2);
        kl_sum += kd_loss(reshape(z, {BT, V}), reshape(zt, {BT, V}), 1.0, Tensor::from_vector(m, {BT})).kl * (double)vb.target_tokens;
      }
      n += vb.target_tokens;
    }
    if (n > 0) {
      val_ce = ce_sum / (double)n;
      if (teacher_) val_kl = kl_sum / (double)n;
    }
  }
  double val_acc = NAN;
  if (!eval_problems_.empty()) {
    ProblemEvalOptions eo;
    eo.samples = 1;
    eo.temperature = 0;
    eo.max_new_tokens = reasoning_.max_new_tokens;
    eo.seed = reasoning_.seed;
    eo.system = reasoning_.system_prompt();
    val_acc = evaluate_problems(student_, tok_, eval_problems_, eo).accuracy;
  }
  return {val_ce, val_kl, val_acc};
}

void DistillStage::save_state(TrainerState& state) const {
  Json s = Json::object();
  s.set("epochs", epochs_);
  s.set("next", (int64_t)next_);
  s.set("examples", (int64_t)train_.size());
  state.extra.set("distill", s);
}

void DistillStage::load_state(const TrainerState& state) {
  const Json* s = state.extra.find("distill");
  if (!s) fail("the checkpoint has no 'distill' state (was it written by another stage?)");
  if (s->at("examples").get_int() != (int64_t)train_.size())
    fail(std::string(student_name(kind_)) + ": the checkpoint was written with " + std::to_string(s->at("examples").get_int()) +
         " training examples, this run has " + std::to_string(train_.size()) + " (another distill section or teacher?)");
  const int64_t epochs = s->at("epochs").get_int();
  order_.clear();
  epochs_ = 0;
  while (epochs_ < epochs) append_epoch();
  next_ = (size_t)s->at("next").get_int();
  if (next_ > order_.size()) fail("checkpoint position " + std::to_string(next_) + " is past its " + std::to_string(order_.size()) + " examples");
}

// ---- run_distill -------------------------------------------------------------------------------------------

namespace {

void write_traces_jsonl(const std::vector<data::SftTokens>& traces, const std::vector<data::ReasoningProblem>& problems,
                        const data::Tokenizer& tok, const std::string& path) {
  std::string text;
  for (size_t i = 0; i < traces.size(); i++) {
    const data::SftTokens& t = traces[i];
    Json line = Json::object();
    line.set("expression", problems[i].expression);
    line.set("answer", problems[i].answer);
    line.set("completion", tok.decode(std::vector<int32_t>(t.ids.begin() + (std::ptrdiff_t)t.prompt_tokens, t.ids.end())));
    text += line.dump() + "\n";
  }
  const std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    if (!f) fail("cannot write " + tmp);
    f.write(text.data(), (std::streamsize)text.size());
    if (!f) fail("write failed: " + tmp);
  }
  fs::rename(tmp, path);
}

}  // namespace

DistillResult run_distill(const PretrainConfig& cfg, const std::string& teacher_model_dir, const std::string& tokenizer_path,
                          std::ostream& log, bool progress) {
  const auto t0 = std::chrono::steady_clock::now();
  const DistillConfig& dc = cfg.distill;
  const ReasoningConfig& rc = cfg.reasoning;
  PostStageStart start = start_post_stage(cfg, "distill", dc.out_dir, teacher_model_dir, tokenizer_path);
  const std::string& out_dir = start.out_dir;
  const data::Tokenizer& tok = start.tok;
  Transformer& teacher = start.model;
  const ModelArgs student_args = distill_student_args(teacher.args, dc, cfg.source);

  DistillResult res;
  res.out_dir = out_dir;
  // The data: worked solutions (kd, alone), the teacher's kept traces (traces), val-split worked solutions.
  const std::vector<data::SftTokens> worked = make_sft_examples(tok, sft_problems(rc, data::Split::train, dc.n_problems), rc.system_prompt());
  const std::vector<data::ReasoningProblem> val_problems = sft_problems(rc, data::Split::val, dc.eval_problems);
  const std::vector<data::SftTokens> val = make_sft_examples(tok, val_problems, rc.system_prompt());
  // The same train-split pool (and seed stream) as GRPO's prompts.
  const std::vector<data::ReasoningProblem> pool = data::reasoning_split(data::Split::train, rc.seed + 1, 4000, (int)rc.level);
  std::vector<data::ReasoningProblem> trace_problems;
  const std::vector<data::SftTokens> traces =
      sample_teacher_traces(teacher, tok, pool, dc.trace_prompts, dc.trace_samples, dc.trace_temperature, rc.max_new_tokens,
                            rc.system_prompt(), cfg.train.seed + 41, &res.traces, &trace_problems);
  log << "distill: traces from the teacher (" << teacher_model_dir << "): " << describe_traces(res.traces, dc.trace_temperature) << "\n";
  write_traces_jsonl(traces, trace_problems, tok, (fs::path(out_dir) / "traces.jsonl").string());

  {
    // Size and speed: every student has the same shape, so one probe of it; greedy generation with no stop token on
    // the same prompts, so the teacher and the student write exactly as many tokens.
    Rng probe_rng(cfg.train.seed + 40);
    Transformer probe(student_args, probe_rng);
    probe.to(teacher.device());
    res.teacher_parameters = generation_parameters(teacher);
    res.student_parameters = generation_parameters(probe);
    std::vector<std::vector<int64_t>> prompts;
    int64_t longest = 0;
    for (size_t i = 0; i < std::min<size_t>(16, val_problems.size()); i++) {
      const std::vector<int32_t> ids = tok.encode(data::render_prompt(val_problems[i], rc.system_prompt()));
      prompts.emplace_back(ids.begin(), ids.end());
      longest = std::max<int64_t>(longest, (int64_t)ids.size());
    }
    const int64_t room = std::min(probe.args.max_seq_len, teacher.args.max_seq_len) - longest;
    const int64_t n_new = std::max<int64_t>(1, std::min<int64_t>(rc.max_new_tokens, room));
    for (int r = 0; r < 3; r++) {  // alternated, the best of each: a busy machine slows both alike
      res.teacher_tokens_per_s = std::max(res.teacher_tokens_per_s, generation_tokens_per_s(teacher, prompts, n_new, 1));
      res.student_tokens_per_s = std::max(res.student_tokens_per_s, generation_tokens_per_s(probe, prompts, n_new, 1));
    }
  }
  log << "distill: teacher " << res.teacher_parameters << " parameters (" << teacher.args.n_layers << " layers, dim " << teacher.args.dim
      << "), student " << res.student_parameters << " (" << student_args.n_layers << (student_args.n_layers == 1 ? " layer" : " layers") << ", dim " << student_args.dim
      << "); MTP modules not counted; each student " << dc.steps << " steps x " << dc.batch_size << " rows x " << dc.seq_len
      << " tokens, T = " << dc.temperature << ", kd_weight " << dc.kd_weight << "\n";

  const LrSchedule schedule = post_schedule(dc);
  std::vector<Series> curves;
  for (StudentKind kind : {StudentKind::alone, StudentKind::kd, StudentKind::traces}) {
    StudentResult sr;
    sr.name = student_name(kind);
    const std::string dir = (fs::path(out_dir) / sr.name).string();
    sr.model_dir = (fs::path(dir) / "model").string();
    const std::vector<data::SftTokens>& data = kind == StudentKind::traces ? traces : worked;
    sr.examples = (int64_t)data.size();
    if (data.empty()) {
      log << "distill: " << sr.name << ": no trace was kept (the teacher solved none of its samples): not trained\n";
      res.students.push_back(sr);
      continue;
    }
    fs::create_directories(dir);
    Rng init(cfg.train.seed + 40);  // the same initial weights for every student
    Transformer student(student_args, init);
    student.to(teacher.device());
    TrainerConfig trc = post_trainer_config(dc, /*grad_accum=*/1, dir, cfg.name + "-" + sr.name, progress);
    trc.identity = checkpoint_identity(student.args, &tok);
    DistillStage stage(student, &teacher, tok, dc, rc, kind, data, val, val_problems, cfg.train.seed + 42);
    Trainer trainer(student, stage, trc, schedule, Rng(cfg.train.seed + 43), log);
    trainer.hooks.after_optimizer_step.push_back([&](const StepInfo&) { stage.update_biases(); });
    log << "distill: " << sr.name << " on " << data.size() << (kind == StudentKind::traces ? " kept traces" : " worked solutions")
        << (kind == StudentKind::kd ? " with the teacher's logits" : ", hard labels only") << "\n";
    TrainerResult tr = trainer.run();
    sr.trained = true;
    sr.start_step = tr.start_step;
    sr.steps_done = tr.steps_done;
    sr.first_loss = tr.first_loss;
    sr.final_loss = tr.final_loss;
    if (tr.final_eval.size() == 3) sr.final_val_ce = tr.final_eval[0], sr.final_val_kl = tr.final_eval[1], sr.final_val_accuracy = tr.final_eval[2];
    sr.train_tokens_per_s = tr.tokens_per_s;
    sr.train_seconds = tr.train_seconds;
    MetricsTable mt = read_metrics_csv(trainer.metrics_path());
    for (double v : mt.column("target_tokens")) sr.target_tokens += (int64_t)v;
    curves.push_back({sr.name + ": CE", mt.column("step"), mt.column("ce_loss"), colors::cycle(curves.size())});
    if (kind == StudentKind::kd)
      curves.push_back({sr.name + ": T^2 KL", mt.column("step"), mt.column("kd_loss"), colors::cycle(curves.size())});
    if (tr.finished) {
      save_model_dir(student, sr.model_dir);
      copy_tokenizer_into(tokenizer_path, sr.model_dir);
    }
    res.students.push_back(sr);
  }
  log << std::fixed << std::setprecision(0) << "distill: greedy generation, the same prompts and lengths: teacher "
      << res.teacher_tokens_per_s << " tokens/s, student " << res.student_tokens_per_s << " tokens/s" << std::setprecision(1)
      << " (" << res.student_tokens_per_s / std::max(1e-9, res.teacher_tokens_per_s) << "x), "
      << (double)res.teacher_parameters / (double)std::max<int64_t>(1, res.student_parameters) << "x fewer parameters\n"
      << std::defaultfloat;
  if (!curves.empty())
    write_line_plot_png((fs::path(out_dir) / "loss.png").string(), curves,
                        "distillation: each student's CE, and KD's T^2 KL");
  res.wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return res;
}

}  // namespace sg
