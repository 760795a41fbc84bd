"""Where a reference model sits in the particle box, and the low-pass it suggests (for the plugin).

Reads the model (and the consensus map it was docked into), places it in the particles' box the
way train-atom will, and says whether training would accept it: frame.error is one line when
the model is half a box off (docked on a corner-origin map), far from the box centre, partly
outside the box, or when the map is not the particles' size.  With --json it prints the
"cryostar-inspect/1" object:

  {"schema", "engine_version", "model": {"atoms", "beads", "chains"},
   "frame": {"shift_A", "centre_A", "source": "map"|"as-is", "error", "notes"},
   "low_pass": {"fsc05_A", "floor_A", "suggested_A"} or null, "default_low_pass_A", "default_box"}

It exits 0 even when frame.error is set, and 2 (one line) when a file cannot be read.

Example usage
-------------
  cryostar-engine inspect-model --model docked.pdb --map consensus.mrc --box 256 --apix 1.1 --json
"""
import json

from ..reference import inspect_model


def add_args(p):
    p.add_argument("--model", required=True, help="atomic model (PDB or mmCIF)")
    p.add_argument("--map", help="consensus map the model was docked into (MRC); its header "
                                 "origin sets the frame")
    p.add_argument("--box", type=int, required=True, help="particle box in px")
    p.add_argument("--apix", type=float, required=True, help="particle pixel size in Å")
    p.add_argument("--train-box", type=int, help="training box in px (floor of the low-pass; "
                                                 "default the particle box)")
    p.add_argument("--json", action="store_true", help="print the report as one JSON object")


def main(args):
    report = inspect_model(args.model, args.box, args.apix, args.map, args.train_box)
    if args.json:
        print(json.dumps(report))
        return 0
    m, f, lp = report["model"], report["frame"], report["low_pass"]
    print(f"Model     {m['atoms']} atoms, {m['beads']} beads, chain(s) {', '.join(m['chains'])}")
    print(f"Frame     {f['source']}: shift {tuple(f['shift_A'])} Å, centre {tuple(f['centre_A'])} Å "
          "from the box centre")
    for note in f["notes"]:
        print(f"Note      {note}")
    if lp is not None:
        print(f"Low-pass  suggested {lp['suggested_A']:.1f} Å (FSC(model, map) = 0.5 at "
              f"{lp['fsc05_A']:.1f} Å, floor {lp['floor_A']:.1f} Å)")
    print(f"Box       {report['default_box']} px by default (at train-atom's default low-pass, "
          f"{report['default_low_pass_A']:g} Å)")
    if f["error"]:
        print(f"ERROR     {f['error']}")
    return 0
