#include "models/unet.h"

#include "engine/ops/index/index.h"

namespace pneuma::models {

namespace {

std::shared_ptr<nn::Conv2d> conv3x3(int64_t in, int64_t out) {
  nn::Conv2d::Options o;
  o.padding = {1, 1};
  o.bias = false;
  return std::make_shared<nn::Conv2d>(in, out, std::array<int64_t, 2>{3, 3}, o);
}

// Zero padding by concatenation, so the gradient needs no op of its own.
Tensor pad_to(const Tensor& x, int64_t height, int64_t width) {
  const int64_t dy = height - x.size(2), dx = width - x.size(3);
  PNEUMA_CHECK(dy >= 0 && dx >= 0, "UNet: upsampled ", x.str(), " is larger than the skip connection ", height, "x",
               width);
  if (dy == 0 && dx == 0) return x;
  Tensor y = x;
  auto zeros = [&](int64_t h, int64_t w) { return Tensor::zeros({y.size(0), y.size(1), h, w}, y.dtype(), y.device()); };
  if (dy > 0) y = cat({zeros(dy / 2, y.size(3)), y, zeros(dy - dy / 2, y.size(3))}, 2);
  if (dx > 0) y = cat({zeros(y.size(2), dx / 2), y, zeros(y.size(2), dx - dx / 2)}, 3);
  return y;
}

// A module holding a single child, for PyTorch's OutConv wrapper (key "outc.conv.*").
class Wrapper : public nn::Module {
 public:
  template <class M>
  explicit Wrapper(const std::string& name, std::shared_ptr<M> child) {
    register_module(name, std::move(child));
  }
};

}  // namespace

DoubleConv::DoubleConv(int64_t in, int64_t out, int64_t mid) {
  if (mid == 0) mid = out;
  double_conv = register_module("double_conv", std::make_shared<nn::Sequential>());
  double_conv->add(conv3x3(in, mid));
  double_conv->add(std::make_shared<nn::BatchNorm2d>(mid));
  double_conv->add(std::make_shared<nn::ReLU>());
  double_conv->add(conv3x3(mid, out));
  double_conv->add(std::make_shared<nn::BatchNorm2d>(out));
  double_conv->add(std::make_shared<nn::ReLU>());
}

UNetDown::UNetDown(int64_t in, int64_t out) {
  maxpool_conv = register_module("maxpool_conv", std::make_shared<nn::Sequential>());
  maxpool_conv->add(std::make_shared<nn::MaxPool2d>(std::array<int64_t, 2>{2, 2}));
  maxpool_conv->add(std::make_shared<DoubleConv>(in, out));
}

UNetUp::UNetUp(int64_t in, int64_t out, bool bilinear) {
  if (bilinear) {
    up_bilinear = register_module("up", std::make_shared<nn::Upsample>(2.0, "bilinear", true));
    conv = register_module("conv", std::make_shared<DoubleConv>(in, out, in / 2));
  } else {
    nn::ConvTranspose2d::Options o;
    o.stride = {2, 2};
    up_transposed = register_module("up", std::make_shared<nn::ConvTranspose2d>(in, in / 2, std::array<int64_t, 2>{2, 2}, o));
    conv = register_module("conv", std::make_shared<DoubleConv>(in, out));
  }
}

Tensor UNetUp::forward(const Tensor& deep, const Tensor& skip) const {
  Tensor x = up_bilinear ? up_bilinear->forward(deep) : up_transposed->forward(deep);
  x = pad_to(x, skip.size(2), skip.size(3));
  return conv->forward(cat({skip, x}, 1));
}

UNet::UNet(UNetOptions o) : options_(o) {
  PNEUMA_CHECK(o.base_width > 0 && o.in_channels > 0 && o.out_channels > 0, "UNet: base_width ", o.base_width,
               ", in_channels ", o.in_channels, " and out_channels ", o.out_channels, " must be positive");
  const int64_t w = o.base_width;
  const int64_t factor = o.bilinear ? 2 : 1;
  inc = register_module("inc", std::make_shared<DoubleConv>(o.in_channels, w));
  down1 = register_module("down1", std::make_shared<UNetDown>(w, 2 * w));
  down2 = register_module("down2", std::make_shared<UNetDown>(2 * w, 4 * w));
  down3 = register_module("down3", std::make_shared<UNetDown>(4 * w, 8 * w));
  down4 = register_module("down4", std::make_shared<UNetDown>(8 * w, 16 * w / factor));
  up1 = register_module("up1", std::make_shared<UNetUp>(16 * w, 8 * w / factor, o.bilinear));
  up2 = register_module("up2", std::make_shared<UNetUp>(8 * w, 4 * w / factor, o.bilinear));
  up3 = register_module("up3", std::make_shared<UNetUp>(4 * w, 2 * w / factor, o.bilinear));
  up4 = register_module("up4", std::make_shared<UNetUp>(2 * w, w, o.bilinear));
  outc = std::make_shared<nn::Conv2d>(w, o.out_channels, 1);
  register_module("outc", std::make_shared<Wrapper>("conv", outc));
}

Tensor UNet::forward(const Tensor& x) const {
  PNEUMA_CHECK(x.dim() == 4 && x.size(1) == options_.in_channels, "UNet: expected input [N, ", options_.in_channels,
               ", H, W], got ", x.str());
  PNEUMA_CHECK(x.size(2) >= 16 && x.size(3) >= 16, "UNet: input ", x.str(), " is smaller than 16x16 (4 levels of 2x2 pooling)");
  const Tensor x1 = inc->forward(x);
  const Tensor x2 = down1->forward(x1);
  const Tensor x3 = down2->forward(x2);
  const Tensor x4 = down3->forward(x3);
  const Tensor x5 = down4->forward(x4);
  Tensor y = up1->forward(x5, x4);
  y = up2->forward(y, x3);
  y = up3->forward(y, x2);
  y = up4->forward(y, x1);
  return outc->forward(y);
}

}  // namespace pneuma::models
