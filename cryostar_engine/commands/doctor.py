"""Report this machine (torch, CUDA, GPUs, CPU threads, packages); estimate a planned run.

Without inputs it reads no file and finishes in a few seconds.  With --particles and --model it
times a few real stage-1 steps on random images at the planned box with the model's beads, and
prints the time per epoch, the memory per step and a recommended box and batch.

Example usage
-------------
  cryostar-engine doctor
  cryostar-engine doctor --json
  cryostar-engine doctor --particles run_data.star --model docked.pdb --map consensus.mrc
"""
import json

from ..doctor import environment_report, format_doctor, plan_report
from ..errors import InputError
from ..validate.options import check_positive


def add_args(p):
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    p.add_argument("--particles", help="planned run: RELION star or cryoSPARC .cs file")
    p.add_argument("--passthrough", help="planned run: the cryoSPARC job's passthrough .cs")
    p.add_argument("--datadir", help="folder the image paths are relative to")
    p.add_argument("--model", help="planned run: atomic model (PDB or mmCIF)")
    p.add_argument("--map", help="planned run: consensus map (sets the default low-pass and box)")
    p.add_argument("--box", type=int, help="planned working box in px (default: train-atom's)")
    p.add_argument("--batch", type=int, help="planned batch (default: train-atom's)")
    p.add_argument("--device", help="device to time on (default: cuda when available, else cpu)")


def main(args):
    if bool(args.particles) != bool(args.model):
        raise InputError("--particles and --model go together (a planned run needs both)")
    for flag, value in (("--box", args.box), ("--batch", args.batch)):
        if value is not None:
            check_positive(flag, value)
    env = environment_report()
    plan = (plan_report(args.particles, args.model, args.map, args.box, args.batch, args.datadir,
                        args.passthrough, args.device) if args.particles else None)
    if args.json:
        print(json.dumps({**env, "plan": plan}, indent=1))
    else:
        print(format_doctor(env, plan), end="")
