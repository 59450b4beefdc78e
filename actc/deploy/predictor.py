"""The Paddle Inference configuration that suits a model: int8 programs need oneDNN int8 on
CPU (under the default Config they run 12-27x slower than fp32) or TensorRT int8 on a GPU.

The choice is made from the IR (which quantizer ops the program holds); building the
predictor imports Paddle."""
from __future__ import annotations

from dataclasses import dataclass

from actc.ir.program import Program

# ops that mark a program as int8 for Paddle Inference
INT8_OPS = ("quantize_linear", "dequantize_linear",
            "fake_quantize_dequantize_abs_max",
            "fake_channel_wise_quantize_dequantize_abs_max",
            "fake_quantize_dequantize_moving_average_abs_max",
            "fake_quantize_dequantize_range_abs_max",
            "fake_dequantize_max_abs", "fake_channel_wise_dequantize_max_abs")


@dataclass(frozen=True)
class PredictorPlan:
    """What the predictor will be: precision, device and the Config calls that make it."""

    precision: str   # "int8" or "fp32"
    device: str      # "cpu" or "gpu"
    threads: int

    def describe(self) -> str:
        if self.device == "gpu":
            how = ("enable_use_gpu + enable_tensorrt_engine(precision=Int8, "
                   "use_calib_mode=False)" if self.precision == "int8" else "enable_use_gpu")
        else:
            how = "disable_gpu + enable_mkldnn" + (" + enable_mkldnn_int8"
                                                  if self.precision == "int8" else "")
            how += f" + set_cpu_math_library_num_threads({self.threads})"
        return f"{self.precision} on {self.device}: {how}"


def precision_of(program: Program) -> str:
    types = {op.type for op in program.ops(block=None)}
    return "int8" if types & set(INT8_OPS) else "fp32"


def plan_for(program: Program, device: str, threads: int) -> PredictorPlan:
    return PredictorPlan(precision_of(program), "gpu" if device.startswith("gpu") else "cpu",
                         threads)


def create(plan: PredictorPlan, program_file: str, params_file: str | None):
    """A Paddle Inference predictor configured by ``plan``."""
    from actc.runtime.paddle_env import import_paddle

    import_paddle()
    import paddle.inference as pi

    cfg = pi.Config(program_file, params_file) if params_file else pi.Config(program_file)
    cfg.disable_glog_info()
    cfg.switch_ir_optim(True)
    if plan.device == "gpu":
        cfg.enable_use_gpu(256, 0)
        if plan.precision == "int8":
            cfg.enable_tensorrt_engine(workspace_size=1 << 30, max_batch_size=64,
                                       min_subgraph_size=3,
                                       precision_mode=pi.PrecisionType.Int8,
                                       use_static=False, use_calib_mode=False)
    else:
        cfg.disable_gpu()
        cfg.enable_mkldnn()
        if plan.precision == "int8":
            cfg.enable_mkldnn_int8()
        cfg.set_cpu_math_library_num_threads(plan.threads)
    return pi.create_predictor(cfg)
