#pragma once
// The whole public engine API in one include.
#include "engine/autograd/grad_mode.h"
#include "engine/core/device.h"
#include "engine/core/dtype.h"
#include "engine/core/error.h"
#include "engine/core/tensor.h"
#include "engine/cpu/parallel.h"
#include "engine/cpu/fast_path.h"
#include "engine/ops/conv/conv.h"
#include "engine/ops/elementwise/elementwise.h"
#include "engine/ops/reduce/reduce.h"
#include "engine/ops/norm/norm.h"
#include "engine/ops/pool/pool.h"
