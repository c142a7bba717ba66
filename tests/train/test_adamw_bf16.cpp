// tests/train/test_adamw_bf16.cpp — AdamW with bf16 moments (AdamWConfig::moment_dtype = bf16,
// DeepSeek-V3 §3.3): a hand-made step (the stored moments are bf16-RNE of the f32 moments, and the
// parameter moves by the update computed from the rounded moments), state_bytes halves, the state
// round-trips through BF16 safetensors tensors with the same bits as not stopping, and a quadratic
// minimised with bf16 moments ends within a stated margin of the f32 run.
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "autograd/rng.h"
#include "ops/fp8.h"
#include "ops/ops.h"
#include "tests/data/temp_dir.h"
#include "train/optim.h"

using namespace sg;
using sg::data::testing::TempDir;

namespace {

float bf16_round(float x) { return lowp::bf16_to_f32(lowp::f32_to_bf16(x)); }

AdamWConfig cfg_of(DType md, double lr = 0.1, double wd = 0.1) {
  AdamWConfig c{lr, 0.9, 0.95, 1e-8, wd};
  c.moment_dtype = md;
  return c;
}

}  // namespace

TEST_CASE("adamw bf16 moments: one step by hand uses the rounded moments") {
  // p = 1, g = 0.3, lr 0.1, λ 0.1, step 1: m = 0.1·0.3 = 0.03, v = 0.05·0.09 = 0.0045 in f32; stored as
  // bf16 RNE; p ← 0.99·1 − (0.1/0.1)·m' / (sqrt(v')/sqrt(0.05) + 1e-8) with the rounded m', v'.
  Tensor w = Tensor::from_vector(std::vector<float>{1.0f}, {1}).requires_grad_(true);
  w.set_param_kind(ParamKind::weight);
  w.set_grad(Tensor::from_vector(std::vector<float>{0.3f}, {1}));
  AdamW opt({{"w", &w}}, cfg_of(DType::bf16));
  opt.step();
  CHECK(opt.exp_avg(0).dtype() == DType::bf16);
  const float m32 = 0.9f * 0.0f + (1.0f - 0.9f) * 0.3f, v32 = 0.95f * 0.0f + (1.0f - 0.95f) * 0.3f * 0.3f;
  const float mr = bf16_round(m32), vr = bf16_round(v32);
  CHECK(mr != m32);  // the rounding is visible
  CHECK((float)opt.exp_avg(0).at({0}) == mr);
  CHECK((float)opt.exp_avg_sq(0).at({0}) == vr);
  const double expect = 0.99 - 0.1 / 0.1 * mr / (std::sqrt((double)vr) / std::sqrt(0.05) + 1e-8);
  CHECK(w.to_f32_vector()[0] == doctest::Approx(expect).epsilon(1e-6));
  // And not the update of the unrounded moments (which differs by more than the tolerance).
  const double unrounded = 0.99 - m32 / (std::sqrt((double)v32) / std::sqrt(0.05) + 1e-8);
  CHECK(std::fabs(expect - unrounded) > 1e-5);
}

TEST_CASE("adamw bf16 moments: state_bytes halves; state round-trips as BF16 with the same bits") {
  Rng rng(5);
  Tensor a = Tensor::randn({7, 5}, rng).requires_grad_(true), b = a.clone_data().requires_grad_(true);
  Tensor c = a.clone_data().requires_grad_(true);
  AdamW f32opt({{"p", &a}}, cfg_of(DType::f32)), bfopt({{"p", &b}}, cfg_of(DType::bf16));
  CHECK(f32opt.state_bytes() == 7 * 5 * 8);
  CHECK(bfopt.state_bytes() == 7 * 5 * 4);
  std::vector<Tensor> grads;
  for (int s = 0; s < 6; ++s) grads.push_back(Tensor::randn({7, 5}, rng));
  for (int s = 0; s < 3; ++s) {
    b.set_grad(grads[s]);
    bfopt.step();
  }
  // "Checkpoint" after 3 steps: the state tensors, into a fresh optimizer on a copy of the weights.
  // Through a real safetensors file on disk (the BF16 codes are written and read as they are).
  TempDir dir("adamw_bf16");
  write_safetensors(dir.file("optim.safetensors"), bfopt.state_tensors());
  const SafeTensorsFile file = read_safetensors(dir.file("optim.safetensors"));
  bool saw_bf16 = false;
  for (const StTensor& t : file.tensors)
    if (t.name == "exp_avg.p") saw_bf16 = t.dtype == StDType::BF16 && t.bytes.size() == 7 * 5 * 2;
  CHECK(saw_bf16);
  c = b.clone_data().requires_grad_(true);
  AdamW resumed({{"p", &c}}, cfg_of(DType::bf16));
  resumed.load_state(file);
  for (int s = 3; s < 6; ++s) {
    b.set_grad(grads[s]);
    bfopt.step();
    c.set_grad(grads[s]);
    resumed.step();
  }
  CHECK(std::memcmp(b.raw_data(), c.raw_data(), 7 * 5 * 4) == 0);
  CHECK(std::memcmp(bfopt.exp_avg(0).raw_data(), resumed.exp_avg(0).raw_data(), 7 * 5 * 2) == 0);
  CHECK(std::memcmp(bfopt.exp_avg_sq(0).raw_data(), resumed.exp_avg_sq(0).raw_data(), 7 * 5 * 2) == 0);
  // An f32 optimizer refuses the BF16 state, naming the tensor and the dtypes.
  bool threw = false;
  try {
    f32opt.load_state(file);
  } catch (const std::exception& e) {
    threw = std::string(e.what()).find("is BF16, expected F32") != std::string::npos;
  }
  CHECK(threw);
}

TEST_CASE("adamw bf16 moments: a quadratic ends within a margin of the f32 run") {
  Rng rng(3);
  Tensor target = Tensor::randn({4, 3}, rng);
  std::vector<float> finals[2];
  double last[2] = {0, 0};
  for (int k = 0; k < 2; ++k) {
    Tensor p = Tensor::zeros({4, 3}).requires_grad_(true);
    AdamW opt({{"p", &p}}, cfg_of(k == 0 ? DType::f32 : DType::bf16, 0.05, 0.0));
    for (int s = 0; s < 400; ++s) {
      p.zero_grad();
      Tensor loss = sum(square(p - target));
      last[k] = loss.item();
      loss.backward();
      opt.step(s < 300 ? 0.05 : 0.005);
    }
    finals[k] = p.to_f32_vector();
  }
  double worst = 0;
  for (size_t i = 0; i < finals[0].size(); ++i) worst = std::max(worst, (double)std::fabs(finals[0][i] - finals[1][i]));
  MESSAGE("quadratic, 400 steps: final loss f32 " << last[0] << ", bf16 moments " << last[1]
                                                 << "; max |p_f32 - p_bf16| = " << worst);
  CHECK(last[1] < 1e-3);
  CHECK(worst < 1e-3);  // measured 1.2e-4 (final loss 4.6e-9 f32 vs 6.5e-9 bf16)
}
