// ops/ops.h — every differentiable op in one include. The derivatives index is ops/README.md.
#pragma once
#include "autograd/node.h"
#include "autograd/tensor.h"
#include "ops/device.h"
#include "ops/elementwise.h"
#include "ops/index.h"
#include "ops/linalg.h"
#include "ops/nn.h"
#include "ops/reduce.h"
#include "ops/shape.h"
