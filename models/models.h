#pragma once
// Every model, head and the registry in one include.
#include "models/classifier.h"
#include "models/densenet.h"
#include "models/freeze.h"
#include "models/heads.h"
#include "models/registry.h"
#include "models/resnet.h"
#include "models/simple_cnn.h"
#include "models/three_branch.h"
#include "models/unet.h"
