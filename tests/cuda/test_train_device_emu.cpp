// tests/cuda/test_train_device_emu.cpp — `train.device: cuda` (seekgrad train --device cuda) end to end, on emulated
// CUDA: the PRETRAIN stage (the trainer, AdamW, clipping, evaluation, the gate-bias update, checkpoints) with the
// model on the device gives the CPU run's losses and gradient norms step by step; a device run stopped and resumed
// from its checkpoint equals one that never stopped, bit for bit; the trained checkpoint loads on the CPU; a device
// that cannot run is refused before any work, with the way out in the message.
//
// The comparison with the CPU run is tests/cuda/train_check.h (test_train_device_gpu.cpp runs it on a real GPU).
#include <doctest/doctest.h>

#include <cmath>
#include <sstream>

#include "tests/cuda/train_check.h"
#include "tests/test_util.h"

#include "autograd/device.h"
#include "cuda/cuda_backend.h"

using namespace sg;
using sg::data::testing::slurp;
using sg::data::testing::TempDir;

using namespace sg::test::train;

TEST_CASE("train on emulated CUDA: the CPU run's losses, grad norms, expert loads and val loss, step by step") {
  CudaEmulationScope emu(true);
  check_training_matches_cpu();
}

TEST_CASE("train on emulated CUDA: 2 steps + resume from the checkpoint + 2 steps == 4 steps straight, bit for bit") {
  CudaEmulationScope emu(true);
  TempDir dir("train_cuda_resume");
  std::ostringstream log;
  PretrainResult ra = pretrain(parse_pretrain_config(micro_yaml(dir.file("a"), "cuda"), "micro.yaml"), log, quiet());
  PretrainConfig split = parse_pretrain_config(micro_yaml(dir.file("b"), "cuda"), "micro.yaml");
  PretrainOptions stop = quiet();
  stop.stop_after_step = 2;
  CHECK(pretrain(split, log, stop).steps_done == 2);
  PretrainResult r2 = pretrain(split, log, quiet());  // the checkpoint's parameters and moments go back to the device
  CHECK(r2.start_step == 2);
  CHECK(r2.final_loss == ra.final_loss);  // exact
  CHECK(r2.final_val_loss == ra.final_val_loss);
  CHECK(slurp(dir.file("a/checkpoint/model.safetensors")) == slurp(dir.file("b/checkpoint/model.safetensors")));
  CHECK(slurp(dir.file("a/checkpoint/optimizer.safetensors")) == slurp(dir.file("b/checkpoint/optimizer.safetensors")));
}

TEST_CASE("train.device: a bad value names the file and the key; cuda without a GPU or the emulation says how") {
  TempDir dir("train_device_errors");
  std::string bad = micro_yaml(dir.file("x"), "tpu");
  std::string err = sg::test::error_of([&] { parse_pretrain_config(bad, "micro.yaml"); });
  CHECK_MESSAGE(err.find("micro.yaml") != std::string::npos, err);
  CHECK_MESSAGE(err.find("device") != std::string::npos, err);
  CHECK_MESSAGE(err.find("tpu") != std::string::npos, err);

  if (cuda::available()) {
    MESSAGE("SKIPPED the no-GPU refusal: this machine has a CUDA device");
    return;
  }
  CudaEmulationScope off(false);
  std::ostringstream log;
  err = sg::test::error_of([&] { pretrain(parse_pretrain_config(micro_yaml(dir.file("y"), "cuda"), "micro.yaml"), log, quiet()); });
  CHECK_MESSAGE(err.find("micro.yaml: train.device: device 'cuda'") != std::string::npos, err);
  CHECK_MESSAGE(err.find("SEEKGRAD_CUDA_EMU=1") != std::string::npos, err);
  CHECK(!std::filesystem::exists(dir.file("y/data")));  // refused before any work
}
