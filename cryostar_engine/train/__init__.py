"""Training infrastructure shared by both stages: run folders, checkpoints, guards, progress,
and the run-loop scaffold that ties them together (:mod:`.scaffold`)."""
from .distributed import DistContext, init_distributed, shard
from .checkpoint import list_checkpoints, load_latest_checkpoint, save_checkpoint
from .guard import PendingSteps, SkippedSteps, TrainingDiverged
from .optim import CompiledOrEager, ensure_fused, finite_gradients, guarded_step, make_optimizer
from .progress import Progress, run_logger
from .rundir import prepare_run_dir, read_json, write_json
from .runtime import configure_cpu, gpu_amp_dtype, gpu_has_native_bf16, resolve_device, seed_everything
from .schedule import SCHEDULES, apply_lr_factor, lr_factor
from .scaffold import RowStream, RunScaffold, open_run

__all__ = ["DistContext", "init_distributed", "shard", "list_checkpoints", "load_latest_checkpoint", "save_checkpoint", "SkippedSteps", "PendingSteps", "CompiledOrEager",
           "ensure_fused", "finite_gradients", "guarded_step", "make_optimizer",
           "TrainingDiverged", "Progress", "run_logger", "prepare_run_dir", "read_json",
           "write_json", "configure_cpu", "gpu_amp_dtype", "gpu_has_native_bf16", "resolve_device", "seed_everything", "SCHEDULES",
           "apply_lr_factor", "lr_factor", "RowStream", "RunScaffold", "open_run"]
